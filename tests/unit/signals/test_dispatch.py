"""The dispatch to dialects: text dialects before PineLab's text form, JSON dialects before its
JSON, the first that claims wins, and a refusal says which dialect it was read as."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinelab.errors import ErrorDetail
from pinelab.signals import parser
from pinelab.signals.dialects.base import Translation
from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action
from pinelab.signals.parser import parse_alert, read_alert


class _Words:
    """A text dialect of the shape `LICENSE,ACTION,SYMBOL` whose first word is a secret."""

    def __init__(self, name: str, claims: Callable[[str], bool]) -> None:
        self.name = name
        self._claims = claims

    def claims(self, text: str) -> bool:
        return self._claims(text)

    def translate(self, text: str) -> Translation:
        license_id, action, symbol = text.split(",")
        if action not in ("buy", "sell"):
            detail = ErrorDetail("action", f"{action!r} is not buy or sell")
            raise AlertRejected([detail], secrets=frozenset({license_id}))
        return Translation(
            dialect=self.name,
            fields={"ticker": symbol, "action": action},
            secrets=frozenset({license_id}),
        )


@pytest.fixture
def words(monkeypatch: pytest.MonkeyPatch) -> None:
    first = _Words("Words", lambda text: text.count(",") == 2)
    second = _Words("Other words", lambda text: True)
    monkeypatch.setattr(parser, "TEXT_DIALECTS", (first, second))


@pytest.mark.usefixtures("words")
def test_a_text_dialect_is_tried_before_the_text_form_and_its_secret_words_are_redacted():
    reading = read_alert(b"60123456789,buy,EURUSD", "text/plain")
    assert reading.intent is not None
    assert (reading.intent.ticker, reading.intent.action, reading.intent.dialect) == (
        "EURUSD",
        Action.BUY,
        "Words",
    )
    assert "60123456789" not in reading.stored_body


@pytest.mark.usefixtures("words")
def test_a_text_dialects_refusal_names_the_dialect_and_its_secret_words_are_redacted():
    reading = read_alert(b"60123456789,hold,EURUSD", "text/plain")
    assert reading.rejection is not None
    assert reading.rejection.message == (
        "action: 'hold' is not buy or sell (read in the Words format)"
    )
    assert "60123456789" not in reading.stored_body


def test_a_text_alert_lists_every_problem_and_the_expected_form():
    with pytest.raises(AlertRejected) as caught:
        parse_alert(b"purchase AAPL ten 5 limt_price=3 gtc", "text/plain")
    fields = [detail.field for detail in caught.value.details]
    assert fields == ["body", "limt_price", "body", "action", "quantity", "body"]
    assert caught.value.details[-1].type == "expected_form"
    assert "ACTION TICKER [QUANTITY] [key=value ...]" in caught.value.message


def test_json_that_is_no_known_format_says_which_formats_are_read():
    with pytest.raises(AlertRejected) as caught:
        parse_alert(json.dumps({"instrumentName": "AAPL", "go": "buy"}).encode(), None)
    assert [detail.field for detail in caught.value.details] == ["ticker", "action", "body"]
    assert "TradersPost" in caught.value.message
    assert "3Commas" in caught.value.message


def test_a_dialect_refusal_names_the_services_own_field():
    message = {"secret": "s", "tv_instrument": "BTCUSDT", "action": "buy", "trigger_price": "abc"}
    with pytest.raises(AlertRejected) as caught:
        parse_alert(json.dumps(message).encode(), None)
    assert caught.value.details == [
        ErrorDetail(
            "trigger_price",
            "must be a number, got 'abc' (read in the 3Commas signal bot format)",
            "value_error",
        )
    ]


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["buy", "sell", "long", "flat", "bullish", "ENTER-LONG_X_BTCUSDT_b", "limit"])
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=6,
)
_KEYS = st.sampled_from(
    [
        "ticker", "action", "quantity", "sentiment", "quantityType", "orderType", "limitPrice",
        "takeProfit", "stopLoss", "trailAmount", "extendedHours", "tv_instrument", "bot_uuid",
        "order", "strategy_info", "take_profit", "stop_loss", "signalToken", "instrument",
        "investmentType", "amount", "code", "amountPerTradeType", "amountPerTrade", "leverage",
        "symbol", "api_secret", "quote_amount", "side", "qty", "strategy", "reduce_only",
        "passphrase", "secret",
    ]
)  # fmt: skip


@given(st.dictionaries(_KEYS, _JSON_VALUES, max_size=8))
def test_any_object_with_dialect_keys_is_read_or_refused_never_crashing(data: dict[str, object]):
    reading = read_alert(json.dumps(data).encode(), "application/json")
    assert (reading.intent is None) != (reading.rejection is None)
    stored = json.loads(reading.stored_body)
    for secret in ("passphrase", "secret", "api_secret", "signalToken"):
        if secret in data:
            assert stored[secret] == "[redacted]"
