"""The symbol/side/qty JSON of open-source bots, and the tradingview-binance bots' nesting."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pinelab.brokers.base import OrderType
from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, Sentiment
from pinelab.signals.parser import parse_alert

D = Decimal


def parse(message: dict[str, Any]) -> AlertIntent:
    return parse_alert(json.dumps(message).encode(), "application/json")


def refusal(message: dict[str, Any]) -> AlertRejected:
    with pytest.raises(AlertRejected) as caught:
        parse(message)
    return caught.value


def test_symbol_side_qty_is_read():
    intent = parse({"symbol": "BTCUSDT", "side": "buy", "qty": 0.01})
    assert (intent.ticker, intent.action, intent.quantity) == ("BTCUSDT", Action.BUY, D("0.01"))
    assert intent.dialect == "open-source bot JSON"


def test_a_limit_order_takes_its_price_as_the_limit():
    intent = parse(
        {
            "symbol": "ETHUSDT",
            "side": "sell",
            "quantity": "2",
            "type": "limit",
            "price": "3000",
            "sl": 3100,
            "tp": 2800,
        }
    )
    assert (intent.order_type, intent.limit_price) == (OrderType.LIMIT, D(3000))
    assert (intent.stop_loss, intent.take_profit) == (
        ExitTarget(price=D(3100)),
        ExitTarget(price=D(2800)),
    )


@pytest.mark.parametrize(
    ("side", "action"), [("long", Action.BUY), ("short", Action.SELL), ("close", Action.EXIT)]
)
def test_side_words_are_read(side: str, action: Action):
    assert parse({"pair": "SOLUSDT", "side": side}).action is action


def test_reduce_only_is_a_close_only_order():
    intent = parse({"symbol": "BTCUSDT", "side": "sell", "size": 1, "reduce_only": True})
    assert intent.sentiment is Sentiment.FLAT


def test_two_size_fields_and_leverage_are_refused():
    error = refusal({"symbol": "BTCUSDT", "side": "buy", "qty": 1, "amount": 2, "leverage": 20})
    assert {d.field for d in error.details} == {"amount", "leverage"}


def test_the_tradingview_binance_bot_message_is_read():
    intent = parse(
        {
            "passphrase": "abcdefg",
            "time": "2026-12-07T20:00:00Z",
            "exchange": "BINANCE",
            "ticker": "ETHUSDT",
            "bar": {"time": "2026-12-07T19:59:00Z", "open": 3000, "close": 3010},
            "strategy": {
                "position_size": 1,
                "order_action": "buy",
                "order_contracts": 1,
                "order_price": 3010,
                "order_id": "Long",
                "market_position": "long",
            },
        }
    )
    assert (intent.ticker, intent.action, intent.quantity, intent.price) == (
        "ETHUSDT",
        Action.BUY,
        D(1),
        D(3010),
    )
    assert (intent.alert_id, intent.sentiment, intent.passphrase) == (
        "Long",
        Sentiment.LONG,
        "abcdefg",
    )


def test_a_pinelab_field_the_bot_json_does_not_read_is_refused_not_dropped():
    error = refusal({"symbol": "BTCUSDT", "side": "buy", "qty": 1, "quantity_type": "notional"})
    assert [d.field for d in error.details] == ["quantity_type"]
