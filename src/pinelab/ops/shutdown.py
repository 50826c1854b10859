"""Graceful shutdown, after uvicorn has stopped accepting and finished the requests in flight.

On SIGTERM or SIGINT uvicorn closes its sockets and waits up to PINELAB_SHUTDOWN_TIMEOUT_SECONDS
for in-flight requests; then the lifespan calls `shut_down`, which lets the worker finish its
jobs for up to the same time (a job still running after that is released to the queue without
counting the attempt), stops the scheduler with it, commits the signals still pending, closes
broker sessions and the database pool, and flushes the logs. A step that fails or hangs is
logged and the next one still runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final, Protocol

import structlog

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.logging import flush_logs
from pinelab.ops.metrics import Metrics, MetricsServer

log = structlog.get_logger(__name__)

STEP_SECONDS: Final = 10.0


class Stoppable(Protocol):
    """A background service that finishes what it holds when stopped (the signal writer)."""

    async def stop(self) -> None:
        """Finish and stop."""
        ...


class GracefullyStoppable(Protocol):
    """A service given time to finish its work (the worker)."""

    async def stop(self, grace_seconds: float = ...) -> None:
        """Stop taking work and let what runs finish within `grace_seconds`."""
        ...


class Closable(Protocol):
    """Something holding connections (the broker registry)."""

    async def close(self) -> None:
        """Close every connection."""
        ...


async def start_metrics_server(
    metrics: Metrics, db: Database, settings: Settings
) -> MetricsServer | None:
    """Serve /metrics on PINELAB_METRICS_PORT when it is set; return the server, or None."""
    if settings.metrics_port is None:
        return None
    server = MetricsServer(metrics, db, host=settings.host, port=settings.metrics_port)
    await server.start()
    log.info("metrics_server_started", port=settings.metrics_port)
    return server


async def run_step(name: str, step: Awaitable[None], *, seconds: float) -> bool:
    """Run one shutdown step under a time limit; log, never raise, when it fails."""
    try:
        await asyncio.wait_for(step, timeout=seconds)
    except TimeoutError:
        log.error("shutdown_step_timed_out", step=name, seconds=seconds)
        return False
    except Exception as exc:
        log.error("shutdown_step_failed", step=name, exc_info=exc)
        return False
    return True


async def shut_down(
    *,
    worker: GracefullyStoppable,
    writer: Stoppable,
    brokers: Closable,
    db: Database,
    grace_seconds: float,
    metrics_server: MetricsServer | None = None,
) -> None:
    """Stop the worker and scheduler, commit pending signals, close everything, flush logs."""
    await run_step("worker", worker.stop(grace_seconds=grace_seconds), seconds=grace_seconds + 5)
    await run_step("signal_writer", writer.stop(), seconds=STEP_SECONDS)
    if metrics_server is not None:
        await run_step("metrics_server", metrics_server.stop(), seconds=STEP_SECONDS)
    await run_step("brokers", brokers.close(), seconds=STEP_SECONDS)
    await run_step("database", db.dispose(), seconds=STEP_SECONDS)
    log.info("stopped")
    flush_logs()
