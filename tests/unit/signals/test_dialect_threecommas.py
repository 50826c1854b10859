"""3Commas signal bots' messages, copied from its help centre, read as it documents them."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pinelab.brokers.base import OrderType
from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, QuantityType, Sentiment
from pinelab.signals.parser import parse_alert, read_alert

D = Decimal

# "Signal bot: JSON file for Strategy type", placeholders filled in as TradingView would.
STRATEGY = {
    "secret": "eyJhbGciOiJIUzI1NiJ9.bot-secret",
    "max_lag": "300",
    "timestamp": "2026-12-07T20:00:00Z",
    "trigger_price": "64250.5",
    "tv_exchange": "BINANCE",
    "tv_instrument": "BTCUSDT",
    "action": "sell",
    "bot_uuid": "0f3c4d5e-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
    "strategy_info": {
        "market_position": "flat",
        "market_position_size": "0",
        "prev_market_position": "long",
        "prev_market_position_size": "0.01",
    },
    "order": {"amount": "0.01", "currency_type": "base"},
}
# A custom signal: exit the long, all of it.
EXIT_LONG = {
    "secret": "eyJhbGciOiJIUzI1NiJ9.bot-secret",
    "bot_uuid": "0f3c4d5e-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
    "action": "exit_long",
    "tv_exchange": "BINANCE",
    "tv_instrument": "BTCUSDT",
    "order": {"amount": 100, "currency_type": "position_percent"},
    "max_lag": 300,
    "timestamp": "2026-12-07T20:00:00Z",
}


def parse(message: dict[str, Any]) -> AlertIntent:
    return parse_alert(json.dumps(message).encode(), "application/json")


def refusal(message: dict[str, Any]) -> AlertRejected:
    with pytest.raises(AlertRejected) as caught:
        parse(message)
    return caught.value


def test_strategy_type_message_is_read_with_its_market_position():
    intent = parse(STRATEGY)
    assert (intent.ticker, intent.action, intent.sentiment) == (
        "BTCUSDT",
        Action.SELL,
        Sentiment.FLAT,
    )
    assert (intent.quantity, intent.quantity_type) == (D("0.01"), QuantityType.FIXED)
    assert (intent.price, intent.alert_time) == (D("64250.5"), "2026-12-07T20:00:00Z")
    assert intent.dialect == "3Commas signal bot"


def test_exit_long_closes_a_share_of_the_long_only():
    intent = parse(EXIT_LONG)
    assert (intent.action, intent.sentiment) == (Action.SELL, Sentiment.FLAT)
    assert (intent.quantity, intent.quantity_type) == (D(100), QuantityType.PERCENT_OF_POSITION)


def test_exit_without_order_closes_the_whole_position():
    message = {k: v for k, v in EXIT_LONG.items() if k != "order"}
    intent = parse({**message, "action": "exit_short"})
    assert (intent.action, intent.sentiment, intent.quantity) == (Action.BUY, Sentiment.FLAT, None)


def test_entry_with_a_quote_amount_limit_price_and_brackets():
    intent = parse(
        {
            "secret": "s",
            "bot_uuid": "u",
            "action": "enter_short",
            "tv_instrument": "ETHUSDT",
            "order": {
                "amount": 150,
                "currency_type": "quote",
                "order_type": "limit",
                "price": 3000,
            },
            "take_profit": {
                "enabled": True,
                "steps": [{"order_type": "market", "price_percent": -2, "volume_percent": 100}],
            },
            "stop_loss": {"enabled": True, "order_type": "market", "trigger_price_percent": 1},
        }
    )
    assert (intent.action, intent.quantity, intent.quantity_type) == (
        Action.SELL,
        D(150),
        QuantityType.NOTIONAL,
    )
    assert (intent.order_type, intent.limit_price) == (OrderType.LIMIT, D(3000))
    assert intent.take_profit == ExitTarget(percent=D(2))
    assert intent.stop_loss == ExitTarget(percent=D(1))


def test_the_secret_is_never_stored():
    reading = read_alert(json.dumps(STRATEGY).encode(), "application/json")
    assert reading.intent is not None
    assert "bot-secret" not in reading.stored_body
    assert json.loads(reading.stored_body)["secret"] == "[redacted]"
    assert json.loads(reading.stored_body)["bot_uuid"] == STRATEGY["bot_uuid"]


def test_a_refused_message_still_has_its_secret_redacted():
    reading = read_alert(json.dumps({**STRATEGY, "action": "disable"}).encode(), None)
    assert reading.rejection is not None
    assert "bot-secret" not in reading.stored_body


def test_missing_instrument_and_action_are_named_with_the_service():
    error = refusal({"secret": "s", "bot_uuid": "u"})
    assert [d.field for d in error.details] == ["tv_instrument", "action"]
    assert all("3Commas signal bot" in d.message for d in error.details)


@pytest.mark.parametrize(
    ("order", "field", "says"),
    [
        ({"amount": 10, "currency_type": "margin_percent"}, "order.currency_type", "margin"),
        ({"amount": 10, "currency_type": "coins"}, "order.currency_type", "must be one of"),
        (
            {"amount": 10, "currency_type": "quote", "order_type": "limit"},
            "order.price",
            "required",
        ),
        ({"amount": "ten", "currency_type": "quote"}, "order.amount", "must be a number"),
    ],
)
def test_sizing_problems_name_the_order_field(order: dict[str, Any], field: str, says: str):
    error = refusal({**EXIT_LONG, "action": "enter_long", "order": order})
    assert field in [d.field for d in error.details]
    assert says in error.message


def test_several_take_profit_steps_are_refused():
    steps = [{"price_percent": 1, "volume_percent": 50}, {"price_percent": 2, "volume_percent": 50}]
    error = refusal(
        {**EXIT_LONG, "action": "enter_long", "take_profit": {"enabled": True, "steps": steps}}
    )
    assert "take_profit.steps" in [d.field for d in error.details]


def test_a_pinelab_field_added_to_a_3commas_message_is_refused_not_dropped():
    error = refusal({**EXIT_LONG, "quantity": 5, "sentiment": "long"})
    assert [d.field for d in error.details] == ["quantity", "sentiment"]
    assert "PineLab's own form" in error.message
