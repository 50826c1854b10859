"""Reconciliation: bring our orders, fills and positions back in line with each broker.

A run walks every live broker account (or one user's accounts, or one account) and, per account:

1. asks the broker about every working order created within the window (by the venue's id, or by
   our client_order_id for an order never acknowledged) and applies the answer through
   `orders.apply_report` (so through the pure `reconcile.sync_order`): status moves, and missing
   fills are recorded once (their ids are deterministic). An order still `new` that the broker
   has never seen, older than the grace period and whose execution job is no longer queued or
   running, is marked `failed` ("never reached the broker");
2. flags orders still working an hour after they were created, and emails their owner once per
   order (`trade_order.pending_alerted_at`);
3. compares our positions (summed over strategies) with the broker's and reports the drift;
   nothing is changed on either side.

One account's failure is recorded in the run and never stops the others. Each run is stored as a
`reconciliation_run` row with its counts and details.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.accounts.models import User
from pinelab.brokers.base import Broker, OrderStatus, OrderStatusReport
from pinelab.brokers.exceptions import BrokerError, OrderNotFound
from pinelab.brokers.models import BrokerAccount
from pinelab.clock import now
from pinelab.db import Database
from pinelab.errors import ConflictError, ResourceNotFoundError
from pinelab.jobs import queue
from pinelab.jobs.models import Job
from pinelab.notify.email import enqueue_email, render_email
from pinelab.signals.queries import fetch_page
from pinelab.trading import orders
from pinelab.trading.execution import EXECUTE_SIGNAL, record_leg
from pinelab.trading.models import Fill, Order, Position, ReconciliationRun
from pinelab.trading.order_state import OrderEventType

if TYPE_CHECKING:
    from typing import Any as AppContext  # bridged until the merge: api/context.py is gone

log = structlog.get_logger(__name__)

RECONCILE = "reconcile"
PERIODIC = "periodic"
MANUAL = "manual"
RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"

SUBMIT_GRACE = timedelta(seconds=60)
PENDING_ALERT_AFTER = timedelta(hours=1)
MANUAL_RUN_GUARD = timedelta(minutes=10)
NEVER_REACHED = "never reached the broker"
MAX_LISTED = 200  # entries per list per account in a report, so a report stays readable
ZERO = Decimal(0)
WORKING = tuple(status.value for status in OrderStatus if not status.is_terminal)


class BrokerSource(Protocol):
    """Where the reconciler gets each account's adapter (the broker registry)."""

    async def get(self, account: BrokerAccount) -> Broker:
        """Return the adapter for an account."""
        ...


@dataclass(frozen=True)
class ReconciliationScope:
    """Which accounts a run covers: everyone's, one user's, or one account."""

    user_id: int | None = None
    broker_account_id: int | None = None

    @property
    def name(self) -> str:
        """Return `all`, `user` or `account`."""
        if self.broker_account_id is not None:
            return "account"
        return "user" if self.user_id is not None else "all"


@dataclass
class AccountResult:
    """What a run found and did in one broker account."""

    broker_account_id: int
    user_id: int
    kind: str
    checked: int = 0
    updated: int = 0
    fills_recorded: int = 0
    in_flight: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add_error(self, exc: Exception, *, order: Order | None = None) -> None:
        """Record a failure without stopping the run."""
        message = exc.message if isinstance(exc, BrokerError) else str(exc)
        entry: dict[str, Any] = {"error": type(exc).__name__, "message": message[:500]}
        if order is not None:
            entry |= {"order_id": order.id, "client_order_id": order.client_order_id}
        self.errors.append(entry)

    def as_details(self) -> dict[str, Any]:
        """Return the account's part of the run's details."""
        lists = ("changes", "unresolved", "flagged", "drift", "errors")
        return {
            "broker_account_id": self.broker_account_id,
            "user_id": self.user_id,
            "kind": self.kind,
            "checked": self.checked,
            "updated": self.updated,
            "fills_recorded": self.fills_recorded,
            "in_flight": self.in_flight,
            **{name: getattr(self, name)[:MAX_LISTED] for name in lists},
        }


class Reconciler:
    """Runs reconciliation passes over broker accounts and stores each as a report."""

    def __init__(
        self,
        *,
        db: Database,
        brokers: BrokerSource,
        window: timedelta,
        email_attempts: int,
        base_url: str,
    ) -> None:
        self.db = db
        self.brokers = brokers
        self.window = window
        self.email_attempts = email_attempts
        self.base_url = base_url

    async def run(
        self, *, trigger: str, scope: ReconciliationScope, requested_by: int | None = None
    ) -> ReconciliationRun:
        """Reconcile the accounts in scope and return the stored report."""
        accounts = await self._accounts(scope)
        run_id = await self._start(trigger, scope, requested_by)
        results: list[AccountResult] = []
        try:
            for account in accounts:
                results.append(await self._reconcile_account(account))
            await self._alert_owners(results)
        except BaseException:
            await self._finish(run_id, results, FAILED)
            raise
        return await self._finish(run_id, results, FINISHED)

    async def _accounts(self, scope: ReconciliationScope) -> list[BrokerAccount]:
        query = select(BrokerAccount).where(BrokerAccount.archived_at.is_(None))
        if scope.user_id is not None:
            query = query.where(BrokerAccount.user_id == scope.user_id)
        if scope.broker_account_id is not None:
            query = query.where(BrokerAccount.id == scope.broker_account_id)
        async with self.db.session() as session:
            accounts = list((await session.scalars(query.order_by(BrokerAccount.id))).all())
        if scope.broker_account_id is not None and not accounts:
            raise ResourceNotFoundError("Broker account", scope.broker_account_id)
        return accounts

    async def _start(
        self, trigger: str, scope: ReconciliationScope, requested_by: int | None
    ) -> int:
        async with self.db.transaction() as session:
            if trigger == MANUAL and scope.user_id is not None:
                await _refuse_concurrent_run(session, scope.user_id)
            run = ReconciliationRun(
                trigger=trigger,
                status=RUNNING,
                scope=scope.name,
                user_id=scope.user_id,
                broker_account_id=scope.broker_account_id,
                requested_by=requested_by,
                window_hours=self.window.total_seconds() / 3600,
                started_at=now(),
                details={},
            )
            session.add(run)
            await session.flush()
            return run.id

    async def _reconcile_account(self, account: BrokerAccount) -> AccountResult:
        result = AccountResult(account.id, account.user_id, account.kind)
        try:
            broker = await self.brokers.get(account)
        except Exception as exc:
            result.add_error(exc)
        else:
            for phase in (self._sync_orders, self._compare_positions):
                await _guarded(phase(broker, account, result), result, account)
        await self._flag_pending(account, result)
        return result

    async def _sync_orders(
        self, broker: Broker, account: BrokerAccount, result: AccountResult
    ) -> None:
        moment = now()
        query = select(Order).where(
            Order.broker_account_id == account.id,
            Order.status.in_(WORKING),
            Order.created_at >= moment - self.window,
        )
        async with self.db.session() as session:
            working = list((await session.scalars(query.order_by(Order.id))).all())
        for order in working:
            if _in_flight(order, moment):
                result.in_flight += 1
                continue
            try:
                report = await _ask(broker, order)
            except OrderNotFound as exc:
                result.checked += 1
                result.add_error(exc, order=order)
                continue
            result.checked += 1
            if report is None:
                await self._resolve_unknown(order, result)
            else:
                await self._apply(order, report, result)

    async def _apply(self, seen: Order, report: OrderStatusReport, result: AccountResult) -> None:
        async with self.db.transaction() as session:
            order = await orders.find_order(session, seen.client_order_id, for_update=True)
            if order is None or order.status != seen.status:
                return  # changed since we asked: the worker had fresher news
            before, fills_before = order.status, await _fill_count(session, order.id)
            sync = await orders.apply_report(session, order, report)
            changed = sync.changes_anything
            for index, leg in enumerate(report.legs):
                changed |= bool(await record_leg(session, order, leg, index))
            if changed and before == OrderStatus.NEW.value and order.submitted_at is None:
                order.submitted_at = now()
            fills = await _fill_count(session, order.id) - fills_before
        result.fills_recorded += fills
        if changed:
            result.updated += 1
            result.changes.append(_change(order, before, fills=fills, conflict=sync.conflict))

    async def _resolve_unknown(self, seen: Order, result: AccountResult) -> None:
        """Settle an order the broker has never seen: failed, unless its job may still send it."""
        async with self.db.transaction() as session:
            order = await orders.find_order(session, seen.client_order_id, for_update=True)
            if order is None or order.status != seen.status or order.broker_order_id:
                return
            waiting = order.status != OrderStatus.NEW.value
            waiting = waiting or await _job_pending(session, order.signal_id)
            if not waiting:
                await orders.move(session, order, OrderEventType.FAILED, reason=NEVER_REACHED)
        if waiting:
            note = "its job is still queued or running" if order.status == "new" else "unknown"
            result.unresolved.append(
                _change(order, order.status, note=f"not at the broker; {note}")
            )
            return
        result.updated += 1
        result.changes.append(_change(order, OrderStatus.NEW.value, note=NEVER_REACHED))

    async def _flag_pending(self, account: BrokerAccount, result: AccountResult) -> None:
        query = select(Order).where(
            Order.broker_account_id == account.id,
            Order.status.in_(WORKING),
            Order.created_at < now() - PENDING_ALERT_AFTER,
        )
        async with self.db.session() as session:
            stale = (await session.scalars(query.order_by(Order.id))).all()
        result.flagged = [_flag(order) for order in stale]

    async def _compare_positions(
        self, broker: Broker, account: BrokerAccount, result: AccountResult
    ) -> None:
        async with self.db.session() as session:
            ours = await _our_positions(session, account.id)
        theirs: dict[str, Decimal] = {}
        for position in await broker.fetch_positions():
            key = position.symbol.upper()
            theirs[key] = theirs.get(key, ZERO) + position.quantity
        for symbol in sorted(set(ours) | set(theirs)):
            mine, venue = ours.get(symbol, ZERO), theirs.get(symbol, ZERO)
            if mine != venue:
                result.drift.append(
                    {
                        "symbol": symbol,
                        "ours": str(mine),
                        "broker": str(venue),
                        "difference": str(venue - mine),
                    }
                )

    async def _alert_owners(self, results: list[AccountResult]) -> None:
        """Email each owner about their newly flagged orders; each order is alerted only once."""
        wanted = [f["order_id"] for r in results for f in r.flagged if not f["alerted_at"]]
        if not wanted:
            return
        moment = now()
        async with self.db.transaction() as session:
            claim = (
                update(Order)
                .where(Order.id.in_(wanted), Order.pending_alerted_at.is_(None))
                .values(pending_alerted_at=moment)
                .returning(Order.id)
                .execution_options(synchronize_session=False)
            )
            claimed = set((await session.scalars(claim)).all())
            by_user: dict[int, list[dict[str, Any]]] = {}
            for entry in (f for r in results for f in r.flagged if f["order_id"] in claimed):
                entry["alerted_at"] = moment.isoformat()
                by_user.setdefault(entry["user_id"], []).append(entry)
            for user_id, flagged in by_user.items():
                await self._email_owner(session, user_id, flagged)

    async def _email_owner(
        self, session: AsyncSession, user_id: int, flagged: list[dict[str, Any]]
    ) -> None:
        user = await session.get(User, user_id)
        if user is None or not user.is_active:
            return
        email = render_email(
            "stale_orders",
            to=user.email,
            subject=f"PineLab: {len(flagged)} order(s) still open after an hour",
            orders=flagged,
            base_url=self.base_url,
        )
        await enqueue_email(session, email, max_attempts=self.email_attempts)

    async def _finish(
        self, run_id: int, results: list[AccountResult], status: str
    ) -> ReconciliationRun:
        async with self.db.transaction() as session:
            run = await session.get(ReconciliationRun, run_id)
            if run is None:
                raise ResourceNotFoundError("Reconciliation run", run_id)
            run.status = status
            run.finished_at = now()
            run.accounts = len(results)
            run.checked = sum(r.checked for r in results)
            run.updated = sum(r.updated for r in results)
            run.fills_recorded = sum(r.fills_recorded for r in results)
            run.flagged = sum(len(r.flagged) for r in results)
            run.drift = sum(len(r.drift) for r in results)
            run.errors = sum(len(r.errors) for r in results)
            run.details = {"accounts": [r.as_details() for r in results]}
        log.info(
            "reconciliation_finished",
            run_id=run.id,
            status=status,
            trigger=run.trigger,
            **{k: getattr(run, k) for k in ("accounts", "checked", "updated", "flagged", "errors")},
        )
        return run


def reconciler_for(context: AppContext) -> Reconciler:
    """Return a reconciler over the app's database and broker registry."""
    settings = context.settings
    return Reconciler(
        db=context.db,
        brokers=context.brokers,
        window=timedelta(hours=settings.reconciliation_window_hours),
        email_attempts=settings.max_retry_attempts,
        base_url=settings.base_url,
    )


async def reconcile(
    context: AppContext,
    *,
    trigger: str,
    scope: ReconciliationScope,
    requested_by: int | None = None,
) -> ReconciliationRun:
    """Run one reconciliation pass and return its stored report."""
    run = await reconciler_for(context).run(trigger=trigger, scope=scope, requested_by=requested_by)
    context.metrics.reconciliation_fixed(run.updated)
    if run.flagged and context.worker is not None:
        context.worker.wake()  # owner emails may have been queued
    return run


async def reconcile_job(context: AppContext, job: Job) -> None:
    """Run the reconcile job (the periodic pass, or one a caller queued with a scope)."""
    payload = job.payload
    scope = ReconciliationScope(
        user_id=payload.get("user_id"), broker_account_id=payload.get("broker_account_id")
    )
    await reconcile(context, trigger=payload.get("trigger", PERIODIC), scope=scope)


async def list_runs(
    session: AsyncSession, *, user_id: int | None, limit: int, before_id: int | None = None
) -> tuple[list[ReconciliationRun], int | None]:
    """Return a page of runs, newest first: one user's own (user_id) or everyone's (None)."""
    query = select(ReconciliationRun)
    if user_id is not None:
        query = query.where(ReconciliationRun.user_id == user_id)
    return await fetch_page(session, query, ReconciliationRun.id, limit=limit, before_id=before_id)


async def get_run(session: AsyncSession, *, run_id: int, user_id: int | None) -> ReconciliationRun:
    """Return one run (only the user's own, unless user_id is None), or raise not found."""
    run = await session.get(ReconciliationRun, run_id)
    if run is None or (user_id is not None and run.user_id != user_id):
        raise ResourceNotFoundError("Reconciliation run", run_id)
    return run


async def _refuse_concurrent_run(session: AsyncSession, user_id: int) -> None:
    query = select(func.count()).where(
        ReconciliationRun.user_id == user_id,
        ReconciliationRun.status == RUNNING,
        ReconciliationRun.started_at > now() - MANUAL_RUN_GUARD,
    )
    if await session.scalar(query):
        raise ConflictError("A reconciliation of your accounts is already running")


async def _guarded(step: Awaitable[None], result: AccountResult, account: BrokerAccount) -> None:
    """Run one phase of an account's pass; a failure is recorded, never raised."""
    try:
        await step
    except Exception as exc:
        if not isinstance(exc, BrokerError):
            log.exception("reconciliation_phase_failed", broker_account_id=account.id)
        result.add_error(exc)


def _in_flight(order: Order, moment: datetime) -> bool:
    """Tell whether an unacknowledged order may still be on its way (too young to judge)."""
    young = order.created_at > moment - SUBMIT_GRACE
    return order.broker_order_id is None and order.status == OrderStatus.NEW.value and young


async def _ask(broker: Broker, order: Order) -> OrderStatusReport | None:
    if order.broker_order_id is not None:
        return await broker.fetch_order(order.broker_order_id)
    return await broker.fetch_order_by_client_id(order.client_order_id)


async def _fill_count(session: AsyncSession, order_id: int) -> int:
    """Count the fills of an order and of its bracket legs."""
    legs = select(Order.id).where(Order.parent_order_id == order_id)
    query = select(func.count(Fill.id)).where((Fill.order_id == order_id) | Fill.order_id.in_(legs))
    return int(await session.scalar(query) or 0)


async def _job_pending(session: AsyncSession, signal_id: int | None) -> bool:
    """Tell whether the signal's execution job is still queued or running (it may yet submit)."""
    if signal_id is None:
        return False
    query = select(func.count(Job.id)).where(
        Job.kind == EXECUTE_SIGNAL,
        Job.status.in_([queue.QUEUED, queue.RUNNING]),
        Job.payload["signal_id"].as_integer() == signal_id,
    )
    return bool(await session.scalar(query))


async def _our_positions(session: AsyncSession, broker_account_id: int) -> dict[str, Decimal]:
    """Sum our positions in an account over strategies, keyed by the broker's symbol."""
    names = select(Order.ticker, Order.symbol).where(Order.broker_account_id == broker_account_id)
    rows = (await session.execute(names.distinct())).all()
    symbols = {row.ticker: row.symbol for row in rows}
    query = select(Position.ticker, Position.quantity).where(
        Position.broker_account_id == broker_account_id
    )
    totals: dict[str, Decimal] = {}
    for ticker, quantity in (await session.execute(query)).all():
        key = symbols.get(ticker, ticker).upper()
        totals[key] = totals.get(key, ZERO) + quantity
    return totals


def _change(order: Order, before: str, **extra: Any) -> dict[str, Any]:
    entry = {
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "from": before,
        "to": order.status,
    }
    return entry | {key: value for key, value in extra.items() if value is not None}


def _flag(order: Order) -> dict[str, Any]:
    alerted = order.pending_alerted_at
    return {
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "user_id": order.user_id,
        "ticker": order.ticker,
        "side": order.side,
        "quantity": str(order.quantity),
        "status": order.status,
        "created_at": order.created_at.isoformat(),
        "alerted_at": alerted.isoformat() if alerted is not None else None,
    }
