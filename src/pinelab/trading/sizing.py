"""Sizing: turn an AlertIntent into the order to place in one account (see ALERTS.md).

The rules, in order: `cancel` is not sized; `exit` closes the position; a `position_size`
target orders the difference; `add` trades the alert's amount in the position's direction;
`sentiment: flat` on a buy or sell only closes; a buy or sell without a quantity against an
open position on the other side closes that whole position (TradersPost's rule), and also opens
the strategy's size on its own side when `sentiment` says so (`long` on a buy, `short` on a
sell); any other buy or sell is one order of the alert's amount (or, when the alert has none, of
the strategy's sizing rule).

Amounts: `fixed` units, `notional` money at the price, `percent_of_equity` of the account's
equity at the price, `percent_of_position` of the open position, `risk_amount` the money lost
if the stop loss is hit (amount / |entry - stop|, so it needs the price and a stop loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Final

from pinelab.brokers.base import OrderSide
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, QuantityType, Sentiment
from pinelab.trading.exceptions import SizingError

# Quantities computed from money keep the storage scale and never round up past the budget.
QUANTITY_STEP = Decimal("1e-18")
_WHOLE = Decimal(1)


@dataclass(frozen=True)
class OrderPlan:
    """One order to place: a quantity, or a notional amount when the venue takes those."""

    side: OrderSide
    quantity: Decimal | None
    notional: Decimal | None
    reduce_only: bool

    @property
    def signed_quantity(self) -> Decimal | None:
        """Return the quantity with the side's sign, or None for a notional order."""
        return None if self.quantity is None else self.side.sign * self.quantity


@dataclass(frozen=True)
class Sizing:
    """A strategy's sizing rule, used when an alert carries no quantity."""

    type: QuantityType
    value: Decimal


@dataclass(frozen=True)
class _Market:
    equity: Decimal | None
    price: Decimal | None
    fractional: bool
    notional_orders: bool
    position: Decimal = Decimal(0)
    stop_loss: ExitTarget | None = None
    quantity_step: Decimal = QUANTITY_STEP


def plan_order(
    intent: AlertIntent,
    *,
    sizing: Sizing,
    current_position: Decimal,
    equity: Decimal | None,
    price: Decimal | None,
    fractional: bool = True,
    notional_orders: bool = False,
    quantity_step: Decimal | None = None,
) -> OrderPlan | None:
    """Return the order that carries out `intent`, or None when there is nothing to do.

    `price` is the one the order is sized from (`AlertIntent.order_price`); a quantity computed
    from money is rounded down to `quantity_step`, the venue's, when it has one.
    """
    if intent.action is Action.CANCEL:
        raise ValueError("cancel alerts are not sized")
    if intent.action is Action.EXIT:
        return _close(current_position, abs(current_position))
    if intent.position_size is not None:
        return _to_target(intent.position_size, current_position, fractional)
    market = _Market(
        equity,
        price,
        fractional,
        notional_orders,
        current_position,
        intent.stop_loss,
        quantity_step or QUANTITY_STEP,
    )
    if intent.action is Action.ADD:
        if current_position == 0:
            raise SizingError("add needs an open position")
        side = OrderSide.BUY if current_position > 0 else OrderSide.SELL
        return _open(side, *_requested(intent, sizing), market)
    if intent.sentiment is Sentiment.FLAT:
        return _close_only(intent, sizing, current_position, market)
    side = OrderSide.BUY if intent.action is Action.BUY else OrderSide.SELL
    if intent.quantity is None and current_position * side.sign < 0:
        return _close_whole(side, intent, sizing, market)
    return _open(side, *_requested(intent, sizing), market)


def _close_whole(
    side: OrderSide, intent: AlertIntent, sizing: Sizing, market: _Market
) -> OrderPlan | None:
    """Close the whole opposite position; reverse into the strategy's size if sentiment says so."""
    held = abs(market.position)
    entering = Sentiment.LONG if side is OrderSide.BUY else Sentiment.SHORT
    if intent.sentiment is not entering:
        return _close(market.position, held)
    opening = _quantity(*_requested(intent, sizing), market)
    return OrderPlan(side=side, quantity=held + opening, notional=None, reduce_only=False)


def _requested(intent: AlertIntent, sizing: Sizing) -> tuple[QuantityType, Decimal]:
    if intent.quantity is not None:
        kind, value = intent.quantity_type, intent.quantity
    else:
        kind, value = sizing.type, sizing.value
    if value <= 0:
        raise SizingError(f"the {kind.value} quantity must be positive, got {value}")
    return kind, value


def _close_only(
    intent: AlertIntent, sizing: Sizing, current_position: Decimal, market: _Market
) -> OrderPlan | None:
    if current_position == 0 or intent.quantity is None:
        return _close(current_position, abs(current_position))
    wanted = _quantity(*_requested(intent, sizing), market)
    return _close(current_position, min(wanted, abs(current_position)))


def _close(current_position: Decimal, quantity: Decimal) -> OrderPlan | None:
    if current_position == 0:
        return None
    side = OrderSide.SELL if current_position > 0 else OrderSide.BUY
    return OrderPlan(side=side, quantity=quantity, notional=None, reduce_only=True)


def _to_target(target: Decimal, current: Decimal, fractional: bool) -> OrderPlan | None:
    difference = target - current
    if difference == 0:
        return None
    side = OrderSide.BUY if difference > 0 else OrderSide.SELL
    toward_zero = target == 0 or (target > 0) == (current > 0)
    reduce_only = current != 0 and toward_zero and abs(target) < abs(current)
    quantity = _whole_units(abs(difference), fractional)
    return OrderPlan(side=side, quantity=quantity, notional=None, reduce_only=reduce_only)


_MONEY: Final = frozenset({QuantityType.NOTIONAL, QuantityType.PERCENT_OF_EQUITY})


def _open(side: OrderSide, kind: QuantityType, value: Decimal, market: _Market) -> OrderPlan:
    if kind in _MONEY and market.notional_orders and market.fractional:
        notional = _notional(kind, value, market)
        return OrderPlan(side=side, quantity=None, notional=notional, reduce_only=False)
    quantity = _quantity(kind, value, market)
    # A share of the position taken on the other side only ever reduces it.
    closing = kind is QuantityType.PERCENT_OF_POSITION and market.position * side.sign < 0
    return OrderPlan(side=side, quantity=quantity, notional=None, reduce_only=closing)


def _quantity(kind: QuantityType, value: Decimal, market: _Market) -> Decimal:
    if kind is QuantityType.FIXED:
        return _whole_units(value, market.fractional)
    if kind is QuantityType.PERCENT_OF_POSITION:
        return _percent_of_position(value, market)
    if kind is QuantityType.RISK_AMOUNT:
        return _at_risk(value, market)
    notional = _notional(kind, value, market)
    if market.price is None:
        raise SizingError(f"{kind.value} sizing needs a price (the alert's price or a quote)")
    if market.price <= 0:
        raise SizingError(f"{kind.value} sizing needs a positive price, got {market.price}")
    with localcontext() as context:
        context.prec = 60
        step = max(market.quantity_step, QUANTITY_STEP)
        quantity = (notional / market.price).quantize(step, rounding=ROUND_DOWN)
    if quantity == 0:
        raise SizingError(f"{notional} at {market.price} buys less than {step} units")
    return _whole_units(quantity, market.fractional)


def _percent_of_position(percent: Decimal, market: _Market) -> Decimal:
    if market.position == 0:
        raise SizingError("percent_of_position sizing needs an open position in the ticker")
    with localcontext() as context:
        context.prec = 60
        quantity = (abs(market.position) * percent / 100).quantize(
            QUANTITY_STEP, rounding=ROUND_DOWN
        )
    return _whole_units(quantity, market.fractional)


def _at_risk(amount: Decimal, market: _Market) -> Decimal:
    stop = market.stop_loss
    if stop is None:
        raise SizingError("risk_amount sizing needs a stop loss in the alert")
    if stop.amount is not None:
        per_unit = stop.amount
    else:
        if market.price is None or market.price <= 0:
            raise SizingError("risk_amount sizing needs a price (the alert's price or limit_price)")
        if stop.percent is not None:
            per_unit = market.price * stop.percent / 100
        else:
            per_unit = abs(market.price - (stop.price or market.price))
    if per_unit <= 0:
        raise SizingError("risk_amount sizing needs a stop loss away from the entry price")
    with localcontext() as context:
        context.prec = 60
        quantity = (amount / per_unit).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
    if quantity == 0:
        raise SizingError(f"risking {amount} at {per_unit} a unit buys less than {QUANTITY_STEP}")
    return _whole_units(quantity, market.fractional)


def _notional(kind: QuantityType, value: Decimal, market: _Market) -> Decimal:
    if kind is QuantityType.NOTIONAL:
        return value
    if market.equity is None:
        raise SizingError("percent_of_equity sizing needs the account's equity")
    if market.equity <= 0:
        raise SizingError(f"the account has no equity to size from ({market.equity})")
    return market.equity * value / 100


def _whole_units(quantity: Decimal, fractional: bool) -> Decimal:
    if fractional:
        return quantity
    whole = quantity.to_integral_value(rounding=ROUND_DOWN)
    if whole == 0:
        raise SizingError(
            f"quantity {quantity} rounds down to 0 whole units (no fractional trading)"
        )
    return whole
