"""Alert dialects of the services traders move from (see base.py and docs/alerts.md)."""
