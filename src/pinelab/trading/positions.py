"""Position math on the average-cost method: pure functions over Decimal, no I/O.

A position is signed (negative is short). Fills in the position's direction move the
average price; fills against it realize P&L at the average price; a fill through zero
closes the old side and opens the rest at the fill price. Realized P&L is gross of
commission; commissions accumulate on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from pinelab.brokers.base import OrderSide

ZERO = Decimal(0)


@dataclass(frozen=True)
class PositionState:
    """A net position with its average entry price and what it has realized so far."""

    quantity: Decimal = ZERO
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    commissions: Decimal = ZERO


def apply_fill(
    state: PositionState,
    side: OrderSide,
    quantity: Decimal,
    price: Decimal,
    commission: Decimal = ZERO,
) -> tuple[PositionState, Decimal]:
    """Return the position after one fill and the realized P&L that fill produced."""
    if quantity <= 0:
        raise ValueError(f"fill quantity must be positive, got {quantity}")
    held = state.quantity
    signed = side.sign * quantity
    new_quantity = held + signed
    commissions = state.commissions + commission
    if held == 0 or (held > 0) == (signed > 0):
        average = (abs(held) * state.average_price + quantity * price) / abs(new_quantity)
        opened = PositionState(new_quantity, average, state.realized_pnl, commissions)
        return opened, ZERO
    closed = min(quantity, abs(held))
    realized = (price - state.average_price) * closed * _sign(held)
    if new_quantity == 0:
        average = ZERO
    elif _sign(new_quantity) == _sign(held):
        average = state.average_price
    else:
        average = price
    reduced = PositionState(new_quantity, average, state.realized_pnl + realized, commissions)
    return reduced, realized


def unrealized_pnl(state: PositionState, last_price: Decimal) -> Decimal:
    """Return the P&L the open position would realize at `last_price`."""
    if state.quantity == 0:
        return ZERO
    return (last_price - state.average_price) * state.quantity


def _sign(value: Decimal) -> int:
    return 1 if value > 0 else -1


class StoredPosition(Protocol):
    """A stored position (a `Position` row) that fills move."""

    quantity: Decimal
    average_price: Decimal
    realized_pnl: Decimal
    commissions: Decimal
    last_price: Decimal | None
    last_price_at: datetime | None


def book_fill(
    position: StoredPosition,
    side: OrderSide,
    quantity: Decimal,
    price: Decimal,
    commission: Decimal,
    moment: datetime,
) -> Decimal:
    """Move a stored position by one fill and mark it at the fill's price; return realized P&L."""
    state = PositionState(
        position.quantity, position.average_price, position.realized_pnl, position.commissions
    )
    state, realized = apply_fill(state, side, quantity, price, commission)
    position.quantity, position.average_price = state.quantity, state.average_price
    position.realized_pnl, position.commissions = state.realized_pnl, state.commissions
    position.last_price, position.last_price_at = price, moment
    return realized
