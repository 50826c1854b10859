"""The Broker protocol: the one way PineLab reaches a venue, and the reports it answers with.

Adapters (paper, Alpaca, CCXT) implement `Broker`; they translate vendor errors into
`pinelab.brokers.exceptions` where they are raised and return the report objects below,
never vendor types. Statuses in reports are already PineLab's (`OrderStatus`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable


class OrderSide(StrEnum):
    """Which way an order trades."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """Return +1 for a buy and -1 for a sell."""
        return 1 if self is OrderSide.BUY else -1

    @property
    def opposite(self) -> OrderSide:
        """Return the other side."""
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class OrderType(StrEnum):
    """How an order is priced."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    """How long an order stays working."""

    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class OrderStatus(StrEnum):
    """PineLab's order states; see `pinelab.trading.order_state` for the legal moves."""

    NEW = "new"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """Tell whether no further move is possible."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.FAILED,
    }
)


@dataclass(frozen=True)
class StopLoss:
    """The protective leg of a bracket."""

    stop_price: Decimal
    limit_price: Decimal | None = None
    trail_percent: Decimal | None = None
    order_type: OrderType = OrderType.STOP


@dataclass(frozen=True)
class OrderRequest:
    """An order to submit; `client_order_id` is ours and makes the submission idempotent."""

    client_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType = OrderType.MARKET
    quantity: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    take_profit_price: Decimal | None = None
    stop_loss: StopLoss | None = None
    reference_price: Decimal | None = None

    @property
    def is_bracket(self) -> bool:
        """Tell whether the order carries take-profit or stop-loss legs."""
        return self.take_profit_price is not None or self.stop_loss is not None


@dataclass(frozen=True)
class OrderStatusReport:
    """What the venue says about one order."""

    client_order_id: str | None
    broker_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None
    reason: str | None = None
    updated_at: datetime | None = None
    commission: Decimal = Decimal(0)  # cumulative, for all fills so far
    legs: tuple[OrderStatusReport, ...] = ()


@dataclass(frozen=True)
class FillReport:
    """One execution at the venue."""

    broker_fill_id: str
    broker_order_id: str
    client_order_id: str | None
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    filled_at: datetime
    commission: Decimal = Decimal(0)


@dataclass(frozen=True)
class PositionReport:
    """The venue's net position in one symbol (negative is short)."""

    symbol: str
    quantity: Decimal
    average_price: Decimal
    market_price: Decimal | None = None


@dataclass(frozen=True)
class AccountReport:
    """The venue's view of the account's money."""

    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    currency: str = "USD"


@dataclass(frozen=True)
class Capabilities:
    """What a venue can do, declared as data so callers never guess."""

    order_types: frozenset[OrderType] = frozenset(OrderType)
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    bracket_orders: bool = False
    oco_orders: bool = False
    fractional_quantity: bool = True
    notional_orders: bool = False
    short_selling: bool = True
    client_order_id: bool = True
    # What every order must fit, where the venue fixes it for all its symbols (else None: the
    # venue's answer tells). A value with more decimals than a step, or beyond the bound (a
    # quantity, a price, or a quantity times its price), is refused before it is stored.
    quantity_step: Decimal | None = None
    price_step: Decimal | None = None
    max_order_value: Decimal | None = None
    extra: dict[str, bool] = field(default_factory=dict)

    def value_problem(self, value: Decimal, step: Decimal | None) -> str | None:
        """Say why the venue cannot hold a value: beyond `max_order_value`, or finer than `step`."""
        if self.max_order_value is not None and abs(value) > self.max_order_value:
            return f"is beyond the largest value the venue takes, {self.max_order_value:,f}"
        if step is not None and value % step != 0:
            return f"has more than {-int(step.as_tuple().exponent)} decimal places"
        return None


@runtime_checkable
class Broker(Protocol):
    """A venue PineLab can trade at; every adapter implements exactly this."""

    capabilities: Capabilities

    async def resolve_symbol(self, ticker: str) -> str:
        """Map a TradingView ticker to the venue's symbol, or raise UnknownSymbol."""
        ...

    async def submit_order(self, request: OrderRequest) -> OrderStatusReport:
        """Place an order; submitting the same client_order_id twice places one order."""
        ...

    async def fetch_order_by_client_id(self, client_order_id: str) -> OrderStatusReport | None:
        """Find an order by our id, or None when the venue has never seen it."""
        ...

    async def fetch_order(self, broker_order_id: str) -> OrderStatusReport:
        """Get an order by the venue's id, or raise OrderNotFound."""
        ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderStatusReport]:
        """List the orders still working, optionally for one symbol."""
        ...

    async def cancel_order(self, broker_order_id: str) -> OrderStatusReport:
        """Cancel a working order and report its state afterwards."""
        ...

    async def fetch_account(self) -> AccountReport:
        """Report equity, cash and buying power."""
        ...

    async def fetch_positions(self) -> list[PositionReport]:
        """Report every open position."""
        ...

    async def fetch_fills(self, since: datetime) -> list[FillReport]:
        """Report every execution at or after `since`."""
        ...

    async def check_connection(self) -> None:
        """Make one cheap authenticated call; raise a BrokerError saying what failed."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class QuoteDriven(Protocol):
    """A simulated venue that learns prices from alerts (the paper broker)."""

    async def update_price(self, symbol: str, price: Decimal) -> None:
        """Record a price and fill any resting order it crosses."""
        ...
