"""Execution: one accepted signal becomes one order per bound broker account, exactly once.

Every broker, the built-in paper one included, takes the same path through the `Broker`
protocol. Per account: the order is sized and checked, then stored (status `new`, with its
deterministic client_order_id) in one transaction, submitted, and the venue's report applied
through `orders.apply_report` (so `reconcile.sync_order` and `order_state.apply`) in another,
which for the last account also finishes the signal. A retry, a crash or an ambiguous answer
always finds the stored order and asks the broker for its id before it would ever submit again.

A venue that learns prices from alerts (`QuoteDriven`: the paper broker) gets the alert's price
with the order (`OrderRequest.reference_price`). It gets it on its own, by one `update_price`
call, when no order carries it (a cancel, a refusal, nothing to do), and first, before sizing,
when its fills may move what the order is sized from (we have working orders in the symbol
there, the order may exist already, or sizing needs equity); our working orders in the symbol
are then synced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

from sqlalchemy import Select, and_, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, defer, raiseload

from pinelab.brokers.base import Broker, OrderRequest, OrderStatus, OrderStatusReport, QuoteDriven
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
from pinelab.brokers.registry import BrokerRegistry
from pinelab.db import Database
from pinelab.errors import OrderRejectedError
from pinelab.ops.metrics import Metrics
from pinelab.signals.intent import Action, AlertIntent
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy, StrategyBrokerAccount
from pinelab.trading import orders
from pinelab.trading.models import Order
from pinelab.trading.order_state import (
    LifecycleEvent,
    OrderFailed,
    OrderRejected,
    OrderSubmitted,
)
from pinelab.trading.planning import (
    Outcome,
    SignalFinish,
    finish_for,
    finish_signal,
    needs_equity,
    plan_request,
    request_from,
)

EXECUTE_SIGNAL = "execute_signal"
NO_ACCOUNT = "the strategy has no live broker account"


@dataclass
class _Execution:
    """One signal being executed: its dependencies, what was read up front, what happened."""

    db: Database
    brokers: BrokerRegistry
    metrics: Metrics
    signal: Signal
    strategy: Strategy
    intent: AlertIntent
    accounts: list[BrokerAccount]
    stored: frozenset[int]  # accounts where an order is already stored for this signal
    working: frozenset[int]  # accounts where we have working orders in the signal's ticker
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
    quoted: bool = False  # a quote-driven venue has seen the alert's price


@dataclass(frozen=True)
class _Prepared:
    """What the order-storing transaction found or did."""

    existing: Order | None = None
    request: OrderRequest | None = None
    refusal: OrderRejectedError | None = None


async def execute_signal(
    signal_id: int, *, db: Database, brokers: BrokerRegistry, metrics: Metrics
) -> None:
    """Place the orders an accepted signal asks for in every bound account."""
    loaded = await db.run(lambda s: _load(s, signal_id), write=False)
    if loaded is None:
        return
    run = _Execution(db, brokers, metrics, *loaded)
    for account in run.accounts:
        try:
            run.outcomes.append(await _execute_in_account(run, account))
        except RetryableBrokerError as exc:
            run.retryable.append(exc)
    if run.retryable:
        raise run.retryable[0]
    if not run.accounts:
        await _finish_signal(db, SignalFinish(signal_id, "failed", NO_ACCOUNT))
    elif not run.finished:
        await _finish_signal(db, finish_for(signal_id, run.outcomes))


async def fail_signal(signal_id: int, reason: str, *, db: Database) -> None:
    """Mark a still accepted signal failed (its job was given up)."""
    await _finish_signal(db, SignalFinish(signal_id, "failed", reason))


async def reopen_signal(session: AsyncSession, signal_id: int) -> None:
    """Put a failed signal back to accepted, in the caller's transaction, so it executes again."""
    signal = await session.get(Signal, signal_id, with_for_update=True)
    if signal is not None and signal.status == "failed":
        signal.status = "accepted"
        signal.reason = None
        signal.executed_at = None


_Loaded = tuple[Signal, Strategy, AlertIntent, list[BrokerAccount], frozenset[int], frozenset[int]]


@cache
def _load_query(*, sqlite: bool) -> Select[Signal, Strategy, BrokerAccount, bool, bool]:
    """Return the query `_load` runs (built once per dialect)."""
    live = and_(
        BrokerAccount.id == StrategyBrokerAccount.broker_account_id,
        BrokerAccount.archived_at.is_(None),
    )
    stored = exists().where(
        Order.signal_id == Signal.id, Order.broker_account_id == BrokerAccount.id
    )
    working = exists().where(
        orders.account_column(sqlite=sqlite) == BrokerAccount.id,
        Order.status.in_(orders.WORKING),
        Order.ticker == Signal.ticker,
    )
    return (
        select(Signal, Strategy, BrokerAccount, stored, working)
        .join(Strategy, Strategy.id == Signal.strategy_id)
        .outerjoin(StrategyBrokerAccount, StrategyBrokerAccount.strategy_id == Strategy.id)
        .outerjoin(BrokerAccount, live)
        .options(defer(Signal.raw_body, raiseload=True), raiseload(Strategy.bindings))
        .where(Signal.id == bindparam("signal_id"))
        .order_by(BrokerAccount.id)
    )


def _load(session: Session, signal_id: int) -> _Loaded | None:
    """Read the signal, its strategy and live accounts, and what we already hold there: one query.

    Per account: whether an order is stored for this signal (a retry, a replay), and whether we
    have working orders in the signal's ticker (a quote-driven venue's price may fill them).
    """
    query = _load_query(sqlite=orders.is_sqlite(session))
    rows = session.execute(query, {"signal_id": signal_id}).all()
    if not rows:
        return None
    signal, strategy = rows[0][0], rows[0][1]
    if signal.status != "accepted" or signal.intent is None:
        return None
    accounts = [row[2] for row in rows if row[2] is not None]
    with_orders = frozenset(row[2].id for row in rows if row[2] is not None and row[3])
    with_working = frozenset(row[2].id for row in rows if row[2] is not None and row[4])
    intent = AlertIntent.from_record(signal.intent)
    return signal, strategy, intent, accounts, with_orders, with_working


async def _execute_in_account(run: _Execution, account: BrokerAccount) -> Outcome:
    try:
        broker = await run.brokers.get(account)
        symbol = await broker.resolve_symbol(run.intent.ticker)
        step = _Step(account, broker, symbol, orders.client_order_id(run.signal.id, account.id))
        if run.intent.action is Action.CANCEL:
            await _observe_price(run, step)
            return await _cancel_open(run, step)
        return await _trade(run, step)
    except (PermanentBrokerError, OrderRejectedError) as exc:
        message = exc.message if isinstance(exc, BrokerError | OrderRejectedError) else str(exc)
        return Outcome(account.id, False, message)


async def _trade(run: _Execution, step: _Step) -> Outcome:
    """Place the signal's order in one account; a quote-driven venue sees the price once."""
    if _observe_first(run, step):
        await _observe_price(run, step)
    try:
        return await _place(run, step)
    finally:
        price = run.intent.price
        # No order carried the price to a quote-driven venue: give it alone.
        if price is not None and isinstance(step.broker, QuoteDriven) and not step.quoted:
            await step.broker.update_price(step.symbol, price)


def _observe_first(run: _Execution, step: _Step) -> bool:
    """Tell whether a quote-driven venue must see the price before the order is sized."""
    return isinstance(step.broker, QuoteDriven) and (
        step.account.id in run.working
        or step.account.id in run.stored
        or needs_equity(run.intent, run.strategy)
    )


async def _observe_price(run: _Execution, step: _Step) -> None:
    """Give a quote-driven venue the alert's price, mark our positions, sync what it filled."""
    price = run.intent.price
    if price is None:
        return
    if isinstance(step.broker, QuoteDriven):
        await step.broker.update_price(step.symbol, price)
        step.quoted = True
    await run.db.run(
        lambda s: orders.mark_price(
            s, broker_account_id=step.account.id, ticker=run.intent.ticker, price=price
        )
    )
    if step.quoted:
        await sync_open_orders(
            step.broker,
            db=run.db,
            metrics=run.metrics,
            account_id=step.account.id,
            symbol=step.symbol,
        )


async def sync_open_orders(
    broker: Broker, *, db: Database, metrics: Metrics, account_id: int, symbol: str | None = None
) -> int:
    """Ask the venue about our working orders and record what changed; return how many changed."""
    working = await db.run(
        lambda s: orders.open_orders(s, broker_account_id=account_id, symbol=symbol), write=False
    )
    return await _record_each(db, metrics, working, broker.fetch_order)


async def _record_each(
    db: Database,
    metrics: Metrics,
    working: list[Order],
    ask: Callable[[str], Awaitable[OrderStatusReport]],
) -> int:
    """Ask the venue about each order it knows (or act on it) and record its answer."""
    changed = 0
    for order in working:
        if order.broker_order_id is not None:
            report = await ask(order.broker_order_id)
            changed += await record_report(db, metrics, order.client_order_id, report)
    return changed


async def record_report(
    db: Database,
    metrics: Metrics,
    client_id: str,
    report: OrderStatusReport,
    *,
    submitted: bool = False,
    finish: SignalFinish | None = None,
) -> int:
    """Apply a venue report to our order and its legs; return 1 if anything changed.

    With `submitted`, the order moves to submitted first; with `finish`, the signal is finished
    in the same transaction.
    """

    def record(session: Session) -> tuple[int, str | None, str | None]:
        order = orders.find_order(session, client_id, for_update=True)
        before = after = None
        changed = 0
        if order is not None:
            before = order.status
            if submitted and before == OrderStatus.NEW.value:
                orders.move(session, order, OrderSubmitted())
            with session.no_autoflush:  # one flush at commit writes the order once
                changed = int(orders.apply_report_with_legs(session, order, report)[0])
            after = order.status
        if finish is not None:
            finish_signal(session, finish)
        return changed, before, after

    changed, before, after = await db.run(record)
    if after is not None and after != before:
        metrics.order_status(after)
    return changed


async def _cancel_open(run: _Execution, step: _Step) -> Outcome:
    working = await run.db.run(
        lambda s: orders.open_orders(
            s,
            broker_account_id=step.account.id,
            symbol=step.symbol,
            strategy_id=run.strategy.id,
        ),
        write=False,
    )
    await _record_each(run.db, run.metrics, working, step.broker.cancel_order)
    return Outcome(step.account.id, True, f"canceled {len(working)} open order(s) in {step.symbol}")


async def _place(run: _Execution, step: _Step) -> Outcome:
    account = step.account
    equity = None
    if needs_equity(run.intent, run.strategy):
        equity = (await step.broker.fetch_account()).equity
    prepared = await run.db.run(lambda s: _prepare(s, run, step, equity))
    if prepared.refusal is not None:
        raise prepared.refusal
    existing = prepared.existing
    if existing is not None:
        return await _resume(run, step, existing)
    if prepared.request is None:
        return Outcome(account.id, True, "nothing to do")
    run.metrics.order_status(OrderStatus.NEW.value)
    outcome = await _submit(run, step, prepared.request)
    run.metrics.order_submitted(run.signal.received_at)
    return outcome


async def _resume(run: _Execution, step: _Step, existing: Order) -> Outcome:
    """Settle an order an earlier attempt stored: never a second one for (signal, account)."""
    account_id = step.account.id
    if existing.status != OrderStatus.NEW.value:
        # One that never made it (failed, rejected) leaves the signal failed, also on a replay.
        refused = existing.status in (OrderStatus.FAILED.value, OrderStatus.REJECTED.value)
        detail = f": {existing.reason}" if refused and existing.reason else ""
        return Outcome(account_id, not refused, f"order {existing.id} is {existing.status}{detail}")
    adopted = await step.broker.fetch_order_by_client_id(step.client_id)
    if adopted is not None:
        await record_report(run.db, run.metrics, step.client_id, adopted, submitted=True)
        return Outcome(account_id, True, f"order {existing.id} found at the broker")
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


def _prepare(session: Session, run: _Execution, step: _Step, equity: Decimal | None) -> _Prepared:
    """Find the order, or size and check a new one and store it (status new) before it is sent."""
    intent, account = run.intent, step.account
    if intent.price is not None:
        orders.mark_price(
            session, broker_account_id=account.id, ticker=intent.ticker, price=intent.price
        )
    if account.id in run.stored:
        existing = orders.find_order(session, step.client_id)
        if existing is not None:
            return _Prepared(existing=existing)
    # Not stored when the signal was read: the unique client_order_id guards a concurrent run.
    position = orders.current_position(
        session, broker_account_id=account.id, strategy_id=run.strategy.id, ticker=intent.ticker
    )
    try:
        request = plan_request(
            intent,
            run.strategy,
            client_id=step.client_id,
            symbol=step.symbol,
            position=position,
            equity=equity,
            capabilities=step.broker.capabilities,
        )
    except OrderRejectedError as exc:  # the price mark above is still committed
        return _Prepared(refusal=exc)
    if request is None:
        return _Prepared()
    orders.add_order(
        session,
        request,
        user_id=run.signal.user_id,
        signal_id=run.signal.id,
        strategy_id=run.strategy.id,
        broker_account_id=account.id,
        ticker=intent.ticker,
    )
    return _Prepared(request=request)


async def _submit(run: _Execution, step: _Step, request: OrderRequest) -> Outcome:
    account_id, client_id = step.account.id, request.client_order_id
    try:
        report = await step.broker.submit_order(request)
    except AmbiguousBrokerError as exc:
        found = await step.broker.fetch_order_by_client_id(client_id)
        if found is None:
            raise BrokerUnavailable(
                f"submission outcome unknown and not found at the broker: {exc.message}"
            ) from exc
        report = found
    except (InvalidOrder, InsufficientFunds) as exc:
        await _refuse(run, client_id, OrderRejected(exc.message))
        return Outcome(account_id, False, f"rejected by the broker: {exc.message}")
    except PermanentBrokerError as exc:
        await _refuse(run, client_id, OrderFailed(exc.message))
        return Outcome(account_id, False, f"failed: {exc.message}")
    step.quoted = step.quoted or request.reference_price is not None
    ok = report.status not in (OrderStatus.REJECTED, OrderStatus.FAILED)
    detail = f"{report.status.value}" + (f": {report.reason}" if report.reason else "")
    outcome = Outcome(account_id, ok, f"order {client_id} {detail}")
    finish = run.finish_with(step.account, outcome)
    await record_report(run.db, run.metrics, client_id, report, submitted=True, finish=finish)
    run.finished = finish is not None
    return outcome


async def _refuse(run: _Execution, client_id: str, event: LifecycleEvent) -> None:
    def refuse(session: Session) -> str | None:
        order = orders.find_order(session, client_id, for_update=True)
        if order is None:
            return None
        orders.move(session, order, event)
        return order.status

    status = await run.db.run(refuse)
    if status is not None:
        run.metrics.order_status(status)


async def _finish_signal(db: Database, finish: SignalFinish) -> None:
    await db.run(lambda s: finish_signal(s, finish))
