"""Bracket legs from parsed alerts: prices from percent and amount, and the refusals."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pinelab.brokers.base import OrderSide, OrderType, StopLoss
from pinelab.signals.intent import AlertIntent, ExitTarget
from pinelab.signals.parser import parse_alert
from pinelab.trading.brackets import bracket_prices, exit_price
from pinelab.trading.exceptions import SizingError


def parsed(**fields: Any) -> AlertIntent:
    body = {"ticker": "AAPL", "action": "buy", "quantity": "1", **fields}
    return parse_alert(json.dumps(body).encode(), "application/json")


def brackets(
    intent: AlertIntent, *, entry: str | None, side: OrderSide = OrderSide.BUY
) -> tuple[Decimal | None, StopLoss | None]:
    return bracket_prices(
        intent.take_profit,
        intent.stop_loss,
        entry=None if entry is None else Decimal(entry),
        side=side,
    )


@pytest.mark.parametrize(
    ("side", "take_profit", "stop"),
    [
        (OrderSide.BUY, Decimal("105"), Decimal("98")),
        (OrderSide.SELL, Decimal("95"), Decimal("102")),
    ],
)
def test_amounts_are_added_away_from_the_entry_by_side(
    side: OrderSide, take_profit: Decimal, stop: Decimal
) -> None:
    intent = parsed(take_profit={"amount": "5"}, stop_loss={"amount": "2"})

    tp, sl = brackets(intent, entry="100", side=side)

    assert tp == take_profit
    assert sl is not None
    assert (sl.stop_price, sl.order_type, sl.trail_percent) == (stop, OrderType.STOP, None)


def test_percent_targets_are_measured_from_the_entry() -> None:
    intent = parsed(take_profit={"percent": "10"}, stop_loss={"percent": "5"})

    tp, sl = brackets(intent, entry="200")

    assert tp == Decimal("220")
    assert sl is not None
    assert sl.stop_price == Decimal("190")


def test_a_price_target_needs_no_entry() -> None:
    tp, sl = brackets(parsed(take_profit={"price": "250"}), entry=None)

    assert (tp, sl) == (Decimal("250"), None)


def test_a_trailing_stop_keeps_its_percent_as_the_trail() -> None:
    intent = parsed(stop_loss={"type": "trailing_stop", "percent": "3"})

    _, sl = brackets(intent, entry="100")

    assert sl is not None
    assert (sl.order_type, sl.trail_percent, sl.stop_price) == (
        OrderType.TRAILING_STOP,
        Decimal("3"),
        Decimal("97"),
    )


@pytest.mark.parametrize("leg", ["take_profit", "stop_loss"])
@pytest.mark.parametrize("kind", ["percent", "amount"])
def test_a_relative_target_without_an_entry_price_is_refused(leg: str, kind: str) -> None:
    intent = parsed(**{leg: {kind: "2"}})

    with pytest.raises(SizingError, match=f"^{leg}: a percent or amount needs a price"):
        brackets(intent, entry=None)


def test_a_target_with_no_price_percent_or_amount_is_refused() -> None:
    with pytest.raises(SizingError, match="take_profit: give one of price, percent or amount"):
        exit_price(
            ExitTarget(),
            entry=Decimal(100),
            side=OrderSide.BUY,
            profit=True,
            field="take_profit",
        )


@pytest.mark.parametrize(
    ("side", "fields", "leg"),
    [
        (OrderSide.SELL, {"take_profit": {"percent": "150"}}, "take_profit"),
        (OrderSide.BUY, {"stop_loss": {"amount": "100"}}, "stop_loss"),
        (OrderSide.BUY, {"stop_loss": {"amount": "120"}}, "stop_loss"),
    ],
)
def test_a_leg_that_works_out_to_a_non_positive_price_is_refused(
    side: OrderSide, fields: dict[str, Any], leg: str
) -> None:
    with pytest.raises(SizingError, match=f"^{leg}: works out to a price of -?\\d+"):
        brackets(parsed(**fields), entry="100", side=side)
