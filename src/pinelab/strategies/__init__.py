"""Strategies: webhook endpoints with their token, bound broker accounts, sizing and limits."""
