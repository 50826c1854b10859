"""Logging through structlog: readable in development, JSON in production."""

from __future__ import annotations

import logging
import sys

import structlog

from pinelab.config import Settings


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the standard library's logging once for the process."""
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and settings.env == "production"
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if use_json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(settings.log_level)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
