"""The order's lifecycle in the database: create it, and apply broker truth through one mutator.

Every change to a stored order goes through `move` (one typed event through
`order_state.apply`, recorded in the order's history) or `apply_report` (a venue report turned
into events by `reconcile.sync_order`; each fill also books the position and a `Fill` row).
The functions take a synchronous `Session`: callers run them as units of work (`Database.run`).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import ColumnElement, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pinelab.brokers.base import OrderRequest, OrderSide, OrderStatus, OrderStatusReport
from pinelab.clock import now
from pinelab.trading import order_state
from pinelab.trading.models import Fill, Order, OrderEvent, Position
from pinelab.trading.order_state import LifecycleEvent, OrderFilled
from pinelab.trading.positions import book_fill
from pinelab.trading.reconcile import OrderSnapshot, OrderSync, sync_order

log = structlog.get_logger(__name__)

ZERO = Decimal(0)
WORKING = tuple(status.value for status in OrderStatus if not status.is_terminal)

# The statements of every order's path, built once (their parameters are bound per call).
_IN_TICKER = (
    Position.broker_account_id == bindparam("b_account_id"),
    Position.ticker == bindparam("b_ticker"),
)
_POSITION = select(Position).where(*_IN_TICKER, Position.strategy_id == bindparam("b_strategy_id"))
_UNOWNED_POSITION = select(Position).where(*_IN_TICKER, Position.strategy_id.is_(None))
_POSITION_LOCKED = _POSITION.with_for_update()
_UNOWNED_POSITION_LOCKED = _UNOWNED_POSITION.with_for_update()
_POSITION_QUANTITY = select(Position.quantity).where(
    *_IN_TICKER, Position.strategy_id == bindparam("b_strategy_id")
)
_MARK_PRICE = (
    update(Position)
    .where(*_IN_TICKER)
    .values(last_price=bindparam("b_price"), last_price_at=bindparam("b_at"))
    .execution_options(synchronize_session=False)
)
_BY_CLIENT_ID = select(Order).where(Order.client_order_id == bindparam("client_id"))
_BY_CLIENT_ID_LOCKED = _BY_CLIENT_ID.with_for_update()
_COMMISSION = select(func.coalesce(func.sum(Fill.commission), 0)).where(
    Fill.order_id == bindparam("order_id")
)


def client_order_id(signal_id: int, broker_account_id: int) -> str:
    """Return the deterministic id of the order for (signal, account): our idempotency key."""
    digest = hashlib.sha256(f"pinelab:{signal_id}:{broker_account_id}".encode()).hexdigest()
    return f"pl-{digest[:29]}"


def leg_client_order_id(parent: str, leg: str) -> str:
    """Return the id of a bracket leg of a parent order."""
    return f"{parent}-{'tp' if leg == 'take_profit' else 'sl'}"


def find_order(session: Session, client_id: str, *, for_update: bool = False) -> Order | None:
    """Return our order with this client_order_id (locked for update when asked)."""
    locked = for_update and not is_sqlite(session)
    query = _BY_CLIENT_ID_LOCKED if locked else _BY_CLIENT_ID
    return session.execute(query, {"client_id": client_id}).scalar_one_or_none()


def add_order(session: Session, request: OrderRequest, **fields: Any) -> Order:
    """Store a new order (status new) for a request, with its `created` history entry."""
    order = Order(
        client_order_id=request.client_order_id,
        symbol=request.symbol,
        side=request.side.value,
        order_type=request.order_type.value,
        time_in_force=request.time_in_force.value,
        quantity=request.quantity if request.quantity is not None else ZERO,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
        trail_percent=request.trail_percent,
        status=OrderStatus.NEW.value,
        filled_quantity=ZERO,
        **fields,
    )
    session.add(order)
    session.flush()
    detail = {"notional": str(request.notional)} if request.notional else None
    _record_event(session, order, "created", None, detail)
    return order


def move(session: Session, order: Order, event: LifecycleEvent) -> bool:
    """Apply one event to an order and record a status move in its history; tell if it changed."""
    before = order.status
    if not order_state.apply(order, event):
        return False
    if isinstance(event, order_state.OrderStatusEvent):
        detail = {"reason": event.reason} if event.reason else None
        _record_event(session, order, event.type.value, before, detail)
        if event.type is order_state.OrderEventType.SUBMITTED:
            order.submitted_at = now()
    order.updated_at = now()
    return True


def apply_report(session: Session, order: Order, report: OrderStatusReport) -> OrderSync:
    """Bring one order (its fills, position and status) in line with the venue's report."""
    commission = ZERO
    if order.filled_quantity:  # commission is only ever booked with a fill
        total = session.scalar(_COMMISSION, {"order_id": order.id})
        commission = Decimal(str(total or 0))
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
    for fill in sync.fills:
        _book(session, order, fill, report)
    if sync.event is not None:
        move(session, order, sync.event)
    if sync.conflict:
        _record_event(session, order, "conflict", order.status, {"reason": sync.conflict})
    order.updated_at = now()
    return sync


def apply_report_with_legs(
    session: Session, order: Order, report: OrderStatusReport
) -> tuple[bool, str | None]:
    """Apply a report to an order and each bracket leg it carries.

    Return whether anything changed, and the order's conflict with the venue if there is one.
    """
    sync = apply_report(session, order, report)
    changed = sync.changes_anything
    for index, leg in enumerate(report.legs):
        changed |= _apply_leg(session, order, leg, index)
    return changed, sync.conflict


def _apply_leg(session: Session, parent: Order, leg: OrderStatusReport, index: int) -> bool:
    """Apply a bracket leg's report, creating our row for the leg the first time."""
    name = "take_profit" if index == 0 and leg.order_type.value == "limit" else "stop_loss"
    client_id = leg.client_order_id or leg_client_order_id(parent.client_order_id, name)
    order = find_order(session, client_id, for_update=True)
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
            filled_quantity=ZERO,
        )
        session.add(order)
        session.flush()
        _record_event(session, order, "created", None, {"leg_of": parent.id})
    return apply_report(session, order, leg).changes_anything


def _book(session: Session, order: Order, fill: OrderFilled, report: OrderStatusReport) -> None:
    """Apply one fill to the order, its position and the fill log."""
    side = OrderSide(order.side)
    realized = book_fill(
        _position_for(session, order), side, fill.quantity, fill.price, fill.commission, now()
    )
    order_state.apply(order, fill)
    session.add(
        Fill(
            user_id=order.user_id,
            order_id=order.id,
            broker_account_id=order.broker_account_id,
            strategy_id=order.strategy_id,
            broker_fill_id=fill.fill_id,
            ticker=order.ticker,
            side=side.value,
            quantity=fill.quantity,
            price=fill.price,
            commission=fill.commission,
            realized_pnl=realized,
            filled_at=report.updated_at or now(),
        )
    )


def _record_event(
    session: Session,
    order: Order,
    event: str,
    before: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
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
    log.info(  # one line per state change, for whoever watches the log (no secrets in it)
        "order",
        change=event,
        order_id=order.id,
        signal_id=order.signal_id,
        strategy_id=order.strategy_id,
        ticker=order.ticker,
        side=order.side,
        quantity=str(order.quantity),
        from_status=before,
        to_status=order.status,
        filled_quantity=str(order.filled_quantity),
        average_fill_price=None
        if order.average_fill_price is None
        else str(order.average_fill_price),
        **(detail or {}),
    )


def _position_for(session: Session, order: Order) -> Position:
    # A deleted strategy's orders keep booking into the position it left (strategy_id NULL).
    where = {"b_account_id": order.broker_account_id, "b_ticker": order.ticker}
    # Fills of one position may be booked at once (PostgreSQL, several workers): the row is
    # locked, so each booking reads what the one before it wrote (SQLite has a single writer).
    postgres = not is_sqlite(session)
    if order.strategy_id is None:
        query = _UNOWNED_POSITION_LOCKED if postgres else _UNOWNED_POSITION
    else:
        query = _POSITION_LOCKED if postgres else _POSITION
        where["b_strategy_id"] = order.strategy_id
    position = session.execute(query, where).scalar_one_or_none()
    if position is None:
        # Two executions may open it at once: the second insert waits for the first to commit
        # and does nothing; both then book into the one row.
        dialect = postgresql if postgres else sqlite
        opened = dialect.insert(Position).on_conflict_do_nothing(
            index_elements=["broker_account_id", "strategy_id", "ticker"]
        )
        session.execute(
            opened,
            {
                "user_id": order.user_id,
                "broker_account_id": order.broker_account_id,
                "strategy_id": order.strategy_id,
                "ticker": order.ticker,
                "quantity": ZERO,
                "average_price": ZERO,
                "realized_pnl": ZERO,
                "commissions": ZERO,
            },
        )
        position = session.execute(query, where).scalar_one()
    return position


def current_position(
    session: Session, *, broker_account_id: int, strategy_id: int, ticker: str
) -> Decimal:
    """Return the strategy's position in a ticker at an account (0 when none)."""
    where = {"b_account_id": broker_account_id, "b_strategy_id": strategy_id, "b_ticker": ticker}
    return session.execute(_POSITION_QUANTITY, where).scalar_one_or_none() or ZERO


def mark_price(session: Session, *, broker_account_id: int, ticker: str, price: Decimal) -> None:
    """Record the last known price on every position in the ticker at the account."""
    where = {"b_account_id": broker_account_id, "b_ticker": ticker}
    session.execute(_MARK_PRICE, where | {"b_price": price, "b_at": now()})


def account_column(*, sqlite: bool) -> ColumnElement[int]:
    """Return the account column for a lookup of working orders.

    Working orders are few among an account's many: SQLite (no statistics) must take the
    status index, so there the account term is an expression no index serves.
    """
    column = Order.broker_account_id.expression
    return column + 0 if sqlite else column


def is_sqlite(session: Session) -> bool:
    """Tell whether the session's database is SQLite."""
    return session.get_bind().dialect.name == "sqlite"


def open_orders(
    session: Session,
    *,
    broker_account_id: int,
    symbol: str | None = None,
    strategy_id: int | None = None,
) -> list[Order]:
    """Return our orders at an account that are still working."""
    query = select(Order).where(
        account_column(sqlite=is_sqlite(session)) == broker_account_id,
        Order.status.in_(WORKING),
    )
    if symbol is not None:
        query = query.where(Order.symbol == symbol)
    if strategy_id is not None:
        query = query.where(Order.strategy_id == strategy_id)
    return list(session.execute(query.order_by(Order.id)).scalars())
