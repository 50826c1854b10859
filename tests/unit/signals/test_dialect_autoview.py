"""Autoview's command lines, with the keys of its "Alert Syntax" page."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pinelab.signals.dialects import TEXT_DIALECTS
from pinelab.signals.dialects.autoview import AUTOVIEW as DIALECT
from pinelab.signals.dialects.problems import DialectRejected
from pinelab.signals.intent import Action, QuantityType
from pinelab.signals.parser import parse_alert


def problems(text: str) -> dict[str, str]:
    """Return a refusal's messages by field, the expected form left out."""
    with pytest.raises(DialectRejected) as caught:
        DIALECT.translate(text)
    return {d.field: d.message for d in caught.value.details if d.type != "expected_form"}


def test_is_a_text_dialect():
    assert DIALECT in TEXT_DIALECTS


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "e=binance s=BTCUSDT b=buy q=0.01 t=market",
            {"ticker": "BTCUSDT", "action": "buy", "order_type": "market", "quantity": "0.01"},
        ),
        (
            "a=main e=bybit s=ETHUSDT b=short q=2 t=market d=0",
            {"ticker": "ETHUSDT", "action": "sell", "order_type": "market", "quantity": "2"},
        ),
        (
            "s=ETHUSDT b=long q=10% y=equity t=market",
            {
                "ticker": "ETHUSDT",
                "action": "buy",
                "order_type": "market",
                "quantity": "10",
                "quantity_type": "percent_of_equity",
            },
        ),
        ("e=binance s=BTCUSDT c=order", {"ticker": "BTCUSDT", "action": "cancel"}),
        ("e=binance s=BTCUSDT c=position t=market", {"ticker": "BTCUSDT", "action": "exit"}),
        ("s=BTCUSDT c=position cm=100%", {"ticker": "BTCUSDT", "action": "exit"}),
    ],
)
def test_commands_become_canonical_fields(text, fields):
    assert DIALECT.claims(text)
    translation = DIALECT.translate(text)
    assert (translation.dialect, translation.fields, translation.secrets) == (
        "Autoview",
        fields,
        frozenset(),
    )


def test_a_market_order_is_read_by_the_pinelab_rules():
    intent = parse_alert(b"e=binance s=BTCUSDT b=sell q=0.5 t=market\n", "text/plain")
    assert (intent.ticker, intent.action, intent.quantity) == (
        "BTCUSDT",
        Action.SELL,
        Decimal("0.5"),
    )
    assert intent.quantity_type is QuantityType.FIXED


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("s=BTCUSDT b=buy q=1", "t", "write t=market"),
        ("s=BTCUSDT b=buy q=1 t=limit p=-1%", "t", "live price"),
        ("s=BTCUSDT b=buy q=1 t=limit p=-1%", "p", "live price"),
        ("s=BTCUSDT b=buy t=market", "q", "100% of the balance"),
        ("s=BTCUSDT b=buy q=10% t=market", "q", "add y=equity"),
        ("s=BTCUSDT b=buy q=1-5 t=market", "q", "random"),
        ("s=BTCUSDT b=buy q=1 t=market sl=2%", "sl", "live price"),
        ("s=BTCUSDT b=buy q=1 t=market l=10", "l", "leverage"),
        ("s=BTCUSDT b=buy q=1 t=market d=1", "d", "dry run"),
        ("s=BTCUSDT b=buy q=1 t=market bcc=1", "bcc", "without trading"),
        ("s=BTCUSDT b=buy q=1 t=market zz=1", "zz", "not an Autoview parameter"),
        ("s=BTCUSDT b=up q=1 t=market", "b", "buy, long, sell or short"),
        ("e=binance b=buy q=1 t=market", "s", "no chart symbol"),
        ("s=BTCUSDT c=order b=buy", "b", "one side"),
        ("s=BTCUSDT c=position q=50%", "q", "whole position"),
        ("s=BTCUSDT c=order cm=1", "cm", "how many"),
        ("s=BTCUSDT c=position t=limit", "t", "market order"),
        ("s=BTCUSDT c=trade", "c", "order or position"),
        ("s=BTCUSDT b=buy b=sell q=1 t=market", "b", "given twice"),
        ("s=BTCUSDT b=buy q=0 t=market", "q", "greater than 0"),
        ("s=BTCUSDT q=1 t=market", "b", "is required"),
        ("s=BTCUSDT b=buy q=1 t=market now", "body", "expected key=value words, got 'now'"),
    ],
)
def test_what_is_missing_or_cannot_be_honoured_is_named(text, field, reason):
    assert DIALECT.claims(text)
    found = problems(text)
    assert reason in found[field], found
    assert found[field].startswith("Autoview: ")


def test_several_commands_are_refused():
    found = problems("s=BTCUSDT c=order\ns=BTCUSDT b=buy q=1 t=market")
    assert "2 commands" in found["body"]
    assert "2 commands" in problems("s=X c=order | s=X b=buy q=1 t=market")["body"]


@pytest.mark.parametrize(
    "text",
    ["buy AAPL 10 price=1", "sell,BTCUSDT,0.01,order_type=limit", "K(X) { market(side=buy); }"],
)
def test_does_not_claim_other_text(text):
    assert not DIALECT.claims(text)
