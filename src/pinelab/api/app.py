"""The app factory: settings → database → services → routes, with one error body everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from pinelab import __version__
from pinelab.accounts.router import router as auth_router
from pinelab.api.context import AppContext
from pinelab.api.errors import install_error_handlers
from pinelab.api.ratelimit import RateLimiter
from pinelab.brokers.registry import BrokerRegistry
from pinelab.brokers.router import router as broker_accounts_router
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.worker import Worker
from pinelab.ops.router import router as health_router
from pinelab.signals.router import router as signals_router
from pinelab.signals.router import webhook_router
from pinelab.signals.service import Ingestor
from pinelab.signals.writer import SignalWriter
from pinelab.strategies.router import router as strategies_router
from pinelab.strategies.tokens import TokenDirectory
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
    context.worker = Worker(context)
    context.signal_writer = SignalWriter(db, on_commit=context.worker.wake)
    context.ingestor = Ingestor(
        tokens=context.tokens,
        writer=context.signal_writer,
        secret_key=context.secret_key,
        strategy_limiter=RateLimiter(settings.webhook_rate_per_minute),
        bad_token_limiter=RateLimiter(settings.webhook_bad_token_rate_per_minute),
        max_attempts=settings.max_retry_attempts,
    )
    return context


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    context: AppContext = app.state.context
    if context.signal_writer is None or context.worker is None:
        raise RuntimeError("app context was not built by build_context")
    await context.signal_writer.start()
    if context.settings.worker_enabled:
        await context.worker.start()
    log.info("started", database=context.db.engine.url.render_as_string(hide_password=True))
    try:
        yield
    finally:
        await context.worker.stop()
        await context.signal_writer.stop()
        await context.brokers.close()
        await context.db.dispose()
        log.info("stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Create the PineLab ASGI app."""
    settings = settings or Settings()
    app = FastAPI(
        title="PineLab",
        version=__version__,
        description="TradingView alerts to broker orders, with a faithful record of everything.",
        lifespan=_lifespan,
    )
    app.state.context = build_context(settings)
    install_error_handlers(app)
    app.include_router(webhook_router)
    app.include_router(health_router)
    for router in (
        auth_router,
        broker_accounts_router,
        strategies_router,
        signals_router,
        trading_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    return app
