"""Risk checks a strategy applies before any order leaves PineLab."""

from __future__ import annotations

from decimal import Decimal

from pinelab.brokers.symbols import canonical_ticker
from pinelab.strategies.models import Strategy
from pinelab.trading.exceptions import RiskRejected
from pinelab.trading.sizing import OrderPlan


def check_order(
    strategy: Strategy, *, ticker: str, plan: OrderPlan, current_position: Decimal
) -> None:
    """Raise RiskRejected when the order breaks one of the strategy's limits."""
    allowed = strategy.allowed_symbols
    # Both sides canonical: "BINANCE:BTCUSDT" allows the alert for "BTCUSDT" and the reverse.
    if allowed and canonical_ticker(ticker) not in {canonical_ticker(s) for s in allowed}:
        raise RiskRejected(f"{ticker} is not in the strategy's allowed symbols")
    limit = strategy.max_position_quantity
    if limit is not None and plan.quantity is not None and not plan.reduce_only:
        after = current_position + plan.side.sign * plan.quantity
        if abs(after) > limit:
            raise RiskRejected(
                f"position would be {after}, beyond the strategy's maximum of {limit}"
            )
