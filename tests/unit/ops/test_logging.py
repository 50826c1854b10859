"""Logging: secrets under secret-looking keys and in free text are redacted."""

from __future__ import annotations

import json

from pinelab.logging import REDACTED, redact_secrets, redact_text


def test_values_under_secret_looking_keys_are_redacted_at_any_depth() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "login",
            "password": "hunter2",
            "headers": {"Authorization": "Bearer abc.def", "accept": "json"},
            "credentials": [{"api_secret": "s3cr3t"}],
            "webhook_token": "tok",
            "count": 3,
        },
    )
    assert event["password"] == REDACTED
    assert event["headers"] == {"Authorization": REDACTED, "accept": "json"}
    assert event["credentials"] == REDACTED
    assert event["webhook_token"] == REDACTED
    assert event["count"] == 3
    assert "hunter2" not in json.dumps(event)


def test_urls_with_passwords_and_bearer_tokens_are_redacted_in_free_text() -> None:
    text = redact_text(
        "connect postgresql+asyncpg://app:pa55word@db:5432/x failed; sent Bearer eyJ.abc.def"
    )
    assert "pa55word" not in text
    assert "eyJ.abc.def" not in text
    assert "postgresql+asyncpg://app:[redacted]@db:5432/x" in text
