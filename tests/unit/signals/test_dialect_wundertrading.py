"""WunderTrading signal bots' JSON alerts."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, QuantityType, Sentiment
from pinelab.signals.parser import parse_alert, read_alert

D = Decimal
CODE = "ENTER-LONG_BINANCE_BTCUSDT_My bot_1H_8e34479cfe49027eda195457"
ENTER = {"code": CODE, "orderType": "market", "amountPerTradeType": "quote", "amountPerTrade": 100}


def parse(message: dict[str, Any]) -> AlertIntent:
    return parse_alert(json.dumps(message).encode(), "application/json")


def refusal(message: dict[str, Any]) -> AlertRejected:
    with pytest.raises(AlertRejected) as caught:
        parse(message)
    return caught.value


def test_enter_long_with_a_quote_amount_is_read():
    intent = parse(ENTER)
    assert (intent.ticker, intent.action) == ("BTCUSDT", Action.BUY)
    assert (intent.quantity, intent.quantity_type) == (D(100), QuantityType.NOTIONAL)
    assert intent.dialect == "WunderTrading signal bot"


@pytest.mark.parametrize(
    ("command", "action", "sentiment"),
    [
        ("ENTER-SHORT", Action.SELL, None),
        ("EXIT-LONG", Action.SELL, Sentiment.FLAT),
        ("EXIT-SHORT", Action.BUY, Sentiment.FLAT),
        ("EXIT-ALL", Action.EXIT, None),
    ],
)
def test_every_command_is_read(command: str, action: Action, sentiment: Sentiment | None):
    intent = parse({"code": CODE.replace("ENTER-LONG", command)})
    assert (intent.action, intent.sentiment, intent.quantity) == (action, sentiment, None)


def test_base_amount_is_a_quantity_of_units():
    intent = parse({**ENTER, "amountPerTradeType": "base", "amountPerTrade": "0.5"})
    assert (intent.quantity, intent.quantity_type) == (D("0.5"), QuantityType.FIXED)


def test_what_pinelab_cannot_honour_is_refused_by_name():
    error = refusal(
        {
            **ENTER,
            "amountPerTradeType": "percents",
            "leverage": 3,
            "takeProfits": [{"priceDeviation": 0.02, "portfolio": 1}],
            "stopLoss": {"priceDeviation": 0.01},
        }
    )
    assert {d.field for d in error.details} == {
        "amountPerTradeType",
        "leverage",
        "takeProfits",
        "stopLoss",
    }


def test_a_multi_pair_code_is_refused_without_repeating_the_code():
    error = refusal({"code": "ENTER-LONG_Bybit_NONE_Eth short 15_15M_8e34479cfe49027eda195457"})
    assert [d.field for d in error.details] == ["code"]
    assert "8e34479cfe" not in error.message


def test_the_code_is_never_stored():
    reading = read_alert(json.dumps(ENTER).encode(), "application/json")
    assert reading.intent is not None
    assert "8e34479cfe" not in reading.stored_body
