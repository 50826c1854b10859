"""Altrady signal bots' webhook signals."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, QuantityType, Sentiment
from pinelab.signals.parser import parse_alert, read_alert

D = Decimal
KEYS = {"api_key": "altrady-key-123", "api_secret": "altrady-secret-456"}
OPEN = {**KEYS, "exchange": "BINA", "symbol": "BINA_USDT_BTC", "side": "long"}


def parse(message: dict[str, Any]) -> AlertIntent:
    return parse_alert(json.dumps(message).encode(), "application/json")


def refusal(message: dict[str, Any]) -> AlertRejected:
    with pytest.raises(AlertRejected) as caught:
        parse(message)
    return caught.value


def test_the_minimal_open_signal_is_a_buy_of_the_strategy_size():
    intent = parse(OPEN)
    assert (intent.ticker, intent.action, intent.quantity) == ("BTCUSDT", Action.BUY, None)
    assert intent.dialect == "Altrady signal bot"


def test_an_open_with_its_optional_settings():
    intent = parse(
        {
            **OPEN,
            "action": "open",
            "side": "short",
            "quote_amount": 250,
            "signal_price": 64000,
            "signal_id": "s-1",
            "leverage": 1,
        }
    )
    assert (intent.action, intent.quantity, intent.quantity_type) == (
        Action.SELL,
        D(250),
        QuantityType.NOTIONAL,
    )
    assert (intent.price, intent.alert_id) == (D(64000), "s-1")


@pytest.mark.parametrize(
    ("action", "side", "expected"),
    [
        ("close", "long", (Action.SELL, Sentiment.FLAT)),
        ("close", "short", (Action.BUY, Sentiment.FLAT)),
        ("reverse", "short", (Action.SELL, Sentiment.SHORT)),
        ("increase", "long", (Action.ADD, None)),
    ],
)
def test_position_signals_are_read(action: str, side: str, expected: tuple[Action, Any]):
    intent = parse({**OPEN, "action": action, "side": side})
    assert (intent.action, intent.sentiment) == expected


def test_a_tradingview_ticker_is_kept_as_sent():
    assert parse({**OPEN, "symbol": "ETHUSDT"}).ticker == "ETHUSDT"


def test_what_pinelab_cannot_honour_is_refused_by_name():
    error = refusal({**OPEN, "test": True, "leverage": 10, "dca_orders": [{"price_percentage": 1}]})
    assert {d.field for d in error.details} == {"test", "leverage", "dca_orders"}


@pytest.mark.parametrize("action", ["reduce", "stop_and_close", "start_bot"])
def test_reduce_and_bot_commands_are_refused(action: str):
    assert [d.field for d in refusal({**OPEN, "action": action}).details] == ["action"]


def test_the_credentials_are_never_stored():
    reading = read_alert(json.dumps(OPEN).encode(), "application/json")
    assert reading.intent is not None
    assert "altrady-key" not in reading.stored_body
    assert "altrady-secret" not in reading.stored_body
