"""Alertatron's command lines, with the messages of its documentation ("Basic Concepts",
"Market Order", "Limit Order", "Stop Order")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pinelab.brokers.base import OrderType
from pinelab.signals.dialects import TEXT_DIALECTS
from pinelab.signals.dialects.alertatron import ALERTATRON as DIALECT
from pinelab.signals.dialects.problems import DialectRejected
from pinelab.signals.intent import Action, QuantityType, Sentiment
from pinelab.signals.parser import parse_alert

DOCUMENTED = "MyKeys(XBTUSD) { market(side=buy, amount=100); }\n#bot"


def problems(text: str) -> dict[str, str]:
    """Return a refusal's messages by field, the expected form left out."""
    with pytest.raises(DialectRejected) as caught:
        DIALECT.translate(text)
    return {d.field: d.message for d in caught.value.details if d.type != "expected_form"}


def test_is_a_text_dialect():
    assert DIALECT in TEXT_DIALECTS


def test_the_documented_message_is_a_market_buy_of_its_amount():
    assert DIALECT.claims(DOCUMENTED)
    translation = DIALECT.translate(DOCUMENTED)
    assert translation.dialect == "Alertatron"
    assert translation.fields == {
        "ticker": "XBTUSD",
        "order_type": "market",
        "action": "buy",
        "quantity": "100",
    }
    assert translation.secrets == frozenset()


@pytest.mark.parametrize(
    ("amount", "quantity_type"),
    [("1000", QuantityType.FIXED), ("50%", QuantityType.PERCENT_OF_EQUITY)],
)
def test_amounts_are_fixed_or_percent_of_equity(amount, quantity_type):
    text = f"Note: going short. MyKeys(XBTUSD) {{ market(side=sell, amount={amount}); }} #bot"
    intent = parse_alert(text.encode(), "text/plain")
    assert (intent.action, intent.quantity_type) == (Action.SELL, quantity_type)
    assert intent.quantity == Decimal(amount.rstrip("%"))


def test_percent_b_is_percent_of_the_balance_like_percent():
    fields = DIALECT.translate("K(ETHUSDT) { market(side=buy, amount=25%b); }").fields
    assert (fields["quantity"], fields["quantity_type"]) == ("25", "percent_of_equity")


def test_a_limit_order_takes_its_absolute_price_from_offset_at():
    text = "MyKeys(XBTUSD) { limit(side=buy, amount=10, offset=@64000.5, postOnly=false); }"
    intent = parse_alert(text.encode(), "text/plain")
    assert (intent.order_type, intent.limit_price) == (OrderType.LIMIT, Decimal("64000.5"))


def test_a_stop_order_is_reduce_only_by_default_and_stop_limit_with_limit_offset():
    stop = parse_alert(b"K(XBTUSD) { stopOrder(side=sell, amount=5, offset=@60000); }", None)
    assert (stop.order_type, stop.stop_price, stop.sentiment) == (
        OrderType.STOP,
        Decimal(60000),
        Sentiment.FLAT,
    )
    text = (
        "K(XBTUSD) { stopOrder(side=buy, amount=5, offset=@70000, limitOffset=@70100, "
        "reduceOnly=false); }"
    )
    limit = parse_alert(text.encode(), None)
    assert (limit.order_type, limit.stop_price, limit.limit_price, limit.sentiment) == (
        OrderType.STOP_LIMIT,
        Decimal(70000),
        Decimal(70100),
        None,
    )


def test_reduce_only_closes_and_never_opens_the_other_side():
    fields = DIALECT.translate("K(XBTUSD) { market(side=sell, amount=5, reduceOnly=true); }").fields
    assert fields["sentiment"] == "flat"


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        ("0", {"action": "exit"}),
        ("100", {"action": "buy", "position_size": "100"}),
        ("-100", {"action": "sell", "position_size": "-100"}),
    ],
)
def test_position_is_a_target_and_zero_closes(position, expected):
    fields = DIALECT.translate(f"K(XBTUSD) {{ market(position={position}); }}").fields
    assert fields == {"ticker": "XBTUSD", "order_type": "market", **expected}


@pytest.mark.parametrize(
    "text",
    ["MyKeys(XBTUSD) { cancel(which=all); }", "MyKeys(XBTUSD) {\n  cancel(which=all);\n}\n#bot"],
)
def test_cancel_all_cancels_the_strategys_orders_in_the_ticker(text):
    intent = parse_alert(text.encode(), "text/plain")
    assert (intent.ticker, intent.action) == ("XBTUSD", Action.CANCEL)


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("K(XBTUSD) { market(side=buy, amount=50%%); }", "amount", "available balance"),
        ("K(XBTUSD) { market(side=buy, amount=50%a); }", "amount", "available balance"),
        ("K(XBTUSD) { market(side=sell, amount=50%p); }", "amount", "percent of the position"),
        ("K(XBTUSD) { limit(side=buy, amount=1, offset=1%); }", "offset", "write offset=@PRICE"),
        ("K(XBTUSD) { limit(side=buy, amount=1, offset=e1%); }", "offset", "the entry"),
        ("K(XBTUSD) { limit(side=buy, amount=1); }", "offset", "needs offset=@PRICE"),
        (
            "K(XBTUSD) { limit(side=buy, amount=1, offset=@1, postOnly=true); }",
            "postOnly",
            "post-only",
        ),
        (
            "K(XBTUSD) { stopOrder(side=sell, amount=1, offset=@1, trigger=mark); }",
            "trigger",
            "venue",
        ),
        ("K(XBTUSD) { limit(position=0, offset=@1); }", "position", "market() only"),
        ("K(XBTUSD) { cancel(which=buy); }", "which", "stop-losses included"),
        ("K(XBTUSD) { cancel(which=tagged, tag=tp); }", "tag", "tagged orders"),
        ("K(XBTUSD) { cancel(); }", "which", "needs which=all"),
        ("K(XBTUSD) { trailingStop(side=sell, amount=1, offset=1%); }", "command", "not supported"),
        ("K(XBTUSD) { wait(duration=10s); }", "command", "not supported"),
        ("K(XBTUSD) { market(amount=1); }", "side", "needs side="),
        ("K(XBTUSD) { market(side=up, amount=1); }", "side", "buy or sell"),
        ("K(XBTUSD) { market(side=buy); }", "amount", "needs amount="),
        ("K(XBTUSD) { market(side=buy, amount=1, leverage=10); }", "leverage", "not an argument"),
        ("K(XBTUSD) { market(side=buy, amount=1, position=5); }", "amount", "position="),
        ("K() { market(side=buy, amount=1); }", "symbol", "needs the symbol"),
        ("K(XBTUSD) { }", "command", "no command"),
    ],
)
def test_what_is_missing_or_cannot_be_honoured_is_named(text, field, reason):
    assert DIALECT.claims(text)
    found = problems(text)
    assert reason in found[field], found
    assert found[field].startswith("Alertatron: ")


def test_several_commands_are_refused_naming_them():
    found = problems("MyKeys(XBTUSD) { cancel(which=all); market(side=buy, amount=100); } #bot")
    assert "2 commands (cancel(), market())" in found["body"]
    assert "one order per alert" in found["body"]


@pytest.mark.parametrize("text", ["buy AAPL 10", "60123456789,buy,EURUSD,risk=1", "b=buy s=X"])
def test_does_not_claim_other_text(text):
    assert not DIALECT.claims(text)
