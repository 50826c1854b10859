"""Bracket legs: turn an alert's take-profit and stop-loss (price, percent, amount) into prices."""

from __future__ import annotations

from decimal import Decimal

from pinelab.brokers.base import OrderSide, OrderType, StopLoss
from pinelab.signals.intent import ExitTarget
from pinelab.trading.exceptions import SizingError

HUNDRED = Decimal(100)


def exit_price(
    target: ExitTarget, *, entry: Decimal | None, side: OrderSide, profit: bool, field: str
) -> Decimal:
    """Return the trigger price of a take-profit (profit=True) or a stop-loss for an entry."""
    if target.price is not None:
        return target.price
    if entry is None:
        raise SizingError(
            f"{field}: a percent or amount needs a price (or limit_price) in the alert"
        )
    direction = side.sign if profit else -side.sign
    if target.percent is not None:
        return entry * (1 + direction * target.percent / HUNDRED)
    if target.amount is None:
        raise SizingError(f"{field}: give one of price, percent or amount")
    return entry + direction * target.amount


def bracket_prices(
    take_profit: ExitTarget | None,
    stop_loss: ExitTarget | None,
    *,
    entry: Decimal | None,
    side: OrderSide,
) -> tuple[Decimal | None, StopLoss | None]:
    """Return the take-profit price and the stop-loss leg for an entry order."""
    tp = (
        exit_price(take_profit, entry=entry, side=side, profit=True, field="take_profit")
        if take_profit
        else None
    )
    sl = None
    if stop_loss is not None:
        stop = exit_price(stop_loss, entry=entry, side=side, profit=False, field="stop_loss")
        trail = stop_loss.percent if stop_loss.order_type is OrderType.TRAILING_STOP else None
        sl = StopLoss(
            stop_price=stop,
            limit_price=stop_loss.limit_price,
            trail_percent=trail,
            order_type=stop_loss.order_type,
        )
    for name, price in (("take_profit", tp), ("stop_loss", sl.stop_price if sl else None)):
        if price is not None and price <= 0:
            raise SizingError(f"{name}: works out to a price of {price}, which is not positive")
        if price is not None and entry is not None:
            _check_side(name, price, entry=entry, side=side)
    return tp, sl


def _check_side(name: str, price: Decimal, *, entry: Decimal, side: OrderSide) -> None:
    """Refuse a leg on the wrong side of the entry: it would close the position at once.

    (A distance in pips or percent sent where a price is read looks like this.)
    """
    above = (name == "take_profit") == (side is OrderSide.BUY)
    if above and price <= entry:
        raise SizingError(
            f"{name}: {price} is not above the entry price {entry} of this {side.value}"
        )
    if not above and price >= entry:
        raise SizingError(
            f"{name}: {price} is not below the entry price {entry} of this {side.value}"
        )
