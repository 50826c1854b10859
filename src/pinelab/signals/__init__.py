"""Signals: webhook ingestion, alert formats, dedupe and the signal log."""
