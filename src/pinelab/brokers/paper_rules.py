"""The paper venue's rules as pure functions: checking requests, when a working order trades
and at what price, and how a fill moves a net position."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Protocol

from pinelab.brokers.base import Capabilities, OrderRequest, OrderSide, OrderType, StopLoss
from pinelab.brokers.exceptions import InvalidOrder
from pinelab.brokers.symbols import paper_symbol
from pinelab.clock import now

PRICE_STEP = Decimal("1e-8")
QUANTITY_STEP = Decimal("1e-8")
MONEY_STEP = Decimal("1e-8")
# The largest quantity, price or order value (quantity × price) the venue takes: its books
# (NUMERIC(38, 18), below 1e20) then hold any position, cash and P&L it can reach.
MAX_ORDER_VALUE = Decimal("1e15")
BPS = Decimal(10_000)
CAPABILITIES = Capabilities(
    bracket_orders=True,
    oco_orders=True,
    notional_orders=True,
    fractional_quantity=True,
    quantity_step=QUANTITY_STEP,
    price_step=PRICE_STEP,
    max_order_value=MAX_ORDER_VALUE,
)
PERCENT = Decimal(100)

# Types that fill at the market once triggered (slippage applies); limits fill at the price seen.
_MARKET_LIKE = frozenset({OrderType.MARKET, OrderType.STOP, OrderType.TRAILING_STOP})
_STOP_LOSS_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})


class WorkingOrder(Protocol):
    """What the rules read and advance on a resting order (the venue's order record)."""

    side: str
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_percent: Decimal | None
    trail_reference: Decimal | None
    triggered_at: datetime | None


def normalise_symbol(ticker: str) -> str:
    """Return the paper symbol of a ticker: its canonical form (brokers/symbols.py)."""
    return paper_symbol(ticker)


def quantize_price(value: Decimal) -> Decimal:
    """Round a price to the venue's tick (1e-8)."""
    return value.quantize(PRICE_STEP, rounding=ROUND_HALF_EVEN)


def quantize_money(value: Decimal) -> Decimal:
    """Round an amount of money to 1e-8."""
    return value.quantize(MONEY_STEP, rounding=ROUND_HALF_EVEN)


def slipped_price(price: Decimal, side: OrderSide, slippage_bps: Decimal) -> Decimal:
    """Return what a market order pays (buy) or receives (sell) when the market is at `price`."""
    return quantize_price(price * (1 + side.sign * slippage_bps / BPS))


def quantity_for_notional(notional: Decimal, fill_price: Decimal) -> Decimal:
    """Convert an amount of money into a quantity at a fill price, never spending more."""
    return (notional / fill_price).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)


def validate_request(request: OrderRequest) -> None:
    """Raise InvalidOrder when a request is malformed; the venue never stores such a request."""
    if (request.quantity is None) == (request.notional is None):
        raise InvalidOrder("give exactly one of quantity and notional")
    if request.notional is not None and request.order_type is not OrderType.MARKET:
        raise InvalidOrder("notional is only accepted on market orders")
    _require_positive("quantity", request.quantity)
    _require_positive("notional", request.notional)
    _require_representable(request)
    _require_positive("reference_price", request.reference_price)
    _validate_prices(
        request.order_type, request.limit_price, request.stop_price, request.trail_percent
    )
    _require_positive("take_profit_price", request.take_profit_price)
    if request.stop_loss is not None:
        _validate_stop_loss(request.stop_loss)
        _validate_bracket_order(request, request.stop_loss)


def _validate_prices(
    order_type: OrderType,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    trail_percent: Decimal | None,
) -> None:
    if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and limit_price is None:
        raise InvalidOrder(f"a {order_type} order needs a limit price")
    if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and stop_price is None:
        raise InvalidOrder(f"a {order_type} order needs a stop price")
    if order_type is OrderType.TRAILING_STOP and not Decimal(0) < (trail_percent or 0) < PERCENT:
        raise InvalidOrder("a trailing_stop order needs a trail percent between 0 and 100")
    _require_positive("limit_price", limit_price)
    _require_positive("stop_price", stop_price)


def _validate_stop_loss(stop_loss: StopLoss) -> None:
    if stop_loss.order_type not in _STOP_LOSS_TYPES:
        raise InvalidOrder(f"a stop loss cannot be a {stop_loss.order_type} order")
    _validate_prices(
        stop_loss.order_type, stop_loss.limit_price, stop_loss.stop_price, stop_loss.trail_percent
    )


def _validate_bracket_order(request: OrderRequest, stop_loss: StopLoss) -> None:
    take_profit = request.take_profit_price
    if take_profit is None or stop_loss.order_type is OrderType.TRAILING_STOP:
        return
    if (take_profit - stop_loss.stop_price) * request.side.sign <= 0:
        raise InvalidOrder(
            f"take profit {take_profit} must be on the profitable side of stop loss "
            f"{stop_loss.stop_price} for a {request.side} entry"
        )


def _require_representable(request: OrderRequest) -> None:
    """Raise InvalidOrder for a value the venue cannot hold (the alert's price is market data:
    only its range counts)."""
    checked = (
        ("quantity", request.quantity, QUANTITY_STEP),
        ("notional", request.notional, MONEY_STEP),
        ("limit_price", request.limit_price, PRICE_STEP),
        ("stop_price", request.stop_price, PRICE_STEP),
        ("take_profit_price", request.take_profit_price, PRICE_STEP),
        ("reference_price", request.reference_price, None),
    )
    for name, value, step in checked:
        problem = None if value is None else CAPABILITIES.value_problem(value, step)
        if problem is not None:
            raise InvalidOrder(f"{name} {value} {problem}")
    price = request.limit_price or request.stop_price or request.reference_price
    if (
        request.quantity is not None
        and price is not None
        and request.quantity * price > MAX_ORDER_VALUE
    ):
        raise InvalidOrder("the order's value is beyond the paper broker's range")


def validate_price(price: Decimal) -> None:
    """Raise InvalidOrder unless a market price is a positive number."""
    _require_positive("price", price)


def _require_positive(name: str, value: Decimal | None) -> None:
    if value is not None and not (value.is_finite() and value > 0):
        raise InvalidOrder(f"{name} must be a positive number, got {value}")


def limit_crossed(side: OrderSide, limit_price: Decimal, price: Decimal) -> bool:
    """Tell whether a limit order can trade at `price`."""
    return price <= limit_price if side is OrderSide.BUY else price >= limit_price


def stop_crossed(side: OrderSide, stop_price: Decimal, price: Decimal) -> bool:
    """Tell whether a stop is touched at `price`."""
    return price >= stop_price if side is OrderSide.BUY else price <= stop_price


def trail(order: WorkingOrder, price: Decimal) -> None:
    """Move a trailing stop's best price and its stop with a new price."""
    side = OrderSide(order.side)
    best = order.trail_reference
    if best is None or (price - best) * side.sign < 0:
        best = price
    percent = order.trail_percent or Decimal(0)
    order.trail_reference = best
    order.stop_price = quantize_price(best * (1 + side.sign * percent / PERCENT))


def execution_price(order: WorkingOrder, price: Decimal, slippage_bps: Decimal) -> Decimal | None:
    """Advance an order's triggers for a market price; return its fill price, or None to rest."""
    side = OrderSide(order.side)
    order_type = OrderType(order.order_type)
    if order_type is OrderType.TRAILING_STOP:
        trail(order, price)
    if order_type is OrderType.STOP_LIMIT and order.triggered_at is None:
        if order.stop_price is None or not stop_crossed(side, order.stop_price, price):
            return None
        order.triggered_at = now()
    if order_type in _MARKET_LIKE:
        triggered = order_type is OrderType.MARKET or (
            order.stop_price is not None and stop_crossed(side, order.stop_price, price)
        )
        return slipped_price(price, side, slippage_bps) if triggered else None
    if order.limit_price is not None and limit_crossed(side, order.limit_price, price):
        return quantize_price(price)
    return None


def apply_fill(
    quantity: Decimal, average_price: Decimal, signed_quantity: Decimal, price: Decimal
) -> tuple[Decimal, Decimal]:
    """Return a net position's (quantity, average price) after a signed fill."""
    new_quantity = quantity + signed_quantity
    if new_quantity == 0:
        return Decimal(0), Decimal(0)
    if quantity == 0 or (quantity > 0) == (signed_quantity > 0):
        cost = abs(quantity) * average_price + abs(signed_quantity) * price
        return new_quantity, quantize_price(cost / abs(new_quantity))
    if (quantity > 0) == (new_quantity > 0):
        return new_quantity, average_price
    return new_quantity, price
