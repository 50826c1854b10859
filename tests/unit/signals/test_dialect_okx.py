"""OKX signal bots' alert messages (sections A and B of its specification)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, QuantityType, Sentiment
from pinelab.signals.parser import parse_alert, read_alert

D = Decimal
TOKEN = "+50PtBb5CLeGah94UCNpAhgtnSdgXDbZqzVIkWq3To9egvRx"

SECTION_A = {
    "id": "Long entry",
    "action": "buy",
    "marketPosition": "long",
    "prevMarketPosition": "flat",
    "instrument": "BTC-USDT-SWAP",
    "signalToken": TOKEN,
    "timestamp": "2026-12-07T20:00:00.000Z",
    "maxLag": "60",
    "investmentType": "base",
    "amount": "0.01",
}
SECTION_B_EXIT = {
    "action": "EXIT_LONG",
    "instrument": "BTC-USDT-SWAP",
    "signalToken": TOKEN,
    "timestamp": "2026-12-07T20:00:00Z",
    "maxLag": "30",
    "orderType": "market",
    "orderPriceOffset": "",
    "investmentType": "percentage_position",
    "amount": "100",
}


def parse(message: dict[str, Any]) -> AlertIntent:
    return parse_alert(json.dumps(message).encode(), "application/json")


def refusal(message: dict[str, Any]) -> AlertRejected:
    with pytest.raises(AlertRejected) as caught:
        parse(message)
    return caught.value


def test_section_a_strategy_message_is_read():
    intent = parse(SECTION_A)
    assert (intent.ticker, intent.action, intent.sentiment) == (
        "BTC-USDT-SWAP",
        Action.BUY,
        Sentiment.LONG,
    )
    assert (intent.quantity, intent.quantity_type, intent.alert_id) == (
        D("0.01"),
        QuantityType.FIXED,
        "Long entry",
    )
    assert intent.dialect == "OKX signal bot"


def test_section_b_exit_closes_the_share_of_the_long_it_names():
    intent = parse(SECTION_B_EXIT)
    assert (intent.action, intent.sentiment) == (Action.SELL, Sentiment.FLAT)
    assert (intent.quantity, intent.quantity_type) == (D(100), QuantityType.PERCENT_OF_POSITION)


def test_section_b_entry_without_amount_uses_the_strategy_sizing():
    message = {k: v for k, v in SECTION_B_EXIT.items() if k not in ("amount", "investmentType")}
    intent = parse({**message, "action": "ENTER_SHORT"})
    assert (intent.action, intent.quantity, intent.sentiment) == (Action.SELL, None, None)


@pytest.mark.parametrize(
    "kind", ["margin", "contract", "percentage_balance", "percentage_investment"]
)
def test_sizing_pinelab_cannot_compute_is_refused_saying_why(kind: str):
    error = refusal({**SECTION_B_EXIT, "action": "ENTER_LONG", "investmentType": kind})
    assert [d.field for d in error.details] == ["investmentType"]
    assert "cannot be honoured" in error.message
    assert "OKX signal bot" in error.message


def test_a_limit_order_by_offset_is_refused():
    error = refusal({**SECTION_B_EXIT, "orderType": "limit", "orderPriceOffset": "0.1"})
    assert [d.field for d in error.details] == ["orderType"]


def test_unknown_action_lists_the_okx_actions():
    error = refusal({**SECTION_B_EXIT, "action": "OPEN_LONG"})
    assert "enter_long" in error.message


def test_the_signal_token_is_never_stored():
    reading = read_alert(json.dumps(SECTION_A).encode(), "application/json")
    assert reading.intent is not None
    assert TOKEN not in reading.stored_body
    assert json.loads(reading.stored_body)["signalToken"] == "[redacted]"
