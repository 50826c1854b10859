"""Our books in one transaction, by prebuilt Core statements: orders, history, fills, positions.

Execution at the paper venue (whose books live in the same database) stores the order, books
the venue's answer and moves the position in the one transaction that also claims and completes
the job. The rules are those of `orders.py`: a report becomes changes through the pure
`reconcile.sync_order`, statuses move only through `order_state.apply`, fills move positions
through `positions.apply_fill`. `Books` keeps what it read and changed in memory and writes it
all in `flush` (new rows, then updates, then history, fills and positions).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, cast

from sqlalchemy import Connection, Select, Table, bindparam, func, insert, literal, select, update

from pinelab.brokers.base import OrderRequest, OrderSide, OrderStatus, OrderStatusReport
from pinelab.clock import now
from pinelab.trading import order_state
from pinelab.trading.models import Fill, Order, OrderEvent, Position
from pinelab.trading.order_state import OrderEventType
from pinelab.trading.orders import (
    leg_client_order_id,
    leg_fields,
    request_fields,
    sync_with_report,
)
from pinelab.trading.positions import book_fill
from pinelab.trading.reconcile import OrderSync

ZERO = Decimal(0)
WORKING = tuple(status.value for status in OrderStatus if not status.is_terminal)

_ORDER = cast(Table, Order.__table__)
_EVENT = cast(Table, OrderEvent.__table__)
_FILL = cast(Table, Fill.__table__)
_POSITION = cast(Table, Position.__table__)


@dataclass(eq=False)
class OrderRecord:
    """One of our orders (a `trade_order` row, or one about to be stored)."""

    user_id: int
    signal_id: int | None
    strategy_id: int | None
    broker_account_id: int
    client_order_id: str
    ticker: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    quantity: Decimal
    status: str
    created_at: datetime
    updated_at: datetime
    filled_quantity: Decimal = ZERO
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    average_fill_price: Decimal | None = None
    reason: str | None = None
    broker_order_id: str | None = None
    parent_order_id: int | None = None
    leg: str | None = None
    submitted_at: datetime | None = None
    pending_alerted_at: datetime | None = None
    id: int | None = None


_ORDER_COLUMNS = tuple(field.name for field in fields(OrderRecord))
_ORDER_MUTABLE = (
    "broker_order_id",
    "quantity",
    "status",
    "filled_quantity",
    "average_fill_price",
    "reason",
    "updated_at",
    "submitted_at",
)


@dataclass(eq=False)
class PositionRecord:
    """A strategy's position in a ticker at an account (a `position` row, or one to store)."""

    user_id: int
    broker_account_id: int
    strategy_id: int | None
    ticker: str
    quantity: Decimal = ZERO
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    commissions: Decimal = ZERO
    last_price: Decimal | None = None
    last_price_at: datetime | None = None
    id: int | None = None


_POSITION_MUTABLE = (
    "quantity",
    "average_price",
    "realized_pnl",
    "commissions",
    "last_price",
    "last_price_at",
)

_FIND = select(_ORDER).where(_ORDER.c.client_order_id == bindparam("client_id")).with_for_update()
_COMMISSION = select(func.coalesce(func.sum(_FILL.c.commission), 0)).where(
    _FILL.c.order_id == bindparam("order_id")
)
_INSERT_ORDER = insert(_ORDER).returning(_ORDER.c.id)
# Updates take their SET columns from the parameters' keys.
_UPDATE_ORDER = update(_ORDER).where(_ORDER.c.id == bindparam("b_id"))
_INSERT_EVENT = insert(_EVENT)
_INSERT_FILL = insert(_FILL)
_POSITION_OF = select(_POSITION).where(
    _POSITION.c.broker_account_id == bindparam("account_id"),
    _POSITION.c.strategy_id == bindparam("strategy_id"),
    _POSITION.c.ticker == bindparam("ticker"),
)
_INSERT_POSITION = insert(_POSITION).returning(_POSITION.c.id)
_UPDATE_POSITION = update(_POSITION).where(_POSITION.c.id == bindparam("b_id"))
_MARK_PRICE = update(_POSITION).where(
    _POSITION.c.broker_account_id == bindparam("b_account_id"),
    _POSITION.c.ticker == bindparam("b_ticker"),
)


@cache
def _working(*, sqlite: bool, of_strategy: bool) -> Select[Any]:
    """Build the query of working orders in a symbol at an account (of one strategy)."""
    # Working orders are few among an account's many: SQLite (no statistics) must take the
    # status index, so its account term is written as an expression no index serves.
    account_id = _ORDER.c.broker_account_id
    statement = select(_ORDER).where(
        (account_id + 0 if sqlite else account_id) == bindparam("account_id"),
        _ORDER.c.symbol == bindparam("symbol"),
        # Literal values, not one expanding parameter: the statement is the same at every run,
        # so `PreparedConnection` runs it on SQLite's cursor.
        _ORDER.c.status.in_([literal(status) for status in WORKING]),
    )
    if of_strategy:
        statement = statement.where(_ORDER.c.strategy_id == bindparam("strategy_id"))
    return statement.order_by(_ORDER.c.id)


@dataclass(frozen=True, eq=False)
class _Event:
    order: OrderRecord
    event: str
    from_status: str | None
    to_status: str
    detail: dict[str, Any] | None
    occurred_at: datetime
    leg_of: OrderRecord | None = None


@dataclass(frozen=True, eq=False)
class _Fill:
    order: OrderRecord
    values: dict[str, Any]


class Books:
    """Our orders, fills and positions as one transaction reads and changes them."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._orders: list[OrderRecord] = []  # loaded or added, in that order
        self._order_snapshots: dict[int, tuple[Any, ...]] = {}
        self._events: list[_Event] = []
        self._fills: list[_Fill] = []
        self._positions: dict[tuple[int, int | None, str], PositionRecord] = {}
        self._position_snapshots: dict[int, tuple[Any, ...]] = {}
        self._parents: dict[int, OrderRecord] = {}  # id(leg record) -> its parent, until stored

    # ------------------------------------------------------------------ orders

    def find(self, client_id: str) -> OrderRecord | None:
        """Return our order with this client_order_id (locked for update on PostgreSQL)."""
        for order in self._orders:
            if order.client_order_id == client_id:
                return order
        row = self._connection.execute(_FIND, {"client_id": client_id}).mappings().first()
        return None if row is None else self._loaded(row)

    def working(
        self, *, broker_account_id: int, symbol: str, strategy_id: int | None = None
    ) -> list[OrderRecord]:
        """Return our working orders at an account in a symbol (of one strategy if given)."""
        params = {"account_id": broker_account_id, "symbol": symbol, "strategy_id": strategy_id}
        sqlite = self._connection.dialect.name == "sqlite"
        statement = _working(sqlite=sqlite, of_strategy=strategy_id is not None)
        known = {order.id: order for order in self._orders if order.id is not None}
        return [
            known.get(row["id"]) or self._loaded(row)
            for row in self._connection.execute(statement, params).mappings()
        ]

    def add(
        self, request: OrderRequest, detail: dict[str, Any] | None, **fields: Any
    ) -> OrderRecord:
        """Add an order (status new) for a request, with its `created` step."""
        moment = now()
        order = OrderRecord(
            **request_fields(request), created_at=moment, updated_at=moment, **fields
        )
        self._orders.append(order)
        self._event(order, "created", None, detail)
        return order

    def move(self, order: OrderRecord, event: OrderEventType, *, reason: str | None = None) -> bool:
        """Apply one state-machine event to an order and record it; tell whether it changed."""
        before = order.status
        if not order_state.apply(order, event):
            return False
        if reason:
            order.reason = reason
        self._event(order, event.value, before, {"reason": reason} if reason else None)
        order.updated_at = now()
        return True

    def apply_report(self, order: OrderRecord, report: OrderStatusReport) -> int:
        """Bring an order, its bracket legs and its position in line with a venue report.

        Return 1 if anything changed, else 0.
        """
        sync = self._apply(order, report)
        changed = int(sync.changes_anything)
        for index, leg in enumerate(report.legs):
            changed |= self._apply_leg(order, leg, index)
        return changed

    def _apply(self, order: OrderRecord, report: OrderStatusReport) -> OrderSync:
        sync = sync_with_report(order, report, self._commission(order))
        for fill in sync.fills:
            self._fill(
                order, fill.broker_fill_id, fill.quantity, fill.price, fill.commission, report
            )
        if sync.event is not None:
            self.move(order, sync.event, reason=sync.reason)
        if sync.conflict:
            self._event(order, "conflict", order.status, {"reason": sync.conflict})
        order.updated_at = now()
        return sync

    def _apply_leg(self, parent: OrderRecord, leg: OrderStatusReport, index: int) -> int:
        name = "take_profit" if index == 0 and leg.order_type.value == "limit" else "stop_loss"
        client_id = leg.client_order_id or leg_client_order_id(parent.client_order_id, name)
        order = self.find(client_id)
        if order is None:
            moment = now()
            order = OrderRecord(
                **leg_fields(parent, leg, name, client_id), created_at=moment, updated_at=moment
            )
            self._orders.append(order)
            self._parents[id(order)] = parent
            self._event(order, "created", None, None, leg_of=parent)
        return int(self._apply(order, leg).changes_anything)

    def _commission(self, order: OrderRecord) -> Decimal:
        """Return the commission booked on the order's fills so far (only fills carry one)."""
        if not order.filled_quantity:
            return ZERO
        total = sum(
            (fill.values["commission"] for fill in self._fills if fill.order is order), ZERO
        )
        if order.id is not None:
            stored = self._connection.scalar(_COMMISSION, {"order_id": order.id})
            total += Decimal(str(stored or 0))
        return total

    def _fill(
        self,
        order: OrderRecord,
        fill_id: str,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
        report: OrderStatusReport,
    ) -> None:
        position = self.position(
            broker_account_id=order.broker_account_id,
            strategy_id=order.strategy_id,
            ticker=order.ticker,
            user_id=order.user_id,
        )
        side = OrderSide(order.side)
        realized = book_fill(position, order, (side, quantity, price, commission), now())
        values = {
            "user_id": order.user_id,
            "broker_account_id": order.broker_account_id,
            "strategy_id": order.strategy_id,
            "broker_fill_id": fill_id,
            "ticker": order.ticker,
            "side": side.value,
            "quantity": quantity,
            "price": price,
            "commission": commission,
            "realized_pnl": realized,
            "filled_at": report.updated_at or now(),
        }
        self._fills.append(_Fill(order, values))

    def _event(
        self,
        order: OrderRecord,
        event: str,
        before: str | None,
        detail: dict[str, Any] | None,
        *,
        leg_of: OrderRecord | None = None,
    ) -> None:
        self._events.append(_Event(order, event, before, order.status, detail, now(), leg_of))

    def _loaded(self, row: Any) -> OrderRecord:
        order = OrderRecord(**{name: row[name] for name in _ORDER_COLUMNS})
        self._orders.append(order)
        self._order_snapshots[row["id"]] = _values(order, _ORDER_MUTABLE)
        return order

    # ------------------------------------------------------------------ positions

    def position(
        self, *, broker_account_id: int, strategy_id: int | None, ticker: str, user_id: int
    ) -> PositionRecord:
        """Return the strategy's position in a ticker at an account (flat when there is none)."""
        key = (broker_account_id, strategy_id, ticker)
        position = self._positions.get(key)
        if position is None:
            params = {"account_id": broker_account_id, "strategy_id": strategy_id, "ticker": ticker}
            row = self._connection.execute(_POSITION_OF, params).mappings().first()
            if row is None:
                position = PositionRecord(user_id, broker_account_id, strategy_id, ticker)
            else:
                position = PositionRecord(
                    **{name: row[name] for name in (f.name for f in fields(PositionRecord))}
                )
                self._position_snapshots[row["id"]] = _values(position, _POSITION_MUTABLE)
            self._positions[key] = position
        return position

    def mark_price(self, *, broker_account_id: int, ticker: str, price: Decimal) -> None:
        """Record the last known price on every position in the ticker at the account."""
        moment = now()
        values = {"last_price": price, "last_price_at": moment, "updated_at": moment}
        self._connection.execute(
            _MARK_PRICE, {"b_account_id": broker_account_id, "b_ticker": ticker} | values
        )
        for (account_id, _, position_ticker), position in self._positions.items():
            # Only stored rows were marked; a new one is stored by its first fill.
            if (account_id, position_ticker) == (broker_account_id, ticker) and position.id:
                position.last_price, position.last_price_at = price, moment
                self._position_snapshots[position.id] = _values(position, _POSITION_MUTABLE)

    # ------------------------------------------------------------------ writing

    def flush(self) -> None:
        """Write everything added or changed since the last flush."""
        connection = self._connection
        for order in self._orders:
            if order.id is None:
                parent = self._parents.pop(id(order), None)
                if parent is not None:
                    order.parent_order_id = parent.id
                values = {name: getattr(order, name) for name in _ORDER_COLUMNS[:-1]}
                order.id = connection.execute(_INSERT_ORDER, values).scalar_one()
                self._order_snapshots[order.id] = _values(order, _ORDER_MUTABLE)
        changed = [
            {"b_id": order.id} | {name: getattr(order, name) for name in _ORDER_MUTABLE}
            for order in self._orders
            if order.id is not None
            and self._order_snapshots[order.id] != _values(order, _ORDER_MUTABLE)
        ]
        if changed:
            connection.execute(_UPDATE_ORDER, changed)
            for order in self._orders:
                if order.id is not None:
                    self._order_snapshots[order.id] = _values(order, _ORDER_MUTABLE)
        if self._events:
            connection.execute(_INSERT_EVENT, [_event_values(event) for event in self._events])
            self._events = []
        if self._fills:
            connection.execute(
                _INSERT_FILL, [{"order_id": fill.order.id} | fill.values for fill in self._fills]
            )
            self._fills = []
        self._flush_positions()

    def _flush_positions(self) -> None:
        moment = now()
        for position in self._positions.values():
            current = _values(position, _POSITION_MUTABLE)
            if position.id is None:
                if position.last_price_at is None:
                    continue  # read for sizing, never filled: nothing to store
                values = {name: getattr(position, name) for name in _POSITION_COLUMNS}
                values["updated_at"] = moment
                position.id = self._connection.execute(_INSERT_POSITION, values).scalar_one()
            elif self._position_snapshots[position.id] != current:
                values = dict(zip(_POSITION_MUTABLE, current, strict=True))
                values |= {"b_id": position.id, "updated_at": moment}
                self._connection.execute(_UPDATE_POSITION, values)
            self._position_snapshots[position.id] = current


_POSITION_COLUMNS = tuple(f.name for f in fields(PositionRecord) if f.name != "id")


def _values(record: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in names)


def _event_values(event: _Event) -> dict[str, Any]:
    detail = event.detail
    if event.leg_of is not None:
        detail = {"leg_of": event.leg_of.id}
    return {
        "order_id": event.order.id,
        "event": event.event,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "detail": detail,
        "occurred_at": event.occurred_at,
    }
