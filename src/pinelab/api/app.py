"""The app factory: settings → database → services → routes, with one error body everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

import structlog
from fastapi import FastAPI
from sqlalchemy import delete
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from pinelab import __version__
from pinelab.accounts.router import router as auth_router
from pinelab.api.context import AppContext
from pinelab.api.errors import install_error_handlers
from pinelab.api.middleware import RequestContextMiddleware
from pinelab.api.openapi import install_openapi
from pinelab.api.ratelimit import RateLimiter
from pinelab.brokers.registry import BrokerRegistry
from pinelab.brokers.router import router as broker_accounts_router
from pinelab.clock import now
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.maintenance import CLEANUP_INTERVAL_SECONDS, CLEANUP_JOBS, cleanup_finished_jobs
from pinelab.jobs.models import Job
from pinelab.jobs.router import router as dead_letters_router
from pinelab.jobs.worker import JobType, Worker
from pinelab.logging import configure_logging
from pinelab.notify.dead_letters import notify_dead_letter_owner
from pinelab.notify.email import SEND_EMAIL, send_email_job
from pinelab.ops import shutdown
from pinelab.ops.heap import startup_heap_frozen
from pinelab.ops.router import admin_router as admin_health_router
from pinelab.ops.router import docs_router
from pinelab.ops.router import router as health_router
from pinelab.signals.committer import CommitProcess, runs_beside
from pinelab.signals.router import WebhookEndpoint, webhook_router
from pinelab.signals.router import router as signals_router
from pinelab.signals.service import Ingestor
from pinelab.signals.writer import SignalWriter
from pinelab.strategies.router import router as strategies_router
from pinelab.strategies.tokens import TokenDirectory
from pinelab.trading.execution import (
    EXECUTE_SIGNAL,
    execute_signal_job,
    signal_job_dead,
    signal_job_replayed,
)
from pinelab.trading.models import ReconciliationRun
from pinelab.trading.reconciliation import RECONCILE, reconcile_job
from pinelab.trading.reconciliation_router import admin_router as admin_reconciliation_router
from pinelab.trading.reconciliation_router import router as reconciliation_router
from pinelab.trading.router import router as trading_router

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"


def build_context(settings: Settings) -> AppContext:
    """Build the database and long-lived services of one process."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(
        settings.resolved_database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.db_pool_size,
    )
    context = AppContext(
        settings=settings,
        db=db,
        secret_key=settings.resolved_secret_key(),
        brokers=BrokerRegistry(db=db, settings=settings),
        tokens=TokenDirectory(db),
    )
    context.worker = Worker(
        db,
        _job_types(context),
        settings=settings,
        metrics=context.metrics,
        on_dead_letter=partial(notify_dead_letter_owner, settings=settings),
    )
    context.worker.scheduler.register(CLEANUP_JOBS, CLEANUP_INTERVAL_SECONDS, CLEANUP_JOBS)
    context.worker.scheduler.register(
        RECONCILE, settings.reconciliation_interval_minutes * 60, RECONCILE
    )
    process = None
    if settings.sqlite_commit_process and runs_beside(db.url):
        process = CommitProcess(db.url, settings.sqlite_synchronous)
    worker = context.worker
    context.signal_writer = SignalWriter(db, on_commit=lambda _: worker.wake(), process=process)
    context.ingestor = Ingestor(
        tokens=context.tokens,
        writer=context.signal_writer,
        secret_key=context.secret_key,
        strategy_limiter=RateLimiter(settings.webhook_rate_per_minute),
        bad_token_limiter=RateLimiter(settings.webhook_bad_token_rate_per_minute),
        max_attempts=settings.max_retry_attempts,
        metrics=context.metrics,
    )
    return context


def _job_types(context: AppContext) -> dict[str, JobType]:
    """Return every job kind this process runs, its handlers bound to the context."""
    return {
        EXECUTE_SIGNAL: JobType(
            run=partial(execute_signal_job, context),
            on_dead=partial(signal_job_dead, context),
            on_replay=signal_job_replayed,
        ),
        SEND_EMAIL: JobType(run=partial(send_email_job, context)),
        CLEANUP_JOBS: JobType(run=partial(_clean_up, context)),
        RECONCILE: JobType(run=partial(reconcile_job, context)),
    }


async def _clean_up(context: AppContext, job: Job) -> None:
    """Delete old finished jobs and old finished reconciliation runs."""
    await cleanup_finished_jobs(context.db)
    retention = timedelta(days=context.settings.reconciliation_retention_days)
    async with context.db.transaction() as session:
        await session.execute(
            delete(ReconciliationRun).where(
                ReconciliationRun.finished_at.is_not(None),
                ReconciliationRun.finished_at < now() - retention,
            )
        )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    context: AppContext = app.state.context
    if context.signal_writer is None or context.worker is None:
        raise RuntimeError("app context was not built by build_context")
    await context.signal_writer.start()
    if context.settings.worker_enabled:
        await context.worker.start()
    await shutdown.start_metrics_server(context)
    with startup_heap_frozen():
        log.info("started", database=context.db.engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            await shutdown.shut_down(context)


class PineLabApp(FastAPI):
    """FastAPI, with the webhook (the hot path) answered before FastAPI's request handling."""

    webhook: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send webhook calls straight to the webhook endpoint, everything else to FastAPI."""
        if self.webhook is not None and scope["type"] == "http" and WebhookEndpoint.handles(scope):
            scope["app"] = self
            await self.webhook(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Create the PineLab ASGI app."""
    settings = settings or Settings()
    configure_logging(settings)
    app = PineLabApp(
        title="PineLab",
        version=__version__,
        description="TradingView alerts to broker orders, with a faithful record of everything.",
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = build_context(settings)
    app.state.worker = app.state.context.worker
    install_error_handlers(app)
    install_openapi(app, settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.context.metrics)
    app.webhook = WebhookEndpoint(app.state.context)
    app.include_router(webhook_router)  # the same handling, for the OpenAPI document
    app.include_router(health_router)
    app.include_router(docs_router)
    for router in (
        auth_router,
        broker_accounts_router,
        strategies_router,
        signals_router,
        trading_router,
        reconciliation_router,
        admin_reconciliation_router,
        dead_letters_router,
        admin_health_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    return app
