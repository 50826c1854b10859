"""TradersPost's messages, copied from its webhook reference, read as it documents them."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pinelab.brokers.base import OrderType, TimeInForce
from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, QuantityType, Sentiment
from pinelab.signals.parser import parse_alert

D = Decimal


def parse(message: dict[str, Any]) -> AlertIntent:
    return parse_alert(json.dumps(message).encode(), "application/json")


def refusal(message: dict[str, Any]) -> AlertRejected:
    with pytest.raises(AlertRejected) as caught:
        parse(message)
    return caught.value


def test_the_reference_example_reads_with_its_brackets():
    intent = parse(
        {
            "ticker": "AMD",
            "action": "buy",
            "signalPrice": 143.12,
            "quantity": 1,
            "takeProfit": {"percent": 10},
            "stopLoss": {"type": "stop", "percent": 5},
        }
    )
    assert (intent.ticker, intent.action, intent.quantity, intent.price) == (
        "AMD",
        Action.BUY,
        D(1),
        D("143.12"),
    )
    assert intent.take_profit == ExitTarget(percent=D(10))
    assert intent.stop_loss == ExitTarget(percent=D(5), order_type=OrderType.STOP)


@pytest.mark.parametrize(
    ("word", "kind"),
    [
        ("fixed_quantity", QuantityType.FIXED),
        ("dollar_amount", QuantityType.NOTIONAL),
        ("risk_dollar_amount", QuantityType.RISK_AMOUNT),
        ("percent_of_equity", QuantityType.PERCENT_OF_EQUITY),
        ("percent_of_position", QuantityType.PERCENT_OF_POSITION),
    ],
)
def test_every_quantity_type_is_read(word: str, kind: QuantityType):
    intent = parse({"ticker": "AAPL", "action": "buy", "quantityType": word, "quantity": 10})
    assert (intent.quantity_type, intent.quantity) == (kind, D(10))


def test_risk_dollar_amount_example_keeps_its_stop_price():
    intent = parse(
        {
            "ticker": "AAPL",
            "action": "buy",
            "orderType": "limit",
            "limitPrice": 180,
            "quantityType": "risk_dollar_amount",
            "quantity": 100,
            "stopLoss": {"type": "stop", "stopPrice": "170"},
        }
    )
    assert intent.quantity_type is QuantityType.RISK_AMOUNT
    assert (intent.order_type, intent.limit_price) == (OrderType.LIMIT, D(180))
    assert intent.stop_loss == ExitTarget(price=D(170), order_type=OrderType.STOP)
    assert intent.dialect == "TradersPost"


def test_unknown_quantity_type_is_refused_listing_tradersposts_words():
    message = {"ticker": "AAPL", "action": "buy", "sentiment": "bullish", "quantityType": "shares"}
    error = refusal({**message, "quantity": 1})
    assert error.details[0].field == "quantityType"
    assert "fixed_quantity, dollar_amount" in error.message


@pytest.mark.parametrize(
    ("word", "sentiment"),
    [
        ("bullish", Sentiment.LONG),
        ("bearish", Sentiment.SHORT),
        ("long", Sentiment.LONG),
        ("short", Sentiment.SHORT),
    ],
)
def test_every_sentiment_is_read(word: str, sentiment: Sentiment):
    message = {"ticker": "AAPL", "action": "sell", "sentiment": word, "stopLoss": {"stopPrice": 1}}
    assert parse(message).sentiment is sentiment


def test_flat_exits_the_full_position_whatever_the_quantity():
    intent = parse(
        {
            "ticker": "SQ",
            "action": "sell",
            "sentiment": "flat",
            "quantity": 5,
            "extendedHours": False,
        }
    )
    assert (intent.action, intent.sentiment, intent.quantity) == (Action.SELL, Sentiment.FLAT, None)


def test_sentiment_with_exit_is_refused_as_traderspost_does():
    error = refusal({"ticker": "GOOGL", "action": "exit", "sentiment": "bearish"})
    assert [d.field for d in error.details] == ["sentiment"]
    assert "only be sent with action buy or sell (read in the TradersPost format)" in error.message


def test_take_profit_limit_price_is_the_take_profit_price():
    intent = parse(
        {
            "ticker": "SQ",
            "action": "buy",
            "takeProfit": {"limitPrice": 19.99},
            "stopLoss": {"type": "stop", "stopPrice": 10.71},
        }
    )
    assert intent.take_profit == ExitTarget(price=D("19.99"))
    assert intent.stop_loss == ExitTarget(price=D("10.71"))


def test_stop_limit_stop_loss_keeps_both_prices():
    intent = parse(
        {
            "ticker": "SQ",
            "action": "buy",
            "stopLoss": {"type": "stop_limit", "stopPrice": 10.71, "limitPrice": 10.75},
        }
    )
    assert intent.stop_loss == ExitTarget(
        price=D("10.71"), order_type=OrderType.STOP_LIMIT, limit_price=D("10.75")
    )


def test_trailing_stop_loss_by_percent_is_read():
    intent = parse(
        {"ticker": "SQ", "action": "buy", "stopLoss": {"type": "trailing_stop", "trailPercent": 1}}
    )
    assert intent.stop_loss == ExitTarget(percent=D(1), order_type=OrderType.TRAILING_STOP)


def test_trailing_stop_by_amount_is_refused_naming_the_field():
    error = refusal(
        {
            "ticker": "SQ",
            "action": "buy",
            "orderType": "limit",
            "limitPrice": 71,
            "stopLoss": {"type": "trailing_stop", "trailAmount": 1},
        }
    )
    assert [d.field for d in error.details] == ["stopLoss.trailAmount"]
    assert "send trailPercent" in error.message


def test_trailing_stop_order_by_percent_is_read_and_by_amount_refused():
    intent = parse(
        {"ticker": "AAPL", "action": "sell", "orderType": "trailing_stop", "trailPercent": "5"}
    )
    assert (intent.order_type, intent.trail_percent) == (OrderType.TRAILING_STOP, D(5))
    error = refusal(
        {"ticker": "AAPL", "action": "sell", "orderType": "trailing_stop", "trailAmount": "2"}
    )
    assert "trailAmount" in [d.field for d in error.details]


def test_stop_limit_order_of_the_reference_is_read():
    intent = parse(
        {
            "ticker": "SQ",
            "action": "buy",
            "orderType": "stop_limit",
            "stopPrice": 60,
            "limitPrice": 50.5,
        }
    )
    assert (intent.order_type, intent.stop_price, intent.limit_price) == (
        OrderType.STOP_LIMIT,
        D(60),
        D("50.5"),
    )


def test_a_limit_price_without_an_order_type_is_a_limit_order_not_dropped():
    intent = parse(
        {"ticker": "SQ", "action": "buy", "limitPrice": 50.5, "quantityType": "fixed_quantity"}
    )
    assert (intent.order_type, intent.limit_price) == (OrderType.LIMIT, D("50.5"))


def test_a_limit_order_without_a_price_is_refused():
    error = refusal(
        {"ticker": "SQ", "action": "buy", "orderType": "limit", "quantityType": "dollar_amount"}
    )
    assert "limitPrice" in [d.field for d in error.details]


def test_time_in_force_is_read_and_unsupported_ones_refused():
    message = {
        "ticker": "SQ",
        "action": "buy",
        "orderType": "limit",
        "limitPrice": 50.5,
        "timeInForce": "gtc",
        "extendedHours": False,
    }
    assert parse(message).time_in_force is TimeInForce.GTC
    error = refusal({**message, "timeInForce": "opg"})
    assert [d.field for d in error.details] == ["timeInForce"]


def test_extended_hours_and_options_are_refused_by_name():
    error = refusal(
        {
            "ticker": "SQ",
            "action": "buy",
            "extendedHours": True,
            "optionType": "call",
            "expiration": "+6 months",
            "strikesAway": 2,
        }
    )
    assert {d.field for d in error.details} == {
        "extendedHours",
        "optionType",
        "expiration",
        "strikesAway",
    }


@pytest.mark.parametrize("action", [Action.CANCEL, Action.ADD, Action.EXIT])
def test_cancel_add_and_exit_are_read(action: Action):
    assert parse({"ticker": "SQ", "action": action.value}).action is action


def test_a_sell_without_quantity_stays_without_quantity_for_the_exit_rule():
    intent = parse({"ticker": "AAPL", "action": "sell"})
    assert (intent.action, intent.quantity, intent.dialect) == (Action.SELL, None, None)


def test_a_pinelab_field_mixed_in_is_read_not_dropped():
    message = {"ticker": "SQ", "action": "buy", "sentiment": "bullish", "order_type": "limit"}
    intent = parse({**message, "limit_price": 50})
    assert (intent.order_type, intent.limit_price) == (OrderType.LIMIT, D(50))
    error = refusal({**message, "limit_price": 50, "limitPrice": 51})
    assert "limitPrice" in [d.field for d in error.details]
