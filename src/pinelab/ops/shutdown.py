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
from typing import TYPE_CHECKING, Final

import structlog

from pinelab.logging import flush_logs
from pinelab.ops.metrics import MetricsServer

if TYPE_CHECKING:
    from pinelab.api.context import AppContext

log = structlog.get_logger(__name__)

METRICS_SERVER_KEY: Final = "metrics_server"
STEP_SECONDS: Final = 10.0


async def start_metrics_server(context: AppContext) -> None:
    """Serve /metrics on PINELAB_METRICS_PORT when it is set."""
    settings = context.settings
    if settings.metrics_port is None:
        return
    server = MetricsServer(
        context.metrics, context.db, host=settings.host, port=settings.metrics_port
    )
    await server.start()
    context.extras[METRICS_SERVER_KEY] = server
    log.info("metrics_server_started", port=settings.metrics_port)


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


async def shut_down(context: AppContext) -> None:
    """Stop the worker and scheduler, commit pending signals, close everything, flush logs."""
    grace = context.settings.shutdown_timeout_seconds
    if context.worker is not None:
        await run_step("worker", context.worker.stop(grace_seconds=grace), seconds=grace + 5)
    if context.signal_writer is not None:
        await run_step("signal_writer", context.signal_writer.stop(), seconds=STEP_SECONDS)
    server = context.extras.pop(METRICS_SERVER_KEY, None)
    if isinstance(server, MetricsServer):
        await run_step("metrics_server", server.stop(), seconds=STEP_SECONDS)
    await run_step("brokers", context.brokers.close(), seconds=STEP_SECONDS)
    await run_step("database", context.db.dispose(), seconds=STEP_SECONDS)
    log.info("stopped")
    flush_logs()
