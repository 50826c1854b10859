"""Logging: secrets never reach a line; JSON in production carries the bound request context."""

from __future__ import annotations

import json
import subprocess
import sys

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


PROGRAM = """
import logging, structlog
from pinelab.config import Settings
from pinelab.logging import configure_logging
configure_logging(Settings(_env_file=None, env="production", secret_key="k" * 40))
structlog.contextvars.bind_contextvars(request_id="req-1", user_id=7)
structlog.get_logger("t").info("order_placed", api_key="AKIA123")
logging.getLogger("uvicorn.error").warning("db at redis://:topsecret@cache:6379 is slow")
try:
    raise ValueError("boom")
except ValueError:
    structlog.get_logger("t").exception("failed")
"""


def test_production_logs_are_json_lines_with_request_and_user_ids_and_no_secrets() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    placed, slow, failed = lines
    assert placed["event"] == "order_placed"
    assert (placed["request_id"], placed["user_id"], placed["api_key"]) == ("req-1", 7, REDACTED)
    assert slow["logger"] == "uvicorn.error"
    assert slow["request_id"] == "req-1"
    assert "topsecret" not in result.stderr
    assert "ValueError: boom" in failed["exception"]
