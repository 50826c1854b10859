"""Our orders in the database: create them; apply broker truth (fills, status, positions).

The functions take a synchronous `Session` (the execution path runs whole transactions in one
`Database.run_session` hop); `find_order`, `move` and `apply_report` also come in the async
form for callers holding an `AsyncSession`, running the same code through `run_sync`.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pinelab.brokers.base import OrderRequest, OrderSide, OrderStatus, OrderStatusReport
from pinelab.clock import now
from pinelab.trading import order_state
from pinelab.trading.models import Fill, Order, OrderEvent, Position
from pinelab.trading.order_state import OrderEventType
from pinelab.trading.positions import book_fill
from pinelab.trading.reconcile import OrderSnapshot, OrderSync, sync_order

ZERO = Decimal(0)


def client_order_id(signal_id: int, broker_account_id: int) -> str:
    """Return the deterministic id of the order for (signal, account): our idempotency key."""
    digest = hashlib.sha256(f"pinelab:{signal_id}:{broker_account_id}".encode()).hexdigest()
    return f"pl-{digest[:29]}"


def leg_client_order_id(parent: str, leg: str) -> str:
    """Return the id of a bracket leg of a parent order."""
    return f"{parent}-{'tp' if leg == 'take_profit' else 'sl'}"


def find_order_sync(session: Session, client_id: str, *, for_update: bool = False) -> Order | None:
    """Return our order with this client_order_id (locked for update when asked)."""
    query = select(Order).where(Order.client_order_id == client_id)
    if for_update and session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


async def find_order(
    session: AsyncSession, client_id: str, *, for_update: bool = False
) -> Order | None:
    """Return our order with this client_order_id."""
    return await session.run_sync(find_order_sync, client_id, for_update=for_update)


def request_fields(request: OrderRequest) -> dict[str, Any]:
    """Return the columns of a new order (status new) that come from its request."""
    return {
        "client_order_id": request.client_order_id,
        "symbol": request.symbol,
        "side": request.side.value,
        "order_type": request.order_type.value,
        "time_in_force": request.time_in_force.value,
        "quantity": request.quantity if request.quantity is not None else ZERO,
        "limit_price": request.limit_price,
        "stop_price": request.stop_price,
        "trail_percent": request.trail_percent,
        "status": OrderStatus.NEW.value,
    }


class ParentOrder(Protocol):
    """What a bracket leg takes from its parent order (an `Order` or a Core-path record)."""

    @property
    def id(self) -> int | None: ...
    @property
    def user_id(self) -> int: ...
    @property
    def signal_id(self) -> int | None: ...
    @property
    def strategy_id(self) -> int | None: ...
    @property
    def broker_account_id(self) -> int: ...
    @property
    def ticker(self) -> str: ...


def leg_fields(
    parent: ParentOrder, leg: OrderStatusReport, name: str, client_id: str
) -> dict[str, Any]:
    """Return the columns of our row for a bracket leg the broker reported (status new)."""
    return {
        "user_id": parent.user_id,
        "signal_id": parent.signal_id,
        "strategy_id": parent.strategy_id,
        "broker_account_id": parent.broker_account_id,
        "parent_order_id": parent.id,
        "leg": name,
        "client_order_id": client_id,
        "broker_order_id": leg.broker_order_id,
        "ticker": parent.ticker,
        "symbol": leg.symbol,
        "side": leg.side.value,
        "order_type": leg.order_type.value,
        "time_in_force": "gtc",
        "quantity": leg.quantity,
        "status": OrderStatus.NEW.value,
    }


def new_order(request: OrderRequest, **fields: Any) -> Order:
    """Build an order row (status new) for a request."""
    return Order(**request_fields(request), filled_quantity=ZERO, **fields)


def record_event(
    session: Session | AsyncSession,
    order: Order,
    event: str,
    before: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append a step to the order's history."""
    session.add(
        OrderEvent(
            order_id=order.id,
            event=event,
            from_status=before,
            to_status=order.status,
            detail=detail,
            occurred_at=now(),
        )
    )


def move_sync(
    session: Session | AsyncSession,
    order: Order,
    event: OrderEventType,
    *,
    reason: str | None = None,
) -> bool:
    """Apply one state-machine event to an order and record it; tell whether it changed."""
    before = order.status
    if not order_state.apply(order, event):
        return False
    if reason:
        order.reason = reason
    record_event(session, order, event.value, before, {"reason": reason} if reason else None)
    return True


async def move(
    session: AsyncSession, order: Order, event: OrderEventType, *, reason: str | None = None
) -> bool:
    """Apply one state-machine event to an order and record it; tell whether it changed."""
    return move_sync(session, order, event, reason=reason)


async def apply_report(session: AsyncSession, order: Order, report: OrderStatusReport) -> OrderSync:
    """Bring one order (and its position) in line with the venue's report."""
    return await session.run_sync(apply_report_sync, order, report)


class ReportedOrder(Protocol):
    """What reconciling with a report reads and sets on an order (`Order` or a Core record)."""

    status: str
    quantity: Decimal
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    broker_order_id: str | None


def sync_with_report(
    order: ReportedOrder, report: OrderStatusReport, commission: Decimal
) -> OrderSync:
    """Run `sync_order` on an order's snapshot and take the venue's id and quantity from it.

    Fills and the status event it returns are for the caller to book. `commission` is what the
    order's fills have booked so far.
    """
    snapshot = OrderSnapshot(
        status=OrderStatus(order.status),
        filled_quantity=order.filled_quantity,
        average_fill_price=order.average_fill_price,
        broker_order_id=order.broker_order_id,
        commission=commission,
    )
    sync = sync_order(snapshot, report)
    if sync.broker_order_id:
        order.broker_order_id = sync.broker_order_id
    if order.quantity == 0 and report.quantity:
        order.quantity = report.quantity
    return sync


def apply_report_sync(session: Session, order: Order, report: OrderStatusReport) -> OrderSync:
    """Bring one order (and its position) in line with the venue's report, through sync_order."""
    commission = ZERO
    if order.filled_quantity:  # commission is only ever booked with a fill
        total = session.scalar(
            select(func.coalesce(func.sum(Fill.commission), 0)).where(Fill.order_id == order.id)
        )
        commission = Decimal(str(total or 0))
    sync = sync_with_report(order, report, commission)
    for fill in sync.fills:
        _record_fill(
            session, order, fill.broker_fill_id, fill.quantity, fill.price, fill.commission, report
        )
    if sync.event is not None:
        move_sync(session, order, sync.event, reason=sync.reason)
    if sync.conflict:
        record_event(session, order, "conflict", order.status, {"reason": sync.conflict})
    order.updated_at = now()
    return sync


def _record_fill(
    session: Session,
    order: Order,
    fill_id: str,
    quantity: Decimal,
    price: Decimal,
    commission: Decimal,
    report: OrderStatusReport,
) -> None:
    position = _position_for(session, order)
    side = order_side(order)
    realized = book_fill(position, order, (side, quantity, price, commission), now())
    session.add(
        Fill(
            user_id=order.user_id,
            order_id=order.id,
            broker_account_id=order.broker_account_id,
            strategy_id=order.strategy_id,
            broker_fill_id=fill_id,
            ticker=order.ticker,
            side=side.value,
            quantity=quantity,
            price=price,
            commission=commission,
            realized_pnl=realized,
            filled_at=report.updated_at or now(),
        )
    )


def order_side(order: Order) -> OrderSide:
    """Return the order's side."""
    return OrderSide(order.side)


def _position_for(session: Session, order: Order) -> Position:
    query = select(Position).where(
        Position.broker_account_id == order.broker_account_id,
        Position.strategy_id == order.strategy_id,
        Position.ticker == order.ticker,
    )
    position = session.execute(query).scalar_one_or_none()
    if position is None:
        position = Position(
            user_id=order.user_id,
            broker_account_id=order.broker_account_id,
            strategy_id=order.strategy_id,
            ticker=order.ticker,
            quantity=ZERO,
            average_price=ZERO,
            realized_pnl=ZERO,
            commissions=ZERO,
        )
        session.add(position)
        session.flush()
    return position


def current_position(
    session: Session, *, broker_account_id: int, strategy_id: int | None, ticker: str
) -> Decimal:
    """Return the strategy's position in a ticker at an account (0 when none)."""
    query = select(Position.quantity).where(
        Position.broker_account_id == broker_account_id,
        Position.strategy_id == strategy_id,
        Position.ticker == ticker,
    )
    return session.execute(query).scalar_one_or_none() or ZERO


def mark_price(session: Session, *, broker_account_id: int, ticker: str, price: Decimal) -> None:
    """Record the last known price on every position in the ticker at the account."""
    session.execute(
        update(Position)
        .where(Position.broker_account_id == broker_account_id, Position.ticker == ticker)
        .values(last_price=price, last_price_at=now())
        .execution_options(synchronize_session=False)
    )


def open_orders(
    session: Session,
    *,
    broker_account_id: int,
    symbol: str | None = None,
    strategy_id: int | None = None,
) -> list[Order]:
    """Return our orders at an account that are still working."""
    working = [s.value for s in OrderStatus if not s.is_terminal]
    query = select(Order).where(
        Order.broker_account_id == broker_account_id, Order.status.in_(working)
    )
    if symbol is not None:
        query = query.where(Order.symbol == symbol)
    if strategy_id is not None:
        query = query.where(Order.strategy_id == strategy_id)
    return list(session.execute(query.order_by(Order.id)).scalars())
