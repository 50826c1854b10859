"""PineConnector's comma syntax, with the messages of its documentation ("Syntax", "Module 2")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pinelab.brokers.base import OrderType
from pinelab.signals.dialects import TEXT_DIALECTS
from pinelab.signals.dialects.pineconnector import PINECONNECTOR as DIALECT
from pinelab.signals.dialects.problems import DialectRejected
from pinelab.signals.intent import Action, ExitTarget
from pinelab.signals.parser import parse_alert


def refusal(text: str) -> DialectRejected:
    """Translate a message that must be refused and return the refusal."""
    with pytest.raises(DialectRejected) as caught:
        DIALECT.translate(text)
    return caught.value


def problems(text: str) -> dict[str, str]:
    """Return the refusal's messages by field, the expected form left out."""
    return {d.field: d.message for d in refusal(text).details if d.type != "expected_form"}


def test_is_listed_first_among_the_text_dialects():
    assert TEXT_DIALECTS[0] is DIALECT


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "60123456789,buy,AUDUSD,risk=0.1",
            {"ticker": "AUDUSD", "action": "buy", "order_type": "market", "quantity": "0.1"},
        ),
        (
            "LicenseID,long,US30.Cash,risk=1",
            {"ticker": "US30.Cash", "action": "buy", "order_type": "market", "quantity": "1"},
        ),
        (
            "60123456789,sell,GBPJPY,sl=195.5,risk=1",
            {
                "ticker": "GBPJPY",
                "action": "sell",
                "order_type": "market",
                "quantity": "1",
                "stop_loss": {"price": "195.5"},
            },
        ),
        (
            "LicenseID , bearish , EURUSD , risk=2 , tp=1.05",
            {
                "ticker": "EURUSD",
                "action": "sell",
                "order_type": "market",
                "quantity": "2",
                "take_profit": {"price": "1.05"},
            },
        ),
        ("60123456789,closelong,GBPUSD", {"ticker": "GBPUSD", "action": "exit"}),
        ("60123456789,closeshort,GBPUSD", {"ticker": "GBPUSD", "action": "exit"}),
        ("60123456789,closelongshort,GBPUSD", {"ticker": "GBPUSD", "action": "exit"}),
        (
            "60123456789,closelongbuy,EURUSD,risk=2",
            {"ticker": "EURUSD", "action": "buy", "position_size": "2"},
        ),
        (
            "60123456789,closeshortsell,EURUSD,risk=2",
            {"ticker": "EURUSD", "action": "sell", "position_size": "-2"},
        ),
        (
            "60123456789,buy,EURUSD",
            {"ticker": "EURUSD", "action": "buy", "order_type": "market"},
        ),
    ],
)
def test_documented_messages_become_canonical_fields(text, fields):
    assert DIALECT.claims(text)
    translation = DIALECT.translate(text)
    assert (translation.dialect, translation.fields) == ("PineConnector", fields)


@pytest.mark.parametrize(
    ("command", "action", "order_type", "price_field"),
    [
        ("buylimit", Action.BUY, OrderType.LIMIT, "limit_price"),
        ("selllimit", Action.SELL, OrderType.LIMIT, "limit_price"),
        ("buystop", Action.BUY, OrderType.STOP, "stop_price"),
        ("sellstop", Action.SELL, OrderType.STOP, "stop_price"),
    ],
)
def test_pending_orders_are_limit_or_stop_orders_at_price(command, action, order_type, price_field):
    stop_loss, take_profit = ("1.07", "1.10") if action is Action.BUY else ("1.10", "1.07")
    text = f"60123456789,{command},EURUSD,price=1.085,risk=0.5,sl={stop_loss},tp={take_profit}"
    intent = parse_alert(text.encode(), "text/plain")
    assert (intent.ticker, intent.action, intent.order_type) == ("EURUSD", action, order_type)
    assert getattr(intent, price_field) == Decimal("1.085")
    assert intent.quantity == Decimal("0.5")
    assert intent.stop_loss == ExitTarget(price=Decimal(stop_loss))
    assert intent.take_profit == ExitTarget(price=Decimal(take_profit))


def test_the_license_id_is_a_secret_and_appears_in_no_field():
    translation = DIALECT.translate("60123456789,buy,EURUSD,risk=1")
    assert translation.secrets == frozenset({"60123456789"})
    assert "60123456789" not in repr(translation.fields)


def test_a_refusal_keeps_the_license_id_secret_and_never_shows_it():
    error = refusal("60123456789,closeall,EURUSD")
    assert error.secrets == frozenset({"60123456789"})
    assert "60123456789" not in str(error)
    assert all("60123456789" not in detail.message for detail in error.details)


def test_one_message_per_alert_and_every_line_s_license_id_is_secret():
    error = refusal("60123456789,buy,EURUSD,risk=1\n70123456789,sell,EURUSD,risk=1")
    assert error.secrets == frozenset({"60123456789", "70123456789"})
    assert "has 2 lines" in error.details[0].message
    assert "70123456789" not in str(error)


def test_a_comment_may_hold_a_comma_and_is_not_traded_on():
    text = 'LicenseID,buy,EURUSD,risk=1,comment="strategy 1, long"'
    assert DIALECT.translate(text).fields == {
        "ticker": "EURUSD",
        "action": "buy",
        "order_type": "market",
        "quantity": "1",
    }


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("LicenseID,closeall", "command", "every symbol"),
        ("LicenseID,closealleaoff", "command", "every symbol"),
        ("LicenseID,cancellong,EURUSD", "command", "stop-losses included"),
        ("LicenseID,cancelshort,EURUSD", "command", "stop-losses included"),
        ("LicenseID,newsltplong,EURUSD,sl=1.05", "command", "cannot do"),
        ("LicenseID,eaoff", "command", "disable the strategy"),
        ("LicenseID,eaon", "command", "enable the strategy"),
        ("LicenseID,buy,EURUSD,risk=1,betrigger=10", "betrigger", "breakeven"),
        ("LicenseID,buy,EURUSD,risk=1,trailtrig=20", "trailtrig", "pip size"),
        ("LicenseID,buy,EURUSD,risk=1,atrperiod=14", "atrperiod", "ATR"),
        ("LicenseID,buy,EURUSD,risk=1,spread=3", "spread", "cannot check the spread"),
        ("LicenseID,buy,EURUSD,risk=1,accfilter=1000", "accfilter", "would trade"),
        ("LicenseID,buy,EURUSD,risk=1,lots=2", "lots", "not a PineConnector parameter"),
    ],
)
def test_what_pinelab_cannot_honour_is_refused_with_the_reason(text, field, reason):
    assert DIALECT.claims(text)
    found = problems(text)
    assert reason in found[field]
    assert found[field].startswith("PineConnector: ")


def test_brackets_on_the_wrong_side_of_the_price_are_refused_as_pips_read_as_prices():
    found = problems("LicenseID,buylimit,EURUSD,price=1.08,risk=1,sl=10,tp=20")
    assert "sl=10 must be below price=1.08 for a buy" in found["sl"]
    assert "as prices" in found["sl"]
    sell = problems("LicenseID,sell,EURUSD,risk=1,sl=10,tp=20")
    assert "sl=10 must be above tp=20 for a sell" in sell["sl"]


def test_every_problem_is_listed_at_once_with_the_expected_form():
    error = refusal("LicenseID,buystop,,risk=NaN,sl=1.1,betrigger=5,sl=2")
    fields = [detail.field for detail in error.details]
    assert fields == ["sl", "symbol", "betrigger", "risk", "price", "body"]
    assert error.details[-1].type == "expected_form"
    assert "LicenseID,Command,Symbol" in error.details[-1].message


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("LicenseID,closelong,EURUSD,risk=1", "risk", "closes the whole position"),
        ("LicenseID,closelongbuy,EURUSD", "risk", "needs risk="),
        ("LicenseID,buylimit,EURUSD,risk=1", "price", "needs price="),
        ("LicenseID,buy,EURUSD,risk=1,price=1.1", "price", "for pending orders"),
        ("LicenseID,buy,EURUSD,risk=0", "risk", "greater than 0"),
        ("LicenseID,buy,EURUSD,risk={{strategy.order.contracts}}", "risk", "placeholder"),
        ("LicenseID,buy,risk=1", "symbol", "needs a symbol"),
        (",buy,EURUSD,risk=1", "license_id", "is empty"),
        ("LicenseID,buy,EURUSD,1", "body", "expected key=value"),
        ("LicenseID,buy,EURUSD,risk=1,risk=2", "risk", "given twice"),
        ("60123456789,bye,EURUSD,risk=1", "command", "'bye' is not a PineConnector command"),
    ],
)
def test_a_broken_message_names_what_is_missing_or_wrong(text, field, reason):
    assert DIALECT.claims(text)
    assert reason in problems(text)[field]


@pytest.mark.parametrize(
    "text",
    ["buy AAPL 10", "sell,BTCUSDT,0.01,order_type=limit,limit_price=65000", "exit TSLA", "buy"],
)
def test_does_not_claim_pinelab_text_alerts(text):
    assert not DIALECT.claims(text)
