"""Execution: one accepted signal becomes one order per bound broker account, exactly once.

Every order carries a deterministic client_order_id from (signal, account). A signal whose
accounts are all built-in paper ones runs in one transaction (`paper_execution.py`: the
venue is in our database, so the order, the venue's fill and our books commit together; the
worker does it in the transaction that claims and completes the job). Any other signal takes
the multi-step path below: the order is stored (status new) before it is sent, so a retry, a
crash or an ambiguous answer always finds it and asks the broker for that id before it would
ever submit again.

On the multi-step path each database step is one `Database.run_session` unit (a single thread
hop on SQLite): one read of the signal, its strategy and accounts; per account one transaction
that stores the order and one that books the venue's report (the last account's also finishes
the signal). A simulated venue learns the alert's price with the order itself unless we have
working orders there, which must see the price (and be synced) before the new order is sized.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Connection, and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, defer, raiseload

from pinelab.brokers.base import (
    Broker,
    OrderRequest,
    OrderStatus,
    OrderStatusReport,
    QuoteDriven,
)
from pinelab.brokers.exceptions import (
    AmbiguousBrokerError,
    BrokerError,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    PermanentBrokerError,
    RetryableBrokerError,
)
from pinelab.brokers.models import BrokerAccount
from pinelab.clock import now
from pinelab.errors import OrderRejectedError
from pinelab.jobs.models import Job
from pinelab.signals.intent import Action, AlertIntent
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy, StrategyBrokerAccount
from pinelab.trading import orders, paper_execution
from pinelab.trading.models import Order
from pinelab.trading.order_state import OrderEventType
from pinelab.trading.planning import (
    Outcome,
    SignalFinish,
    finish_for,
    finish_signal,
    needs_equity,
    plan_request,
    request_from,
)

if TYPE_CHECKING:
    from typing import Any as AppContext  # bridged until the merge: api/context.py is gone

log = structlog.get_logger(__name__)

EXECUTE_SIGNAL = "execute_signal"
WORKING_STATUSES = tuple(s.value for s in OrderStatus if not s.is_terminal)


@dataclass
class _Execution:
    """One signal being executed: what was read up front, and what happened so far."""

    context: AppContext
    signal: Signal
    strategy: Strategy
    intent: AlertIntent
    accounts: list[BrokerAccount]
    stored: frozenset[str]  # client ids of the orders already stored for this signal
    working: frozenset[tuple[int, str]]  # (account id, symbol) where we have working orders
    outcomes: list[Outcome] = field(default_factory=list)
    retryable: list[RetryableBrokerError] = field(default_factory=list)
    finished: bool = False

    def finish_with(self, account: BrokerAccount, outcome: Outcome) -> SignalFinish | None:
        """Return the signal's finish when this is the last account and nothing awaits a retry."""
        if self.retryable or account is not self.accounts[-1]:
            return None
        return finish_for(self.signal.id, [*self.outcomes, outcome])


@dataclass
class _Step:
    """One account's part of an execution."""

    account: BrokerAccount
    broker: Broker
    symbol: str
    client_id: str
    mark: Decimal | None = None  # the alert's price, still to be recorded on our positions
    quote: Decimal | None = None  # the alert's price, still to be given to a simulated venue


@dataclass(frozen=True)
class _Prepared:
    """What the order-storing transaction found or did."""

    existing: Order | None = None
    request: OrderRequest | None = None
    refusal: OrderRejectedError | None = None


@dataclass(frozen=True)
class _Recorded:
    changed: int
    before: str | None = None
    after: str | None = None


async def execute_signal_job(context: AppContext, job: Job) -> None:
    """Run the execute_signal job."""
    await execute_signal(context, int(job.payload["signal_id"]))


def execute_signal_inline(
    context: AppContext, connection: Connection, job: Job
) -> Callable[[], None] | None:
    """Run the job in the worker's claiming transaction when every account is a paper one.

    Return what to do once that transaction committed, or None (having written nothing) when
    the signal needs the multi-step path (`execute_signal_job`).
    """
    executed = paper_execution.execute_in_transaction(
        context, connection, signal_id=int(job.payload["signal_id"])
    )
    return None if executed is None else partial(executed.report, context.metrics)


async def signal_job_dead(context: AppContext, job: Job, error: str) -> None:
    """Mark the signal failed when its job is given up."""
    reason = f"gave up after {job.attempts} attempts: {error}"
    await _finish_signal(context, SignalFinish(int(job.payload["signal_id"]), "failed", reason))


async def signal_job_replayed(session: AsyncSession, job: Job) -> None:
    """Put a failed signal back to accepted, in the replay's transaction, so it executes again."""
    signal = await session.get(Signal, int(job.payload["signal_id"]), with_for_update=True)
    if signal is not None and signal.status == "failed":
        signal.status = "accepted"
        signal.reason = None
        signal.executed_at = None


async def execute_signal(context: AppContext, signal_id: int) -> None:
    """Place the orders an accepted signal asks for in every bound account."""
    executed = await context.db.run_transaction(
        partial(paper_execution.execute_in_transaction, context, signal_id=signal_id)
    )
    if executed is not None:
        executed.report(context.metrics)
        return
    run = await context.db.run_session(
        partial(_load, context=context, signal_id=signal_id), write=False
    )
    if run is None:
        return
    for account in run.accounts:
        try:
            run.outcomes.append(await _execute_in_account(run, account))
        except RetryableBrokerError as exc:
            run.retryable.append(exc)
    if run.retryable:
        raise run.retryable[0]
    if not run.accounts:
        reason = "the strategy has no live broker account"
        await _finish_signal(context, SignalFinish(signal_id, "failed", reason))
    elif not run.finished:
        await _finish_signal(context, finish_for(signal_id, run.outcomes))


def _load(session: Session, *, context: AppContext, signal_id: int) -> _Execution | None:
    """Read the signal, its strategy and live accounts, and what we already hold for them."""
    live = and_(
        BrokerAccount.id == StrategyBrokerAccount.broker_account_id,
        BrokerAccount.archived_at.is_(None),
    )
    query = (
        select(Signal, Strategy, BrokerAccount)
        .join(Strategy, Strategy.id == Signal.strategy_id)
        .outerjoin(StrategyBrokerAccount, StrategyBrokerAccount.strategy_id == Strategy.id)
        .outerjoin(BrokerAccount, live)
        .options(defer(Signal.raw_body, raiseload=True), raiseload(Strategy.bindings))
        .where(Signal.id == signal_id)
        .order_by(BrokerAccount.id)
    )
    rows = session.execute(query).all()
    if not rows:
        return None
    signal, strategy = rows[0][0], rows[0][1]
    if signal.status != "accepted" or signal.intent is None:
        return None
    accounts = [row[2] for row in rows if row[2] is not None]
    stored = session.scalars(select(Order.client_order_id).where(Order.signal_id == signal_id))
    working = session.execute(
        select(Order.broker_account_id, Order.symbol)
        .where(
            Order.broker_account_id.in_([account.id for account in accounts]),
            Order.status.in_(WORKING_STATUSES),
        )
        .distinct()
    )
    return _Execution(
        context,
        signal,
        strategy,
        AlertIntent.from_record(signal.intent),
        accounts,
        frozenset(stored),
        frozenset((row[0], row[1]) for row in working),
    )


async def _execute_in_account(run: _Execution, account: BrokerAccount) -> Outcome:
    context, intent = run.context, run.intent
    try:
        broker = await context.brokers.get(account)
        symbol = await broker.resolve_symbol(intent.ticker)
        if intent.action is Action.CANCEL:
            if intent.price is not None:
                await _observe_price(context, broker, account, intent.ticker, symbol, intent.price)
            return await _cancel_open(context, broker, account, run.strategy, symbol)
        step = _Step(account, broker, symbol, orders.client_order_id(run.signal.id, account.id))
        return await _trade(run, step)
    except (PermanentBrokerError, OrderRejectedError) as exc:
        message = exc.message if isinstance(exc, BrokerError | OrderRejectedError) else str(exc)
        return Outcome(account.id, False, message)


async def _trade(run: _Execution, step: _Step) -> Outcome:
    """Place the signal's order in one account, letting the venue see the alert's price once."""
    price = run.intent.price
    if price is not None and _observe_first(run, step):
        await _observe_price(
            run.context, step.broker, step.account, run.intent.ticker, step.symbol, price
        )
    elif price is not None:
        step.mark = price
        step.quote = price if isinstance(step.broker, QuoteDriven) else None
    try:
        return await _place(run, step)
    finally:
        if step.quote is not None and isinstance(step.broker, QuoteDriven):
            # No order carried the price to the venue (nothing to do, refused): give it alone.
            await step.broker.update_price(step.symbol, step.quote)


def _observe_first(run: _Execution, step: _Step) -> bool:
    """Tell whether a simulated venue must see the price before the order is sized.

    It must when we have working orders in the symbol there (the price may fill them, and their
    fills move the position the order is sized from), when the order may already exist (a retry),
    and when sizing needs equity marked at the new price. Otherwise the order's reference price
    gives the venue the price on submission, which also works its resting orders first.
    """
    return isinstance(step.broker, QuoteDriven) and (
        (step.account.id, step.symbol) in run.working
        or step.client_id in run.stored
        or needs_equity(run.intent, run.strategy)
    )


async def _observe_price(
    context: AppContext,
    broker: Broker,
    account: BrokerAccount,
    ticker: str,
    symbol: str,
    price: Decimal,
) -> None:
    """Feed the alert's price to a simulated venue, then sync what it filled."""
    if isinstance(broker, QuoteDriven):
        await broker.update_price(symbol, price)
    await context.db.run_session(
        partial(orders.mark_price, broker_account_id=account.id, ticker=ticker, price=price)
    )
    if isinstance(broker, QuoteDriven):
        await sync_open_orders(context, broker, account_id=account.id, symbol=symbol)


async def sync_open_orders(
    context: AppContext, broker: Broker, *, account_id: int, symbol: str | None = None
) -> int:
    """Ask the venue about our working orders and record what changed; return how many changed."""
    working = await context.db.run_session(
        partial(orders.open_orders, broker_account_id=account_id, symbol=symbol), write=False
    )
    changed = 0
    for order in working:
        if order.broker_order_id is None:
            continue
        report = await broker.fetch_order(order.broker_order_id)
        changed += await record_report(context, order.client_order_id, report)
    return changed


async def record_report(
    context: AppContext,
    client_id: str,
    report: OrderStatusReport,
    *,
    submitted: bool = False,
    finish: SignalFinish | None = None,
) -> int:
    """Apply a venue report to our order and its bracket legs; return 1 if anything changed.

    With `finish`, the signal is finished in the same transaction.
    """
    recorded: _Recorded = await context.db.run_session(
        partial(_record, client_id=client_id, report=report, submitted=submitted, finish=finish)
    )
    if recorded.after is not None and recorded.after != recorded.before:
        context.metrics.order_status(recorded.after)
    return recorded.changed


def _record(
    session: Session,
    *,
    client_id: str,
    report: OrderStatusReport,
    submitted: bool,
    finish: SignalFinish | None,
) -> _Recorded:
    recorded = _Recorded(0)
    order = orders.find_order_sync(session, client_id, for_update=True)
    if order is not None:
        before = order.status
        if submitted and order.status == OrderStatus.NEW.value:
            orders.move_sync(session, order, OrderEventType.SUBMITTED)
            order.submitted_at = now()
        with session.no_autoflush:  # one flush at commit writes the order once
            changed = int(orders.apply_report_sync(session, order, report).changes_anything)
        for index, leg in enumerate(report.legs):
            changed |= _record_leg(session, order, leg, index)
        recorded = _Recorded(changed, before, order.status)
    if finish is not None:
        _finish_in(session, finish=finish)
    return recorded


async def record_leg(
    session: AsyncSession, parent: Order, leg: OrderStatusReport, index: int
) -> int:
    """Apply a bracket leg's report, creating our row for the leg the first time; 1 if changed."""
    return await session.run_sync(_record_leg, parent, leg, index)


def _record_leg(session: Session, parent: Order, leg: OrderStatusReport, index: int) -> int:
    name = "take_profit" if index == 0 and leg.order_type.value == "limit" else "stop_loss"
    client_id = leg.client_order_id or orders.leg_client_order_id(parent.client_order_id, name)
    order = orders.find_order_sync(session, client_id, for_update=True)
    if order is None:
        order = Order(**orders.leg_fields(parent, leg, name, client_id), filled_quantity=Decimal(0))
        session.add(order)
        session.flush()
        orders.record_event(session, order, "created", None, {"leg_of": parent.id})
    return int(orders.apply_report_sync(session, order, leg).changes_anything)


async def _cancel_open(
    context: AppContext, broker: Broker, account: BrokerAccount, strategy: Strategy, symbol: str
) -> Outcome:
    working = await context.db.run_session(
        partial(
            orders.open_orders,
            broker_account_id=account.id,
            symbol=symbol,
            strategy_id=strategy.id,
        ),
        write=False,
    )
    for order in working:
        if order.broker_order_id is not None:
            await record_report(
                context, order.client_order_id, await broker.cancel_order(order.broker_order_id)
            )
    return Outcome(account.id, True, f"canceled {len(working)} open order(s) in {symbol}")


async def _place(run: _Execution, step: _Step) -> Outcome:
    context, account = run.context, step.account
    equity = (
        (await step.broker.fetch_account()).equity
        if needs_equity(run.intent, run.strategy)
        else None
    )
    prepared = await context.db.run_session(partial(_prepare, run=run, step=step, equity=equity))
    if prepared.refusal is not None:
        raise prepared.refusal
    existing = prepared.existing
    if existing is not None and existing.status != OrderStatus.NEW.value:
        # The (signal, account) order exists: never a second one. One that never made it (failed,
        # rejected) leaves the signal failed, also when a dead letter is replayed.
        refused = existing.status in (OrderStatus.FAILED.value, OrderStatus.REJECTED.value)
        detail = f": {existing.reason}" if refused and existing.reason else ""
        return Outcome(account.id, not refused, f"order {existing.id} is {existing.status}{detail}")
    if existing is not None:
        adopted = await step.broker.fetch_order_by_client_id(step.client_id)
        if adopted is not None:
            await record_report(context, step.client_id, adopted)
            return Outcome(account.id, True, f"order {existing.id} found at the broker")
        request = request_from(
            run.intent,
            client_id=existing.client_order_id,
            symbol=existing.symbol,
            side=existing.side,
            quantity=existing.quantity,
            order_type=existing.order_type,
            time_in_force=existing.time_in_force,
        )
        return await _submit(run, step, request)
    if prepared.request is None:
        return Outcome(account.id, True, "nothing to do")
    context.metrics.order_status(OrderStatus.NEW.value)
    outcome = await _submit(run, step, prepared.request)
    context.metrics.order_submitted(run.signal.received_at)
    return outcome


def _prepare(
    session: Session, *, run: _Execution, step: _Step, equity: Decimal | None
) -> _Prepared:
    """Find the order, or size and check a new one and store it (status new) before it is sent."""
    if step.mark is not None:
        orders.mark_price(
            session, broker_account_id=step.account.id, ticker=run.intent.ticker, price=step.mark
        )
    # Not stored when the signal was read: the unique client_order_id guards a concurrent run.
    existing = (
        orders.find_order_sync(session, step.client_id) if step.client_id in run.stored else None
    )
    if existing is not None:
        return _Prepared(existing=existing)
    try:
        request = _plan_request(session, run, step, equity)
    except OrderRejectedError as exc:  # the price mark above is still committed
        return _Prepared(refusal=exc)
    if request is None:
        return _Prepared()
    order = orders.new_order(
        request,
        user_id=run.signal.user_id,
        signal_id=run.signal.id,
        strategy_id=run.strategy.id,
        broker_account_id=step.account.id,
        ticker=run.intent.ticker,
    )
    session.add(order)
    session.flush()
    detail = {"notional": str(request.notional)} if request.notional else None
    orders.record_event(session, order, "created", None, detail)
    return _Prepared(request=request)


def _plan_request(
    session: Session, run: _Execution, step: _Step, equity: Decimal | None
) -> OrderRequest | None:
    position = orders.current_position(
        session,
        broker_account_id=step.account.id,
        strategy_id=run.strategy.id,
        ticker=run.intent.ticker,
    )
    return plan_request(
        run.intent,
        run.strategy,
        client_id=step.client_id,
        symbol=step.symbol,
        position=position,
        equity=equity,
        capabilities=step.broker.capabilities,
    )


async def _submit(run: _Execution, step: _Step, request: OrderRequest) -> Outcome:
    context, broker, account = run.context, step.broker, step.account
    try:
        report = await broker.submit_order(request)
    except AmbiguousBrokerError as exc:
        found = await broker.fetch_order_by_client_id(request.client_order_id)
        if found is None:
            raise BrokerUnavailable(
                f"submission outcome unknown and not found at the broker: {exc.message}"
            ) from exc
        report = found
    except (InvalidOrder, InsufficientFunds) as exc:
        await _refuse(context, request.client_order_id, OrderEventType.REJECTED, exc.message)
        return Outcome(account.id, False, f"rejected by the broker: {exc.message}")
    except PermanentBrokerError as exc:
        await _refuse(context, request.client_order_id, OrderEventType.FAILED, exc.message)
        return Outcome(account.id, False, f"failed: {exc.message}")
    if request.reference_price is not None:
        step.quote = None  # the venue took the order, and the price with it
    ok = report.status not in (OrderStatus.REJECTED, OrderStatus.FAILED)
    detail = f"{report.status.value}" + (f": {report.reason}" if report.reason else "")
    outcome = Outcome(account.id, ok, f"order {request.client_order_id} {detail}")
    finish = run.finish_with(account, outcome)
    await record_report(context, request.client_order_id, report, submitted=True, finish=finish)
    run.finished = finish is not None
    return outcome


async def _refuse(context: AppContext, client_id: str, event: OrderEventType, reason: str) -> None:
    def refuse(session: Session) -> str | None:
        order = orders.find_order_sync(session, client_id, for_update=True)
        if order is None:
            return None
        orders.move_sync(session, order, event, reason=reason)
        return order.status

    status = await context.db.run_session(refuse)
    if status is not None:
        context.metrics.order_status(status)


async def _finish_signal(context: AppContext, finish: SignalFinish) -> None:
    await context.db.run_session(partial(_finish_in, finish=finish))


def _finish_in(session: Session, *, finish: SignalFinish) -> None:
    """Give a still accepted signal its final status."""
    finish_signal(session.connection(), finish)
