"""The door: what the strategy's broker accounts cannot take is refused before it is stored.

An alert that parsed is still refused (a 422 naming the field, recorded as rejected) when a bound
account's venue could never carry it out, so the trader learns it from the webhook's answer and
not from a failed signal after the 202:

- a ticker the venue does not trade at all (a perpetual or a continuous future at Alpaca or on
  the CCXT spot adapter; brokers/symbols.py);
- a value the venue cannot represent, where it declares its limits as data (`Capabilities`:
  `quantity_step`, `price_step`, `max_order_value`; today the paper broker): more decimal places
  than its step, or beyond its range, a quantity times its price included;
- a market order for the paper broker with no usable price: the alert carries no `price` and the
  paper venue has seen none for the symbol, so it could not fill it.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from sqlalchemy import func, select

from pinelab.brokers.base import Capabilities, OrderType
from pinelab.brokers.models import PaperQuote
from pinelab.brokers.paper_rules import CAPABILITIES as PAPER
from pinelab.brokers.symbols import venue_refusal
from pinelab.db import Database
from pinelab.errors import ErrorDetail
from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, QuantityType, Sentiment
from pinelab.strategies.tokens import StrategySnapshot

PAPER_KIND = "paper"
_OPENING = frozenset({Action.BUY, Action.SELL, Action.ADD})
_NEEDS_A_PRICE = (
    "needs a price for a market order on the paper broker, which has seen none for {symbol} yet: "
    "send the alert's \"price\" (TradingView's {{{{close}}}})"
)


class Admission:
    """Check an alert against the venues of the strategy's live broker accounts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def check(self, strategy: StrategySnapshot, intent: AlertIntent) -> None:
        """Raise AlertRejected naming every field a bound venue cannot take."""
        kinds = {kind.partition(":")[0]: kind for _, kind in strategy.live_accounts}
        errors = [
            ErrorDetail("ticker", refusal)
            for kind in sorted(kinds.values())
            if (refusal := venue_refusal(kind, intent.ticker)) is not None
        ]
        if PAPER_KIND in kinds:
            errors.extend(unrepresentable(intent, PAPER, "the paper broker"))
            paper_ids = [id_ for id_, kind in strategy.live_accounts if kind == PAPER_KIND]
            if not errors and await self._lacks_a_price(intent, paper_ids):
                errors.append(ErrorDetail("price", _NEEDS_A_PRICE.format(symbol=intent.ticker)))
        if errors:
            raise AlertRejected(errors)

    async def _lacks_a_price(self, intent: AlertIntent, paper_ids: list[int]) -> bool:
        """Tell whether a paper market order would have no price to fill at, in some account."""
        opens = intent.action in _OPENING and intent.sentiment is not Sentiment.FLAT
        if intent.price is not None or intent.order_type is not OrderType.MARKET or not opens:
            return False
        query = select(func.count()).where(
            PaperQuote.broker_account_id.in_(paper_ids), PaperQuote.symbol == intent.ticker
        )
        async with self._db.session() as session:
            quoted = int(await session.scalar(query) or 0)
        return quoted < len(paper_ids)


def unrepresentable(
    intent: AlertIntent, capabilities: Capabilities, venue: str
) -> list[ErrorDetail]:
    """Name each of the alert's values the venue cannot hold, and why."""
    errors = []
    for field, value, step in _values(intent, capabilities):
        problem = capabilities.value_problem(value, step)
        if problem is not None:
            errors.append(ErrorDetail(field, f"{problem}: {venue} cannot represent {value}"))
    order_value = _order_value(intent)
    limit = capabilities.max_order_value
    if not errors and order_value is not None and limit is not None and order_value > limit:
        errors.append(
            ErrorDetail(
                "quantity",
                f"times the order's price is {order_value:,f}, beyond the largest order {venue} "
                f"takes ({limit:,f})",
            )
        )
    return errors


def _values(
    intent: AlertIntent, capabilities: Capabilities
) -> Iterator[tuple[str, Decimal, Decimal | None]]:
    """Each numeric field with the step it must fit (None: only its range counts)."""
    quantity_steps = {
        QuantityType.FIXED: capabilities.quantity_step,
        QuantityType.NOTIONAL: capabilities.price_step,  # money, to the venue's cent
        QuantityType.PERCENT_OF_EQUITY: None,
    }
    price_step = capabilities.price_step
    candidates: list[tuple[str, Decimal | None, Decimal | None]] = [
        ("quantity", intent.quantity, quantity_steps[intent.quantity_type]),
        ("position_size", intent.position_size, capabilities.quantity_step),
        ("price", intent.price, None),  # the market's price as TradingView saw it
        ("limit_price", intent.limit_price, price_step),
        ("stop_price", intent.stop_price, price_step),
    ]
    for name, target in (("take_profit", intent.take_profit), ("stop_loss", intent.stop_loss)):
        candidates.extend(_target_values(name, target, price_step))
    for field, value, step in candidates:
        if value is not None:
            yield field, value, step


def _target_values(
    name: str, target: ExitTarget | None, step: Decimal | None
) -> list[tuple[str, Decimal | None, Decimal | None]]:
    if target is None:
        return []
    return [
        (f"{name}.price", target.price, step),
        (f"{name}.amount", target.amount, step),
        (f"{name}.limit_price", target.limit_price, step),
    ]


def _order_value(intent: AlertIntent) -> Decimal | None:
    """A fixed quantity times the price it would trade at, when both are known."""
    if intent.quantity is None or intent.quantity_type is not QuantityType.FIXED:
        return None
    price = intent.order_price
    return None if price is None else intent.quantity * price
