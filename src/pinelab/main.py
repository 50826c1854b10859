"""The composition root: settings → database → services → worker → the app.

The only module that knows every package. `build_services` builds one process's parts and
registers the worker's job handlers by kind (each a domain function bound to what it needs);
`create_app` puts each narrow dependency on `app.state` for the packages' `dependencies.py`,
mounts every router and runs the lifespan (what `pinelab serve` serves); `run_worker` runs the
worker alone (what `pinelab worker` runs).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Final

import structlog
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State
from starlette.middleware.cors import CORSMiddleware

from pinelab import __version__
from pinelab.accounts.emails import AccountEmails
from pinelab.accounts.recovery import (
    ACCOUNT_EMAIL,
    PRUNE_ACCOUNT_TOKENS,
    prune_account_tokens,
)
from pinelab.accounts.router import admin_router as admin_users_router
from pinelab.accounts.router import router as auth_router
from pinelab.accounts.two_factor import SECRET_COLUMN as TOTP_SECRET_COLUMN
from pinelab.accounts.two_factor import remove_expired_challenges
from pinelab.api.errors import install_error_handlers
from pinelab.api.limits import BodyLimitMiddleware
from pinelab.api.middleware import RequestContextMiddleware
from pinelab.api.openapi import install_openapi
from pinelab.brokers.credentials import CREDENTIALS_COLUMN
from pinelab.brokers.registry import BrokerRegistry
from pinelab.brokers.router import router as broker_accounts_router
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.maintenance import CLEANUP_INTERVAL_SECONDS, CLEANUP_JOBS, cleanup_finished_jobs
from pinelab.jobs.models import Job
from pinelab.jobs.router import router as dead_letters_router
from pinelab.jobs.worker import JobType, Worker
from pinelab.logging import configure_logging
from pinelab.notify.dead_letters import notify_dead_letter_owner
from pinelab.notify.email import SEND_EMAIL, EmailSender, send_email
from pinelab.ops import shutdown
from pinelab.ops.dependencies import limit_by_address
from pinelab.ops.files import make_data_dir_private
from pinelab.ops.health import HealthChecker
from pinelab.ops.heap import startup_heap_frozen
from pinelab.ops.metrics import Metrics, MetricsServer
from pinelab.ops.ratelimit import RateLimits
from pinelab.ops.router import admin_router as admin_health_router
from pinelab.ops.router import docs_router
from pinelab.ops.router import router as health_router
from pinelab.signals.admission import Admission
from pinelab.signals.router import WEBHOOK_PREFIX, webhook_route
from pinelab.signals.router import router as signals_router
from pinelab.signals.service import Ingestor
from pinelab.signals.writer import SignalWriter
from pinelab.strategies.router import router as strategies_router
from pinelab.strategies.tokens import TokenDirectory
from pinelab.trading.dependencies import Reconcile
from pinelab.trading.execution import EXECUTE_SIGNAL, execute_signal, fail_signal, reopen_signal
from pinelab.trading.models import ReconciliationRun
from pinelab.trading.reconciliation import (
    PERIODIC,
    RECONCILE,
    Reconciler,
    ReconciliationScope,
    prune_reconciliation_runs,
)
from pinelab.trading.router import admin_reconciliation_router, reconciliation_router
from pinelab.trading.router import router as trading_router
from pinelab.vault import Vault, build_vault
from pinelab.vault.rotation import EncryptedColumn

log = structlog.get_logger(__name__)

API_PREFIX: Final = "/api/v1"
PRUNE_RECONCILIATION_RUNS: Final = "prune_reconciliation_runs"
PRUNE_INTERVAL_SECONDS: Final = 3600.0
ACCOUNT_TOKENS_PRUNE_SECONDS: Final = 3600.0
PRUNE_LOGIN_CHALLENGES: Final = "prune_login_challenges"


@dataclass(frozen=True)
class Services:
    """What `build_services` built for one process; only the root and the CLI hold it."""

    settings: Settings
    secret_key: str
    db: Database
    vault: Vault
    brokers: BrokerRegistry
    tokens: TokenDirectory
    metrics: Metrics
    worker: Worker
    writer: SignalWriter
    ingestor: Ingestor
    reconcile: Reconcile
    health: HealthChecker
    rate_limits: RateLimits

    async def close(self, metrics_server: MetricsServer | None = None) -> None:
        """Stop the worker and the signal writer, close broker sessions and the database."""
        await shutdown.shut_down(
            worker=self.worker,
            writer=self.writer,
            brokers=self.brokers,
            db=self.db,
            grace_seconds=self.settings.shutdown_timeout_seconds,
            metrics_server=metrics_server,
        )


def build_services(settings: Settings) -> Services:
    """Build the database and the long-lived services of one process (nothing is started)."""
    make_data_dir_private(settings.data_dir)
    db = Database(
        settings.resolved_database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.db_pool_size,
    )
    secret_key = settings.resolved_secret_key()
    vault = build_vault(settings)
    brokers = BrokerRegistry(db=db, settings=settings, vault=vault)
    tokens = TokenDirectory(db)
    metrics = Metrics()

    def wake_worker() -> None:
        worker.wake()  # bound late: the worker is built with the handlers that call this

    rate_limits = RateLimits.from_settings(settings)
    reconcile = reconciliation(settings, db=db, brokers=brokers, metrics=metrics, wake=wake_worker)
    worker = Worker(
        db,
        job_types(settings, db=db, brokers=brokers, metrics=metrics, reconcile=reconcile),
        settings=settings,
        metrics=metrics,
        on_dead_letter=partial(notify_dead_letter_owner, settings=settings),
    )
    register_periodic_jobs(worker, settings)
    writer = SignalWriter(db, on_commit=worker.wake)
    ingestor = Ingestor(
        tokens=tokens,
        writer=writer,
        secret_key=secret_key,
        strategy_limiter=rate_limits.webhook_token,
        bad_token_limiter=rate_limits.webhook_bad_token,
        job_kind=EXECUTE_SIGNAL,
        max_attempts=settings.max_retry_attempts,
        metrics=metrics,
        admission=Admission(db),
    )
    return Services(
        settings=settings,
        secret_key=secret_key,
        db=db,
        vault=vault,
        brokers=brokers,
        tokens=tokens,
        metrics=metrics,
        worker=worker,
        writer=writer,
        ingestor=ingestor,
        reconcile=reconcile,
        health=HealthChecker(settings, db),
        rate_limits=rate_limits,
    )


# ----------------------------------------------------------------------------- jobs


def job_types(
    settings: Settings,
    *,
    db: Database,
    brokers: BrokerRegistry,
    metrics: Metrics,
    reconcile: Reconcile,
) -> dict[str, JobType]:
    """Return every job kind PineLab runs, each bound to the dependencies it uses."""
    return {
        EXECUTE_SIGNAL: JobType(
            run=partial(_execute_signal, db=db, brokers=brokers, metrics=metrics),
            on_dead=partial(_signal_given_up, db=db),
            on_replay=replay_hooks()[EXECUTE_SIGNAL],
        ),
        SEND_EMAIL: JobType(run=partial(_send_email, settings=settings)),
        ACCOUNT_EMAIL: JobType(run=partial(_account_email, emails=account_emails(settings, db))),
        PRUNE_ACCOUNT_TOKENS: JobType(run=partial(_prune_account_tokens, db=db)),
        RECONCILE: JobType(run=partial(_reconcile, reconcile=reconcile)),
        CLEANUP_JOBS: JobType(run=partial(_cleanup_jobs, db=db)),
        PRUNE_LOGIN_CHALLENGES: JobType(run=partial(_prune_login_challenges, db=db)),
        PRUNE_RECONCILIATION_RUNS: JobType(
            run=partial(
                _prune_reconciliation_runs,
                db=db,
                older_than=timedelta(days=settings.reconciliation_retention_days),
            )
        ),
    }


def replay_hooks() -> dict[str, Callable[[AsyncSession, Job], Awaitable[None]]]:
    """Return each job kind's hook for replaying its dead letters (the worker's and the CLI's)."""
    return {EXECUTE_SIGNAL: _signal_replayed}


def register_periodic_jobs(worker: Worker, settings: Settings) -> None:
    """Schedule the periodic jobs: reconciliation and the housekeeping of jobs and runs."""
    minutes = settings.reconciliation_interval_minutes
    worker.scheduler.register(RECONCILE, minutes * 60, RECONCILE)
    worker.scheduler.register(CLEANUP_JOBS, CLEANUP_INTERVAL_SECONDS, CLEANUP_JOBS)
    worker.scheduler.register(
        PRUNE_RECONCILIATION_RUNS, PRUNE_INTERVAL_SECONDS, PRUNE_RECONCILIATION_RUNS
    )
    worker.scheduler.register(
        PRUNE_ACCOUNT_TOKENS, ACCOUNT_TOKENS_PRUNE_SECONDS, PRUNE_ACCOUNT_TOKENS
    )
    worker.scheduler.register(
        PRUNE_LOGIN_CHALLENGES, PRUNE_INTERVAL_SECONDS, PRUNE_LOGIN_CHALLENGES
    )


def _signal_id(job: Job) -> int:
    return int(job.payload["signal_id"])


async def _execute_signal(
    job: Job, *, db: Database, brokers: BrokerRegistry, metrics: Metrics
) -> None:
    await execute_signal(_signal_id(job), db=db, brokers=brokers, metrics=metrics)


async def _signal_given_up(job: Job, error: str, *, db: Database) -> None:
    await fail_signal(_signal_id(job), f"gave up after {job.attempts} attempts: {error}", db=db)


async def _signal_replayed(session: AsyncSession, job: Job) -> None:
    await reopen_signal(session, _signal_id(job))


async def _send_email(job: Job, *, settings: Settings) -> None:
    await send_email(job.payload, settings=settings)


def account_emails(settings: Settings, db: Database) -> AccountEmails:
    """Return the sender of verification, reset and password-changed emails."""
    return AccountEmails(
        db=db,
        sender=EmailSender.from_settings(settings),
        base_url=settings.base_url,
        verification_ttl=timedelta(hours=settings.email_verification_ttl_hours),
        reset_ttl=timedelta(hours=settings.password_reset_ttl_hours),
    )


async def _account_email(job: Job, *, emails: AccountEmails) -> None:
    await emails.run(job.payload)


async def _prune_account_tokens(job: Job, *, db: Database) -> None:
    await prune_account_tokens(db)


async def _reconcile(job: Job, *, reconcile: Reconcile) -> None:
    payload = job.payload
    scope = ReconciliationScope(
        user_id=payload.get("user_id"), broker_account_id=payload.get("broker_account_id")
    )
    await reconcile(trigger=payload.get("trigger", PERIODIC), scope=scope)


async def _cleanup_jobs(job: Job, *, db: Database) -> None:
    await cleanup_finished_jobs(db)


async def _prune_reconciliation_runs(job: Job, *, db: Database, older_than: timedelta) -> None:
    pruned = await prune_reconciliation_runs(db, older_than=older_than)
    log.info("reconciliation_runs_pruned", count=pruned)


async def _prune_login_challenges(job: Job, *, db: Database) -> None:
    async with db.transaction() as session:
        pruned = await remove_expired_challenges(session)
    log.info("login_challenges_pruned", count=pruned)


def reconciliation(
    settings: Settings,
    *,
    db: Database,
    brokers: BrokerRegistry,
    metrics: Metrics,
    wake: Callable[[], None],
) -> Reconcile:
    """Return the process's reconciliation: one `Reconciler`, its fixes counted."""
    reconciler = Reconciler(
        db=db,
        brokers=brokers,
        window=timedelta(hours=settings.reconciliation_window_hours),
        email_attempts=settings.max_retry_attempts,
        base_url=settings.base_url,
    )

    async def reconcile(
        *, trigger: str, scope: ReconciliationScope, requested_by: int | None = None
    ) -> ReconciliationRun:
        run = await reconciler.run(trigger=trigger, scope=scope, requested_by=requested_by)
        metrics.reconciliation_fixed(run.updated)
        if run.flagged:
            wake()  # the owners' emails were just queued
        return run

    return reconcile


# ----------------------------------------------------------------------------- the app


def create_app(settings: Settings | None = None) -> FastAPI:
    """Create the PineLab ASGI app (`pinelab serve` runs it; tests import it)."""
    settings = settings or Settings()
    configure_logging(settings)
    services = build_services(settings)
    app = FastAPI(
        title="PineLab",
        version=__version__,
        description="TradingView alerts to broker orders, with a faithful record of everything.",
        lifespan=_lifespan(services),
        docs_url=None,
        redoc_url=None,
        # Metrics are Prometheus's (/metrics); FastAPI's native OpenTelemetry would otherwise
        # look up the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    _expose(app.state, services)
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
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        exempt_prefixes=(WEBHOOK_PREFIX,),  # the webhook caps its own body and records the refusal
    )
    app.add_middleware(RequestContextMiddleware, metrics=services.metrics)
    app.router.routes.append(webhook_route)  # early: every alert is matched against it first
    anonymous = [Depends(limit_by_address)]
    app.include_router(health_router, dependencies=anonymous)
    app.include_router(docs_router, dependencies=anonymous)
    for router in (
        auth_router,
        admin_users_router,
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


def _expose(state: State, services: Services) -> None:
    """Put each narrow dependency where the packages' `dependencies.py` look for it."""
    state.settings = services.settings
    state.secret_key = services.secret_key
    state.db = services.db
    state.metrics = services.metrics
    state.health = services.health
    state.brokers = services.brokers
    state.tokens = services.tokens
    state.ingestor = services.ingestor
    state.worker = services.worker
    state.reconcile = services.reconcile
    state.rate_limits = services.rate_limits
    state.vault = services.vault


def _lifespan(services: Services) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """Start the writer, the worker (unless disabled) and the metrics server; stop them."""
        await services.writer.start()
        if services.settings.worker_enabled:
            await services.worker.start()
        server = await shutdown.start_metrics_server(
            services.metrics, services.db, services.settings
        )
        with startup_heap_frozen():
            url = services.db.engine.url.render_as_string(hide_password=True)
            log.info("started", database=url)
            try:
                yield
            finally:
                await services.close(server)

    return lifespan


# ----------------------------------------------------------------------------- the worker process


async def run_worker(settings: Settings) -> int:
    """Run the worker loops and the scheduler until SIGTERM or SIGINT; return an exit code."""
    services = build_services(settings)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    try:
        if not await services.worker.start():
            return 1
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        with startup_heap_frozen():
            await stopping.wait()
        log.info("worker_signalled")
        await services.worker.stop(grace_seconds=float(settings.job_lease_seconds))
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await services.close()
    return 0


def encrypted_columns() -> list[EncryptedColumn]:
    """Return every column that holds vault envelopes (what `pinelab rotate-key` re-encrypts)."""
    return [CREDENTIALS_COLUMN, TOTP_SECRET_COLUMN]
