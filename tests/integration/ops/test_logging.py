"""Logging in a real process: JSON lines in production carry the bound request context and no
secrets."""

from __future__ import annotations

import json
import subprocess
import sys

from pinelab.logging import REDACTED

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
