"""The paper venue's matching engine: works resting orders against a price, in memory.

It fills what a price crosses (oldest first), books each fill into the venue's cash and
position, places bracket legs and cancels one-cancels-other siblings. It reads and writes
through `VenueBooks` (the venue's rows of one transaction, see `paper_venue`), so every
change it makes is written by the caller in that same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from pinelab.brokers import paper_rules as rules
from pinelab.brokers.base import OrderSide, OrderStatus, OrderType, TimeInForce
from pinelab.clock import now

OPEN = OrderStatus.ACCEPTED.value


@dataclass(eq=False)
class VenueOrder:
    """An order as the paper venue knows it (a `paper_order` row, or one about to be)."""

    broker_account_id: int
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    quantity: Decimal
    status: str
    created_at: datetime
    updated_at: datetime
    filled_quantity: Decimal = Decimal(0)
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_reference: Decimal | None = None
    average_fill_price: Decimal | None = None
    reject_reason: str | None = None
    parent_broker_order_id: str | None = None
    oco_group: str | None = None
    triggered_at: datetime | None = None
    take_profit_price: Decimal | None = None
    stop_loss_type: str | None = None
    stop_loss_price: Decimal | None = None
    stop_loss_limit_price: Decimal | None = None
    stop_loss_trail_percent: Decimal | None = None
    id: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> VenueOrder:
        """Build the record of a `paper_order` row (a Core row mapping)."""
        return cls(**{name: row[name] for name in _COLUMNS})

    def values(self) -> dict[str, Any]:
        """Return the column values to store."""
        return {name: getattr(self, name) for name in _COLUMNS if name != "id"}

    @property
    def is_bracket(self) -> bool:
        """Tell whether the order places legs when it fills."""
        return self.take_profit_price is not None or self.stop_loss_type is not None


_COLUMNS = tuple(field.name for field in fields(VenueOrder))
# What matching, cancels and fills may change on a stored order.
MUTABLE = (
    "status",
    "filled_quantity",
    "average_fill_price",
    "reject_reason",
    "trail_reference",
    "stop_price",
    "triggered_at",
    "updated_at",
)


@dataclass(eq=False)
class VenuePosition:
    """The venue's net position in one symbol."""

    symbol: str
    quantity: Decimal
    average_price: Decimal
    id: int | None = None


@dataclass(frozen=True, eq=False)
class VenueFill:
    """An execution to store."""

    order: VenueOrder
    broker_fill_id: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    filled_at: datetime


class VenueBooks(Protocol):
    """The venue's rows of one transaction, as the matcher reads and changes them."""

    cash: Decimal

    def position(self, symbol: str) -> VenuePosition:
        """Return the position in a symbol (a flat one when there is none)."""
        ...

    def add_fill(self, fill: VenueFill) -> None:
        """Keep a fill to store."""
        ...

    def place(self, order: VenueOrder) -> None:
        """Keep a new order (a bracket leg) to store."""
        ...

    def open_siblings(self, order: VenueOrder) -> list[VenueOrder]:
        """Return the other open orders of the order's one-cancels-other group."""
        ...


def close_order(order: VenueOrder, status: OrderStatus, reason: str | None) -> None:
    """Move an order to a final status, with the reason shown in its report."""
    order.status = status.value
    order.reject_reason = reason
    order.updated_at = now()


class Matcher:
    """Work one account's open orders against a price (the caller holds the account lock)."""

    def __init__(
        self, books: VenueBooks, *, commission_per_order: Decimal, slippage_bps: Decimal
    ) -> None:
        self._books = books
        self._commission = commission_per_order
        self._slippage_bps = slippage_bps

    def match(self, orders: Sequence[VenueOrder], price: Decimal) -> None:
        """Work `orders` (oldest first) at `price`, then the bracket legs their fills placed."""
        while orders:
            placed: list[VenueOrder] = []
            for order in orders:
                # An earlier fill in this pass may have canceled this order (one-cancels-other).
                if order.status != OPEN:
                    continue
                fill_price = rules.execution_price(order, price, self._slippage_bps)
                if fill_price is not None:
                    placed.extend(self._fill(order, fill_price, market_price=price))
            orders = placed

    def _fill(
        self, order: VenueOrder, fill_price: Decimal, *, market_price: Decimal
    ) -> list[VenueOrder]:
        """Fill an order in full (or reject it for want of cash); return the legs it placed."""
        books = self._books
        side = OrderSide(order.side)
        value = rules.quantize_money(order.quantity * fill_price)
        needed = side.sign * value + self._commission
        if books.cash - needed < 0:
            cash = _plain(books.cash)
            reason = f"insufficient cash: {cash} available, {_plain(needed)} needed"
            close_order(order, OrderStatus.REJECTED, reason)
            return []
        books.cash -= needed
        moment = now()
        books.add_fill(
            VenueFill(order, uuid.uuid4().hex, order.quantity, fill_price, self._commission, moment)
        )
        position = books.position(order.symbol)
        position.quantity, position.average_price = rules.apply_fill(
            position.quantity, position.average_price, side.sign * order.quantity, fill_price
        )
        order.filled_quantity = order.quantity
        order.average_fill_price = fill_price
        close_order(order, OrderStatus.FILLED, None)
        if order.oco_group is not None:
            reason = f"one-cancels-other: {order.broker_order_id} filled"
            for sibling in books.open_siblings(order):
                close_order(sibling, OrderStatus.CANCELED, reason)
        legs = _legs(order, market_price)
        for leg in legs:
            books.place(leg)
        return legs


def _plain(value: Decimal) -> str:
    """Write an amount without exponent or trailing zeros, as a person would."""
    return format(value.normalize(), "f")


def _legs(entry: VenueOrder, market_price: Decimal) -> list[VenueOrder]:
    """Build the bracket legs of a filled entry (none when it is not a bracket)."""
    legs: list[VenueOrder] = []
    if entry.take_profit_price is not None:
        take_profit = _leg(entry, "tp", OrderType.LIMIT)
        take_profit.limit_price = entry.take_profit_price
        legs.append(take_profit)
    if entry.stop_loss_type is not None:
        stop_loss = _leg(entry, "sl", OrderType(entry.stop_loss_type))
        stop_loss.stop_price = entry.stop_loss_price
        stop_loss.limit_price = entry.stop_loss_limit_price
        stop_loss.trail_percent = entry.stop_loss_trail_percent
        if stop_loss.order_type == OrderType.TRAILING_STOP.value:
            rules.trail(stop_loss, market_price)
        legs.append(stop_loss)
    if len(legs) > 1:
        for leg in legs:
            leg.oco_group = entry.broker_order_id
    return legs


def _leg(entry: VenueOrder, suffix: str, order_type: OrderType) -> VenueOrder:
    moment = now()
    return VenueOrder(
        broker_account_id=entry.broker_account_id,
        broker_order_id=uuid.uuid4().hex,
        client_order_id=f"{entry.broker_order_id}-{suffix}",
        symbol=entry.symbol,
        side=OrderSide(entry.side).opposite.value,
        order_type=order_type.value,
        time_in_force=TimeInForce.GTC.value,
        quantity=entry.filled_quantity,
        status=OPEN,
        parent_broker_order_id=entry.broker_order_id,
        created_at=moment,
        updated_at=moment,
    )
