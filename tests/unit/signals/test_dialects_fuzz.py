"""Properties of the text dialects: whatever a dialect claims, it translates or refuses in its
own name (never another error), and the parser answers an intent or a rejection."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pinelab.signals.dialects import TEXT_DIALECTS
from pinelab.signals.dialects.base import TextDialect, Translation
from pinelab.signals.dialects.problems import DialectRejected
from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import AlertIntent
from pinelab.signals.parser import parse_alert

PIECES = st.sampled_from(
    [
        "60123456789", "LicenseID", "buy", "sell", "closelong", "closelongbuy", "buylimit",
        "sellstop", "closeall", "risk=1", "risk=", "sl=1.1", "tp=2", "price=1.2", "betrigger=5",
        "comment=\"a,b\"", "\"", ",", " , ", "=", ";", "(", ")", "{", "}", "MyKeys(XBTUSD)",
        "K()", "market(", "limit(", "stopOrder(", "cancel(", "side=buy", "amount=50%",
        "amount=1", "position=0", "offset=@1", "offset=1%", "limitOffset=@2", "reduceOnly=true",
        "which=all", "#bot", "b=buy", "s=X", "q=1", "q=10%", "y=equity", "t=market",
        "c=position", "c=order", "d=1", "|", "\n", " ", "%%", "{{ticker}}", "NaN", "-1", "1e30",
    ]
)  # fmt: skip
TEXTS = st.lists(PIECES, max_size=14).map("".join) | st.text(max_size=60)


def _translated(dialect: TextDialect, text: str) -> Translation | DialectRejected:
    try:
        return dialect.translate(text)
    except DialectRejected as error:
        return error


def _parsed(text: str) -> AlertIntent | AlertRejected:
    try:
        return parse_alert(text.encode(), "text/plain")
    except AlertRejected as error:
        return error


@given(text=TEXTS)
def test_a_dialect_translates_or_refuses_in_its_own_name_whatever_it_claims(text: str) -> None:
    for dialect in TEXT_DIALECTS:
        if not dialect.claims(text):
            continue
        outcome = _translated(dialect, text)
        if isinstance(outcome, DialectRejected):
            assert outcome.dialect == dialect.name
            assert outcome.details[-1].type == "expected_form"
            assert all(d.message.startswith(f"{dialect.name}: ") for d in outcome.details)
        else:
            assert outcome.dialect == dialect.name
            assert outcome.fields["ticker"]


@given(text=TEXTS)
def test_the_parser_answers_an_intent_or_a_rejection(text: str) -> None:
    outcome = _parsed(text)
    assert isinstance(outcome, AlertIntent) or outcome.details
