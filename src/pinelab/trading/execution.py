"""Execution: one accepted signal becomes one order per bound broker account, exactly once.

Every order carries a deterministic client_order_id from (signal, account) and is stored
(status new) before it is sent. A retry, a crash or an ambiguous answer therefore always
finds the order and asks the broker for that id before it would ever submit again.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.brokers.base import (
    Broker,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    QuoteDriven,
    TimeInForce,
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
from pinelab.signals.intent import Action, AlertIntent, QuantityType
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy
from pinelab.trading import orders
from pinelab.trading.brackets import bracket_prices
from pinelab.trading.models import Order
from pinelab.trading.order_state import OrderEventType
from pinelab.trading.risk import check_order
from pinelab.trading.sizing import OrderPlan, Sizing, plan_order

if TYPE_CHECKING:
    from pinelab.api.context import AppContext

log = structlog.get_logger(__name__)

EXECUTE_SIGNAL = "execute_signal"


@dataclass(frozen=True)
class Outcome:
    """What happened in one account."""

    account_id: int
    ok: bool
    message: str


async def execute_signal_job(context: AppContext, job: Job) -> None:
    """Run the execute_signal job."""
    await execute_signal(context, int(job.payload["signal_id"]))


async def signal_job_dead(context: AppContext, job: Job, error: str) -> None:
    """Mark the signal failed when its job is given up."""
    await _finish_signal(
        context,
        int(job.payload["signal_id"]),
        "failed",
        f"gave up after {job.attempts} attempts: {error}",
    )


async def execute_signal(context: AppContext, signal_id: int) -> None:
    """Place the orders an accepted signal asks for in every bound account."""
    async with context.db.session() as session:
        signal = await session.get(Signal, signal_id)
        if signal is None or signal.status != "accepted" or signal.intent is None:
            return
        strategy = await session.get(Strategy, signal.strategy_id)
        if strategy is None:
            return
        ids = strategy.broker_account_ids
        query = select(BrokerAccount).where(
            BrokerAccount.id.in_(ids), BrokerAccount.archived_at.is_(None)
        )
        accounts = list((await session.execute(query.order_by(BrokerAccount.id))).scalars())
    intent = AlertIntent.from_record(signal.intent)
    outcomes: list[Outcome] = []
    retryable: list[RetryableBrokerError] = []
    for account in accounts:
        try:
            outcomes.append(await _execute_in_account(context, signal, strategy, intent, account))
        except RetryableBrokerError as exc:
            retryable.append(exc)
    if retryable:
        raise retryable[0]
    if not accounts:
        await _finish_signal(
            context, signal_id, "failed", "the strategy has no live broker account"
        )
        return
    failed = [o for o in outcomes if not o.ok]
    summary = "; ".join(f"account {o.account_id}: {o.message}" for o in outcomes)
    await _finish_signal(context, signal_id, "failed" if failed else "executed", summary)


async def _execute_in_account(
    context: AppContext,
    signal: Signal,
    strategy: Strategy,
    intent: AlertIntent,
    account: BrokerAccount,
) -> Outcome:
    try:
        broker = await context.brokers.get(account)
        symbol = await broker.resolve_symbol(intent.ticker)
        if intent.price is not None:
            await _observe_price(context, broker, account, intent.ticker, symbol, intent.price)
        if intent.action is Action.CANCEL:
            return await _cancel_open(context, broker, account, strategy, symbol)
        return await _place(context, broker, signal, strategy, intent, account, symbol)
    except (PermanentBrokerError, OrderRejectedError) as exc:
        message = exc.message if isinstance(exc, BrokerError | OrderRejectedError) else str(exc)
        return Outcome(account.id, False, message)


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
    async with context.db.transaction() as session:
        await orders.mark_price(session, broker_account_id=account.id, ticker=ticker, price=price)
    if isinstance(broker, QuoteDriven):
        await sync_open_orders(context, broker, account_id=account.id, symbol=symbol)


async def sync_open_orders(
    context: AppContext, broker: Broker, *, account_id: int, symbol: str | None = None
) -> int:
    """Ask the venue about our working orders and record what changed; return how many changed."""
    async with context.db.session() as session:
        working = await orders.open_orders(session, broker_account_id=account_id, symbol=symbol)
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
) -> int:
    """Apply a venue report to our order and its bracket legs; return 1 if anything changed."""
    async with context.db.transaction() as session:
        order = await orders.find_order(session, client_id, for_update=True)
        if order is None:
            return 0
        if submitted and order.status == OrderStatus.NEW.value:
            await orders.move(session, order, OrderEventType.SUBMITTED)
            order.submitted_at = now()
        sync = await orders.apply_report(session, order, report)
        changed = int(sync.changes_anything)
        for index, leg in enumerate(report.legs):
            changed |= await _record_leg(session, order, leg, index)
    return changed


async def _record_leg(
    session: AsyncSession, parent: Order, leg: OrderStatusReport, index: int
) -> int:
    name = "take_profit" if index == 0 and leg.order_type.value == "limit" else "stop_loss"
    client_id = leg.client_order_id or orders.leg_client_order_id(parent.client_order_id, name)
    order = await orders.find_order(session, client_id, for_update=True)
    if order is None:
        order = Order(
            user_id=parent.user_id,
            signal_id=parent.signal_id,
            strategy_id=parent.strategy_id,
            broker_account_id=parent.broker_account_id,
            parent_order_id=parent.id,
            leg=name,
            client_order_id=client_id,
            broker_order_id=leg.broker_order_id,
            ticker=parent.ticker,
            symbol=leg.symbol,
            side=leg.side.value,
            order_type=leg.order_type.value,
            time_in_force="gtc",
            quantity=leg.quantity,
            status=OrderStatus.NEW.value,
            filled_quantity=Decimal(0),
        )
        session.add(order)
        await session.flush()
        orders.record_event(session, order, "created", None, {"leg_of": parent.id})
    return int((await orders.apply_report(session, order, leg)).changes_anything)


async def _cancel_open(
    context: AppContext, broker: Broker, account: BrokerAccount, strategy: Strategy, symbol: str
) -> Outcome:
    async with context.db.session() as session:
        working = await orders.open_orders(
            session, broker_account_id=account.id, symbol=symbol, strategy_id=strategy.id
        )
    for order in working:
        if order.broker_order_id is not None:
            await record_report(
                context, order.client_order_id, await broker.cancel_order(order.broker_order_id)
            )
    return Outcome(account.id, True, f"canceled {len(working)} open order(s) in {symbol}")


async def _place(
    context: AppContext,
    broker: Broker,
    signal: Signal,
    strategy: Strategy,
    intent: AlertIntent,
    account: BrokerAccount,
    symbol: str,
) -> Outcome:
    client_id = orders.client_order_id(signal.id, account.id)
    async with context.db.session() as session:
        existing = await orders.find_order(session, client_id)
    if existing is not None and existing.status != OrderStatus.NEW.value:
        return Outcome(account.id, True, f"order {existing.id} is {existing.status}")
    if existing is not None:
        adopted = await broker.fetch_order_by_client_id(client_id)
        if adopted is not None:
            await record_report(context, client_id, adopted)
            return Outcome(account.id, True, f"order {existing.id} found at the broker")
        return await _submit(context, broker, _request_from(existing, intent), account)
    planned = await _plan_request(context, broker, strategy, intent, account, symbol, client_id)
    if planned is None:
        return Outcome(account.id, True, "nothing to do")
    await _create_order(context, planned, signal, strategy, account, intent.ticker)
    return await _submit(context, broker, planned, account)


async def _plan_request(
    context: AppContext,
    broker: Broker,
    strategy: Strategy,
    intent: AlertIntent,
    account: BrokerAccount,
    symbol: str,
    client_id: str,
) -> OrderRequest | None:
    async with context.db.session() as session:
        position = await orders.current_position(
            session, broker_account_id=account.id, strategy_id=strategy.id, ticker=intent.ticker
        )
    needs_equity = QuantityType.PERCENT_OF_EQUITY in (
        intent.quantity_type,
        QuantityType(strategy.sizing_type),
    )
    equity = (await broker.fetch_account()).equity if needs_equity else None
    price = intent.limit_price or intent.price
    plan = plan_order(
        intent,
        sizing=Sizing(QuantityType(strategy.sizing_type), strategy.sizing_value),
        current_position=position,
        equity=equity,
        price=price,
        fractional=broker.capabilities.fractional_quantity,
        notional_orders=broker.capabilities.notional_orders,
    )
    if plan is None:
        return None
    check_order(strategy, ticker=intent.ticker, plan=plan, current_position=position)
    return _build_request(client_id, symbol, plan, intent, entry=price)


def _build_request(
    client_id: str, symbol: str, plan: OrderPlan, intent: AlertIntent, *, entry: Decimal | None
) -> OrderRequest:
    take_profit, stop_loss = (None, None)
    if not plan.reduce_only:
        take_profit, stop_loss = bracket_prices(
            intent.take_profit, intent.stop_loss, entry=entry, side=plan.side
        )
    return OrderRequest(
        client_order_id=client_id,
        symbol=symbol,
        side=plan.side,
        order_type=intent.order_type,
        quantity=plan.quantity,
        notional=plan.notional,
        limit_price=intent.limit_price,
        stop_price=intent.stop_price,
        trail_percent=intent.trail_percent,
        time_in_force=intent.time_in_force,
        take_profit_price=take_profit,
        stop_loss=stop_loss,
        reference_price=intent.price,
    )


def _request_from(order: Order, intent: AlertIntent) -> OrderRequest:
    """Rebuild the request of an order stored before a crash or a failed attempt."""
    plan = OrderPlan(OrderSide(order.side), order.quantity or None, None, reduce_only=False)
    request = _build_request(
        order.client_order_id, order.symbol, plan, intent, entry=intent.limit_price or intent.price
    )
    return OrderRequest(
        **{
            **request.__dict__,
            "order_type": OrderType(order.order_type),
            "time_in_force": TimeInForce(order.time_in_force),
        }
    )


async def _create_order(
    context: AppContext,
    request: OrderRequest,
    signal: Signal,
    strategy: Strategy,
    account: BrokerAccount,
    ticker: str,
) -> None:
    async with context.db.transaction() as session:
        order = orders.new_order(
            request,
            user_id=signal.user_id,
            signal_id=signal.id,
            strategy_id=strategy.id,
            broker_account_id=account.id,
            ticker=ticker,
        )
        session.add(order)
        await session.flush()
        orders.record_event(
            session,
            order,
            "created",
            None,
            {"notional": str(request.notional)} if request.notional else None,
        )


async def _submit(
    context: AppContext, broker: Broker, request: OrderRequest, account: BrokerAccount
) -> Outcome:
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
    await record_report(context, request.client_order_id, report, submitted=True)
    ok = report.status not in (OrderStatus.REJECTED, OrderStatus.FAILED)
    detail = f"{report.status.value}" + (f": {report.reason}" if report.reason else "")
    return Outcome(account.id, ok, f"order {request.client_order_id} {detail}")


async def _refuse(context: AppContext, client_id: str, event: OrderEventType, reason: str) -> None:
    async with context.db.transaction() as session:
        order = await orders.find_order(session, client_id, for_update=True)
        if order is not None:
            await orders.move(session, order, event, reason=reason)


async def _finish_signal(context: AppContext, signal_id: int, status: str, reason: str) -> None:
    async with context.db.transaction() as session:
        signal = await session.get(Signal, signal_id)
        if signal is not None and signal.status == "accepted":
            signal.status = status
            signal.reason = reason[:4000]
            signal.executed_at = now()
