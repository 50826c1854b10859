"""Notifications: email (SMTP, or .eml files in the outbox) rendered from templates."""
