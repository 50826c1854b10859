"""The paper venue inside one transaction: its books read and written with Core statements.

`PaperVenue` runs one venue operation (submit, price update, cancel, fetches) on the paper
broker's connection, in the transaction `PaperBroker` opens for it. Each operation locks the
venue account first (writes serialise on it) and writes what it changed before it returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Connection,
    Insert,
    Select,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from pinelab.brokers import paper_rules as rules
from pinelab.brokers.base import (
    AccountReport,
    FillReport,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    PositionReport,
    TimeInForce,
)
from pinelab.brokers.exceptions import InvalidOrder, OrderNotFound
from pinelab.brokers.models import PaperAccount, PaperFill, PaperOrder, PaperPosition, PaperQuote
from pinelab.brokers.paper_matching import (
    MUTABLE,
    OPEN,
    Matcher,
    VenueFill,
    VenueOrder,
    VenuePosition,
    close_order,
)
from pinelab.clock import now

_ON_ARRIVAL_ONLY = frozenset({TimeInForce.IOC.value, TimeInForce.FOK.value})

_ACCOUNT = cast(Table, PaperAccount.__table__)
_ORDER = cast(Table, PaperOrder.__table__)
_FILL = cast(Table, PaperFill.__table__)
_POSITION = cast(Table, PaperPosition.__table__)
_QUOTE = cast(Table, PaperQuote.__table__)

_ACCOUNT_ID: BindParameter[int] = bindparam("account_id")
_MINE = _ORDER.c.broker_account_id == _ACCOUNT_ID
_ORDERS = select(_ORDER).where(_MINE)
_LOCK_ACCOUNT = (
    select(_ACCOUNT.c.cash).where(_ACCOUNT.c.broker_account_id == _ACCOUNT_ID).with_for_update()
)
_CASH = select(_ACCOUNT.c.cash).where(_ACCOUNT.c.broker_account_id == _ACCOUNT_ID)
# Updates take their SET columns from the parameters' keys.
_STORE_CASH = update(_ACCOUNT).where(_ACCOUNT.c.broker_account_id == bindparam("b_account_id"))
_BY_CLIENT_ID = _ORDERS.where(_ORDER.c.client_order_id == bindparam("client_order_id"))
_BY_BROKER_ID = _ORDERS.where(_ORDER.c.broker_order_id == bindparam("broker_order_id"))
_LEGS = _ORDERS.where(
    _ORDER.c.parent_broker_order_id.in_(bindparam("parents", expanding=True))
).order_by(_ORDER.c.id)
_INSERT_ORDER = insert(_ORDER).returning(_ORDER.c.id)
_UPDATE_ORDER = update(_ORDER).where(_ORDER.c.id == bindparam("b_id"))
_INSERT_FILL = insert(_FILL)
_POSITION_OF = select(_POSITION.c.id, _POSITION.c.quantity, _POSITION.c.average_price).where(
    _POSITION.c.broker_account_id == _ACCOUNT_ID, _POSITION.c.symbol == bindparam("symbol")
)
_POSITIONS = (
    select(_POSITION.c.symbol, _POSITION.c.quantity, _POSITION.c.average_price)
    .where(_POSITION.c.broker_account_id == _ACCOUNT_ID, _POSITION.c.quantity != 0)
    .order_by(_POSITION.c.symbol)
)
_INSERT_POSITION = insert(_POSITION)
_UPDATE_POSITION = update(_POSITION).where(_POSITION.c.id == bindparam("b_id"))
_QUOTES = select(_QUOTE.c.symbol, _QUOTE.c.price).where(_QUOTE.c.broker_account_id == _ACCOUNT_ID)
_LAST_PRICE = select(_QUOTE.c.price).where(
    _QUOTE.c.broker_account_id == _ACCOUNT_ID, _QUOTE.c.symbol == bindparam("symbol")
)
# Summed here, not by the database: SQLite would sum the Money text as floats.
_COMMISSIONS = select(_FILL.c.paper_order_id, _FILL.c.commission).where(
    _FILL.c.paper_order_id.in_(bindparam("order_ids", expanding=True))
)
_FILLS = (
    select(_FILL, _ORDER.c.client_order_id.label("order_client_id"), _ORDER.c.broker_order_id)
    .join(_ORDER, _ORDER.c.id == _FILL.c.paper_order_id)
    .where(_FILL.c.broker_account_id == _ACCOUNT_ID, _FILL.c.filled_at >= bindparam("since"))
    .order_by(_FILL.c.filled_at, _FILL.c.id)
)


@dataclass(frozen=True)
class _Statements:
    """The statements whose text differs between SQLite and PostgreSQL."""

    create_account: Insert
    store_quote: Insert
    open: Select[Any]
    open_in_symbol: Select[Any]
    open_in_group: Select[Any]


@cache
def _statements(dialect_name: str) -> _Statements:
    """Build a dialect's statements once."""
    dialect = sqlite if dialect_name == "sqlite" else postgresql
    account = dialect.insert(_ACCOUNT).on_conflict_do_nothing(index_elements=["broker_account_id"])
    quote = dialect.insert(_QUOTE)
    quote = quote.on_conflict_do_update(
        index_elements=["broker_account_id", "symbol"],
        set_={"price": quote.excluded.price, "quoted_at": quote.excluded.quoted_at},
    )
    # Open orders are few among an account's many: SQLite (no statistics) must take the status
    # index, so its account term is written as an expression no index serves.
    account_id = _ORDER.c.broker_account_id
    mine = (account_id + 0 if dialect_name == "sqlite" else account_id) == _ACCOUNT_ID
    open_orders = select(_ORDER).where(mine, _ORDER.c.status == OPEN).order_by(_ORDER.c.id)
    return _Statements(
        account,
        quote,
        open_orders,
        open_orders.where(_ORDER.c.symbol == bindparam("symbol")),
        open_orders.where(_ORDER.c.oco_group == bindparam("oco_group")),
    )


@dataclass(frozen=True)
class PaperConfig:
    """One paper account's venue settings (from its broker account)."""

    broker_account_id: int
    starting_cash: Decimal
    commission_per_order: Decimal
    slippage_bps: Decimal


class PaperVenue:
    """One account's paper venue on the caller's connection, for one transaction."""

    def __init__(self, connection: Connection, config: PaperConfig) -> None:
        self._connection = connection
        self._config = config
        self._key = {"account_id": config.broker_account_id}
        self._statements = _statements(connection.dialect.name)
        self.cash = Decimal(0)
        self._stored_cash: Decimal | None = None  # None until the account is locked
        self._orders: dict[int, VenueOrder] = {}
        self._snapshots: dict[int, tuple[Any, ...]] = {}
        self._created: list[VenueOrder] = []
        self._fills: list[VenueFill] = []
        self._paid: dict[int, Decimal] = {}  # commission of the orders this transaction filled
        self._positions: dict[str, VenuePosition] = {}
        self._stored_positions: dict[str, tuple[Decimal, Decimal] | None] = {}
        self._quoted: dict[str, Decimal] = {}  # prices this transaction already worked

    @property
    def account_id(self) -> int:
        """Return the id of the broker account this venue serves."""
        return self._config.broker_account_id

    # ------------------------------------------------------------------ broker operations

    def submit(self, request: OrderRequest) -> OrderStatusReport:
        """Place an order, or report the existing one when its client_order_id is known."""
        self._lock()
        existing = self._one(_BY_CLIENT_ID, client_order_id=request.client_order_id)
        if existing is not None:
            return self._report(existing)
        rules.validate_request(request)
        symbol = rules.normalise_symbol(request.symbol)
        price = request.reference_price
        # A new price works every resting order of the symbol; a known one only this order.
        fresh = price is not None and self._quoted.get(symbol) != price
        if price is not None and fresh:
            self._store_quote(symbol, price)
        if price is None:
            price = self._connection.scalar(_LAST_PRICE, self._key | {"symbol": symbol})
        order = self._new_order(request, symbol, price)
        self._created.append(order)
        if price is None and order.order_type == OrderType.MARKET.value:
            close_order(order, OrderStatus.REJECTED, f"no price known for {symbol}")
        elif price is not None:
            resting = self._load(self._statements.open_in_symbol, symbol=symbol) if fresh else []
            self._matcher().match([*resting, order], price)
        if order.status == OPEN and order.time_in_force in _ON_ARRIVAL_ONLY:
            close_order(order, OrderStatus.CANCELED, f"{order.time_in_force} order could not fill")
        self._flush()
        return self._report(order)

    def update_price(self, symbol: str, price: Decimal) -> None:
        """Record a price and fill the resting orders it crosses, oldest first."""
        rules.validate_price(price)
        symbol = rules.normalise_symbol(symbol)
        self._lock()
        self._store_quote(symbol, price)
        self._matcher().match(self._load(self._statements.open_in_symbol, symbol=symbol), price)
        self._flush()

    def cancel(self, broker_order_id: str) -> OrderStatusReport:
        """Cancel a working order; a canceled, rejected or expired one is reported unchanged."""
        self._lock()
        order = self._order(broker_order_id)
        if order.status == OrderStatus.FILLED.value:
            raise InvalidOrder("order is already filled")
        if order.status == OPEN:
            close_order(order, OrderStatus.CANCELED, "canceled by request")
            self._flush()
        return self._report(order)

    def fetch_order(self, broker_order_id: str) -> OrderStatusReport:
        """Report an order by the venue's id, or raise OrderNotFound."""
        return self._report(self._order(broker_order_id))

    def fetch_order_by_client_id(self, client_order_id: str) -> OrderStatusReport | None:
        """Report an order by our id, or None when the venue has never seen it."""
        order = self._one(_BY_CLIENT_ID, client_order_id=client_order_id)
        return None if order is None else self._report(order)

    def fetch_open_orders(self, symbol: str | None = None) -> list[OrderStatusReport]:
        """Report the working orders, oldest first, optionally of one symbol."""
        if symbol is None:
            return self._reports(self._load(self._statements.open))
        return self._reports(
            self._load(self._statements.open_in_symbol, symbol=rules.normalise_symbol(symbol))
        )

    def account(self) -> AccountReport:
        """Report cash, buying power (equal to cash) and equity marked at the last quotes."""
        stored = self._connection.scalar(_CASH, self._key)
        cash = self._config.starting_cash if stored is None else stored
        quotes = self._quotes()
        market_value = sum(
            (
                row.quantity * quotes.get(row.symbol, row.average_price)
                for row in self._connection.execute(_POSITIONS, self._key)
            ),
            Decimal(0),
        )
        equity = rules.quantize_money(cash + market_value)
        return AccountReport(equity=equity, cash=cash, buying_power=cash)

    def positions(self) -> list[PositionReport]:
        """Report every non-zero position with its average price and last quote."""
        quotes = self._quotes()
        return [
            PositionReport(
                symbol=row.symbol,
                quantity=row.quantity,
                average_price=row.average_price,
                market_price=quotes.get(row.symbol),
            )
            for row in self._connection.execute(_POSITIONS, self._key)
        ]

    def fills(self, since: datetime) -> list[FillReport]:
        """Report every execution at or after `since`, oldest first."""
        return [
            FillReport(
                broker_fill_id=row.broker_fill_id,
                broker_order_id=row.broker_order_id,
                client_order_id=row.order_client_id,
                symbol=row.symbol,
                side=OrderSide(row.side),
                quantity=row.quantity,
                price=row.price,
                filled_at=row.filled_at,
                commission=row.commission,
            )
            for row in self._connection.execute(_FILLS, self._key | {"since": since})
        ]

    def touch(self) -> None:
        """Read the account's cash: the cheapest statement that proves the books are there."""
        self._connection.scalar(_CASH, self._key)

    # ------------------------------------------------------------------ VenueBooks

    def position(self, symbol: str) -> VenuePosition:
        """Return the venue's position in a symbol (flat when it has none yet)."""
        position = self._positions.get(symbol)
        if position is None:
            row = self._connection.execute(_POSITION_OF, self._key | {"symbol": symbol}).first()
            if row is None:
                position = VenuePosition(symbol, Decimal(0), Decimal(0))
                self._stored_positions[symbol] = None
            else:
                position = VenuePosition(symbol, row.quantity, row.average_price, row.id)
                self._stored_positions[symbol] = (row.quantity, row.average_price)
            self._positions[symbol] = position
        return position

    def add_fill(self, fill: VenueFill) -> None:
        """Keep a fill to store."""
        self._fills.append(fill)

    def place(self, order: VenueOrder) -> None:
        """Keep a new order (a bracket leg) to store."""
        self._created.append(order)

    def open_siblings(self, order: VenueOrder) -> list[VenueOrder]:
        """Return the other open orders of the order's one-cancels-other group."""
        stored = self._load(self._statements.open_in_group, oco_group=order.oco_group)
        return [
            other
            for other in [*stored, *self._created]
            if other is not order and other.oco_group == order.oco_group and other.status == OPEN
        ]

    # ------------------------------------------------------------------ reading and writing

    def _lock(self) -> None:
        """Create the account at starting cash if needed and lock it: writes serialise on it."""
        if self._stored_cash is not None:
            return
        cash: Decimal | None = self._connection.scalar(_LOCK_ACCOUNT, self._key)
        if cash is None:
            self._connection.execute(
                self._statements.create_account,
                {
                    "broker_account_id": self._config.broker_account_id,
                    "cash": self._config.starting_cash,
                    "updated_at": now(),
                },
            )
            cash = self._connection.execute(_LOCK_ACCOUNT, self._key).scalar_one()
        self.cash = self._stored_cash = cash

    def _store_quote(self, symbol: str, price: Decimal) -> None:
        self._connection.execute(
            self._statements.store_quote,
            {
                "broker_account_id": self._config.broker_account_id,
                "symbol": symbol,
                "price": price,
                "quoted_at": now(),
            },
        )
        self._quoted[symbol] = price

    def _quotes(self) -> dict[str, Decimal]:
        return {row.symbol: row.price for row in self._connection.execute(_QUOTES, self._key)}

    def _matcher(self) -> Matcher:
        return Matcher(
            self,
            commission_per_order=self._config.commission_per_order,
            slippage_bps=self._config.slippage_bps,
        )

    def _load(self, statement: Select[Any], **params: Any) -> list[VenueOrder]:
        """Run an order query; rows already loaded keep their (possibly newer) record."""
        loaded = []
        for row in self._connection.execute(statement, self._key | params).mappings():
            order = self._orders.get(row["id"])
            if order is None:
                order = VenueOrder.from_row(row)
                self._remember(order, row["id"])
            loaded.append(order)
        return loaded

    def _one(self, statement: Select[Any], **params: Any) -> VenueOrder | None:
        found = self._load(statement, **params)
        return found[0] if found else None

    def _order(self, broker_order_id: str) -> VenueOrder:
        order = self._one(_BY_BROKER_ID, broker_order_id=broker_order_id)
        if order is None:
            raise OrderNotFound(f"no paper order {broker_order_id}")
        return order

    def _remember(self, order: VenueOrder, order_id: int) -> None:
        order.id = order_id
        self._orders[order_id] = order
        self._snapshots[order_id] = tuple(getattr(order, name) for name in MUTABLE)

    def _flush(self) -> None:
        """Write every change of this operation: new orders first (fills refer to them)."""
        connection = self._connection
        for order in self._created:
            self._remember(order, connection.execute(_INSERT_ORDER, order.values()).scalar_one())
        self._created = []
        changed = [
            {"b_id": order_id} | {name: getattr(order, name) for name in MUTABLE}
            for order_id, order in self._orders.items()
            if self._snapshots[order_id] != tuple(getattr(order, name) for name in MUTABLE)
        ]
        if changed:
            connection.execute(_UPDATE_ORDER, changed)
            for values in changed:
                self._remember(self._orders[values["b_id"]], values["b_id"])
        if self._fills:
            connection.execute(_INSERT_FILL, [self._fill_values(fill) for fill in self._fills])
            for fill in self._fills:
                order_id = fill.order.id or 0
                self._paid[order_id] = self._paid.get(order_id, Decimal(0)) + fill.commission
            self._fills = []
        self._flush_positions()
        if self._stored_cash is not None and self.cash != self._stored_cash:
            connection.execute(
                _STORE_CASH,
                {"b_account_id": self._config.broker_account_id, "cash": self.cash}
                | {"updated_at": now()},
            )
            self._stored_cash = self.cash

    def _flush_positions(self) -> None:
        for symbol, position in self._positions.items():
            stored = self._stored_positions[symbol]
            if stored == (position.quantity, position.average_price):
                continue
            values: dict[str, Any] = {
                "quantity": position.quantity,
                "average_price": position.average_price,
            }
            if position.id is None:
                values |= {"broker_account_id": self._config.broker_account_id, "symbol": symbol}
                key = self._connection.execute(_INSERT_POSITION, values).inserted_primary_key
                position.id = int(key[0]) if key else None
            else:
                self._connection.execute(_UPDATE_POSITION, values | {"b_id": position.id})
            self._stored_positions[symbol] = (position.quantity, position.average_price)

    def _fill_values(self, fill: VenueFill) -> dict[str, Any]:
        return {
            "broker_account_id": self._config.broker_account_id,
            "paper_order_id": fill.order.id,
            "broker_fill_id": fill.broker_fill_id,
            "symbol": fill.order.symbol,
            "side": fill.order.side,
            "quantity": fill.quantity,
            "price": fill.price,
            "commission": fill.commission,
            "filled_at": fill.filled_at,
        }

    def _new_order(self, request: OrderRequest, symbol: str, price: Decimal | None) -> VenueOrder:
        quantity = request.quantity or Decimal(0)
        if request.notional is not None and price is not None:
            fill_price = rules.slipped_price(price, request.side, self._config.slippage_bps)
            quantity = rules.quantity_for_notional(request.notional, fill_price)
        stop_loss = request.stop_loss
        moment = now()
        order = VenueOrder(
            broker_account_id=self._config.broker_account_id,
            broker_order_id=uuid.uuid4().hex,
            client_order_id=request.client_order_id,
            symbol=symbol,
            side=request.side.value,
            order_type=request.order_type.value,
            time_in_force=request.time_in_force.value,
            quantity=quantity,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            trail_percent=request.trail_percent,
            status=OPEN,
            take_profit_price=request.take_profit_price,
            stop_loss_type=None if stop_loss is None else stop_loss.order_type.value,
            stop_loss_price=None if stop_loss is None else stop_loss.stop_price,
            stop_loss_limit_price=None if stop_loss is None else stop_loss.limit_price,
            stop_loss_trail_percent=None if stop_loss is None else stop_loss.trail_percent,
            created_at=moment,
            updated_at=moment,
        )
        if request.order_type is OrderType.TRAILING_STOP and price is not None:
            rules.trail(order, price)
        return order

    # ------------------------------------------------------------------ reports

    def _report(self, order: VenueOrder) -> OrderStatusReport:
        return self._reports([order])[0]

    def _reports(self, orders: Sequence[VenueOrder]) -> list[OrderStatusReport]:
        """Report orders, each with its bracket legs and the commission its fills paid."""
        legs: dict[str, list[VenueOrder]] = {}
        # Only an entry that carried a take profit or a stop loss can have legs.
        parents = [order.broker_order_id for order in orders if order.is_bracket]
        if parents:
            for child in self._load(_LEGS, parents=parents):
                legs.setdefault(child.parent_broker_order_id or "", []).append(child)
        everyone = [*orders, *(leg for group in legs.values() for leg in group)]
        paid = self._commissions([o.id for o in everyone if o.filled_quantity and o.id])

        def report(
            order: VenueOrder, children: tuple[OrderStatusReport, ...] = ()
        ) -> OrderStatusReport:
            return order_report(order, children, paid.get(order.id or 0, Decimal(0)))

        return [
            report(order, tuple(map(report, legs.get(order.broker_order_id, ()))))
            for order in orders
        ]

    def _commissions(self, order_ids: list[int]) -> dict[int, Decimal]:
        """Return the commission paid by each order's fills (only filled orders paid any)."""
        if not order_ids:
            return {}
        paid: dict[int, Decimal] = {}
        for order_id, commission in self._connection.execute(
            _COMMISSIONS, {"order_ids": order_ids}
        ):
            paid[order_id] = paid.get(order_id, Decimal(0)) + commission
        return paid


def order_report(
    order: VenueOrder,
    legs: tuple[OrderStatusReport, ...] = (),
    commission: Decimal = Decimal(0),
) -> OrderStatusReport:
    """Report one venue order."""
    return OrderStatusReport(
        client_order_id=order.client_order_id,
        broker_order_id=order.broker_order_id,
        symbol=order.symbol,
        side=OrderSide(order.side),
        order_type=OrderType(order.order_type),
        status=OrderStatus(order.status),
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        average_fill_price=order.average_fill_price,
        reason=order.reject_reason,
        updated_at=order.updated_at,
        legs=legs,
        commission=commission,
    )
