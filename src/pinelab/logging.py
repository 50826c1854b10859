"""Logging through structlog: readable in development, JSON in production, secrets redacted.

Every line carries the context bound for the request (`request_id`, `user_id`); values under
secret-looking keys, credentials inside URLs and bearer tokens are replaced before rendering.
The standard library's loggers (uvicorn, SQLAlchemy) go through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Final

import structlog

from pinelab.config import Settings

REDACTED: Final = "[redacted]"
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)|secret|token|api_?key|authorization|credential|cookie|totp"
    r"|private_?key|encryption_?key|backup_?code",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]+")
_HANDLER_NAME: Final = "pinelab"


def redact_text(text: str) -> str:
    """Hide passwords inside URLs and bearer tokens in free text."""
    if "@" in text:
        text = _URL_CREDENTIALS.sub(rf"\g<scheme>\g<user>:{REDACTED}@", text)
    if "earer" in text:
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, "", b""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, item) for item in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Replace secrets in a log event: by key name, in URLs, and bearer tokens."""
    return {key: _redact_value(key, value) for key, value in event_dict.items()}


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the standard library's logging once for the process."""
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and settings.env == "production"
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        # Plain tracebacks: the rich default prints local variables, and locals hold secrets.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    # Refilled in place: loggers cached by an earlier configuration hold this very list.
    processors: list[structlog.typing.Processor] = structlog.get_config()["processors"]
    processors[:] = [*shared, renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(settings.log_level)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_standard_logging(settings, shared, renderer)


def _route_standard_logging(
    settings: Settings,
    shared: list[structlog.typing.Processor],
    renderer: structlog.typing.Processor,
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)


def flush_logs() -> None:
    """Write out every buffered log line (at shutdown)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
