"""Properties of parse_alert: it only ever answers an intent or AlertRejected, it reads every
valid alert back exactly, and the text and JSON forms of one alert agree."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinelab.brokers.base import OrderType, TimeInForce
from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, QuantityType, Sentiment
from pinelab.signals.parser import ALIASES, FIELDS, TEXT_BRACKETS, parse_alert

CONTENT_TYPES = st.sampled_from(
    [None, "text/plain", "application/json", "text/plain; charset=utf-8"]
)
CANONICAL_NAMES = {canonical: alias for alias, canonical in ALIASES.items()}
ACTION_WORDS = {
    "buy": Action.BUY,
    "sell": Action.SELL,
    "exit": Action.EXIT,
    "cancel": Action.CANCEL,
    "add": Action.ADD,
    "long": Action.BUY,
    "short": Action.SELL,
}
PRICES_NEEDED = {
    OrderType.MARKET: (),
    OrderType.LIMIT: ("limit_price",),
    OrderType.STOP: ("stop_price",),
    OrderType.STOP_LIMIT: ("limit_price", "stop_price"),
    OrderType.TRAILING_STOP: ("trail_percent",),
}
SAFE_WORD = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/", min_size=1, max_size=16)
# A ticker of the grammar, maybe behind an exchange prefix (which the canonical form drops).
TICKERS = st.builds(
    lambda prefix, symbol: prefix + symbol,
    st.sampled_from(["", "BINANCE:", "NASDAQ:", "CME_MINI:"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789._-/!", min_size=1, max_size=16),
)
positive = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1e12"), places=6)
signed = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=4)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["NaN", "inf", "", " 1.5 ", "{{ticker}}", "buy", "limit", "-0", "1e999"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(sorted(FIELDS)), children, max_size=4
        )
    ),
    max_leaves=12,
)
known_keys = st.sampled_from(sorted(FIELDS | ALIASES.keys() | {"percent", "amount", "type"}))


def outcome(body: bytes, content_type: str | None) -> AlertIntent | AlertRejected:
    """Parse, turning a rejection into a value; anything else raised fails the test."""
    try:
        return parse_alert(body, content_type)
    except AlertRejected as rejected:
        error = rejected
    assert error.details, "a rejection names at least one field"
    assert all(detail.field and detail.message for detail in error.details)
    assert error.message.startswith(f"{error.details[0].field}: ")
    return error


@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES)
@settings(max_examples=400)
def test_arbitrary_bytes_give_an_intent_or_a_rejection(body: bytes, content_type: str | None):
    outcome(body, content_type)


@given(value=json_values, content_type=CONTENT_TYPES)
@settings(max_examples=300)
def test_arbitrary_json_gives_an_intent_or_a_rejection(value: Any, content_type: str | None):
    outcome(json.dumps(value).encode(), content_type)  # stdlib writes NaN/Infinity for non-finite


@given(
    fields=st.dictionaries(known_keys, json_values, max_size=8),
    content_type=CONTENT_TYPES,
)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_known_fields_holding_anything_give_an_intent_or_a_rejection(
    fields: dict[str, Any], content_type: str | None
):
    body = {"ticker": "AAPL", "action": "buy", **fields}
    outcome(json.dumps(body, ensure_ascii=False).encode(), content_type)


text_words = (
    SAFE_WORD
    | st.sampled_from([*ACTION_WORDS, "NaN", "{{ticker}}", "=", "=="])
    | st.builds(
        "{}={}".format,
        st.sampled_from(sorted(FIELDS | ALIASES.keys() | TEXT_BRACKETS.keys())) | SAFE_WORD,
        SAFE_WORD | st.sampled_from(["", "NaN", "1", "-1", "limit", "stop_limit", "1e30"]),
    )
    | st.text(max_size=6)
)


@given(
    words=st.lists(text_words, max_size=8),
    separators=st.lists(st.sampled_from([" ", ",", ", ", "\t", "  ,"]), min_size=8, max_size=8),
    content_type=CONTENT_TYPES,
)
@settings(max_examples=400)
def test_arbitrary_text_gives_an_intent_or_a_rejection(
    words: list[str], separators: list[str], content_type: str | None
):
    text = "".join(word + separator for word, separator in zip(words, separators, strict=False))
    outcome(text.encode("utf-8", "surrogatepass"), content_type)


# --- valid alerts read back exactly ---------------------------------------------------------


@st.composite
def alerts(draw: st.DrawFn) -> tuple[dict[str, Any], AlertIntent]:
    """Draw a valid alert as {canonical field: value} and the intent it must give."""
    spec: dict[str, Any] = {
        "ticker": draw(TICKERS),
        "action": draw(st.sampled_from(sorted(ACTION_WORDS))),
    }
    order_type = draw(st.sampled_from(list(OrderType)))
    if order_type is not OrderType.MARKET or draw(st.booleans()):
        spec["order_type"] = order_type.value
    for name in PRICES_NEEDED[order_type]:
        spec[name] = draw(positive)
    optional = {
        "quantity": positive,
        # percent_of_position is bounded by 100, which the drawn quantities are not
        "quantity_type": st.sampled_from(
            [kind.value for kind in QuantityType if kind is not QuantityType.PERCENT_OF_POSITION]
        ),
        "price": positive,
        "time_in_force": st.sampled_from([kind.value for kind in TimeInForce]),
        "sentiment": st.sampled_from([kind.value for kind in Sentiment]),
        "position_size": signed,
        "take_profit": brackets(stop_loss=False),
        "stop_loss": brackets(stop_loss=True),
        "id": SAFE_WORD,
        "time": SAFE_WORD,
        "passphrase": SAFE_WORD,
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        spec[name] = draw(optional[name])
    return spec, expected_intent(spec)


def brackets(*, stop_loss: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Draw a take-profit or stop-loss object."""
    kinds = st.sampled_from(["price", "percent", "amount"])
    plain = st.builds(lambda kind, value: {kind: value}, kinds, positive)
    if not stop_loss:
        return plain
    return st.one_of(
        plain,
        st.builds(lambda value: {"price": value, "type": "stop"}, positive),
        st.builds(
            lambda p, lp: {"price": p, "type": "stop_limit", "limit_price": lp}, positive, positive
        ),
        st.builds(lambda value: {"percent": value, "type": "trailing_stop"}, positive),
    )


def expected_intent(spec: dict[str, Any]) -> AlertIntent:
    """Build the intent a spec describes, independently of the parser."""

    def target(value: dict[str, Any] | None) -> ExitTarget | None:
        if value is None:
            return None
        return ExitTarget(
            price=value.get("price"),
            percent=value.get("percent"),
            amount=value.get("amount"),
            order_type=OrderType(value.get("type", "stop")),
            limit_price=value.get("limit_price"),
        )

    return AlertIntent(
        ticker=(spec["ticker"].partition(":")[2] or spec["ticker"]).upper(),
        action=ACTION_WORDS[spec["action"]],
        quantity=spec.get("quantity"),
        quantity_type=QuantityType(spec.get("quantity_type", "fixed")),
        price=spec.get("price"),
        order_type=OrderType(spec.get("order_type", "market")),
        limit_price=spec.get("limit_price"),
        stop_price=spec.get("stop_price"),
        trail_percent=spec.get("trail_percent"),
        time_in_force=TimeInForce(spec.get("time_in_force", "day")),
        take_profit=target(spec.get("take_profit")),
        stop_loss=target(spec.get("stop_loss")),
        sentiment=Sentiment(spec["sentiment"]) if "sentiment" in spec else None,
        position_size=spec.get("position_size"),
        alert_id=spec.get("id"),
        alert_time=spec.get("time"),
        passphrase=spec.get("passphrase"),
    )


def render_json(spec: dict[str, Any], data: st.DataObject) -> bytes:
    """Write a spec as JSON, drawing for each field its name (canonical or alias), whether a
    number is a JSON number or a string, and the case and padding of words."""
    items = []
    for name, value in spec.items():
        key = name
        if name in CANONICAL_NAMES and data.draw(st.booleans()):
            key = CANONICAL_NAMES[name]
        items.append(f"{json.dumps(key)}: {render_json_value(name, value, data)}")
    return ("{" + ", ".join(items) + "}").encode()


def render_json_value(name: str, value: Any, data: st.DataObject) -> str:
    """Write one value as JSON text."""
    if isinstance(value, Decimal):
        number = format(value, "f")
        as_string = data.draw(st.booleans())
        return (
            json.dumps(f" {number} " if data.draw(st.booleans()) else number)
            if as_string
            else number
        )
    if isinstance(value, dict):
        if set(value) == {"price"} and data.draw(st.booleans()):
            return render_json_value("price", value["price"], data)
        inner = (f"{json.dumps(k)}: {render_json_value(k, v, data)}" for k, v in value.items())
        return "{" + ", ".join(inner) + "}"
    if name in {"action", "order_type", "time_in_force", "sentiment", "quantity_type", "type"}:
        value = data.draw(st.sampled_from([value, value.upper(), f" {value.title()} "]))
    return json.dumps(value)


def render_text(spec: dict[str, Any], data: st.DataObject) -> bytes:
    """Write a spec as one text line: ACTION TICKER [QUANTITY] then key=value options."""
    words = [spec["action"], spec["ticker"]]
    options = dict(spec)
    del options["action"], options["ticker"]
    if "quantity" in options and data.draw(st.booleans()):
        words.append(format(options.pop("quantity"), "f"))
    for name, value in options.items():
        if isinstance(value, dict):
            words.extend(
                f"{name}_{k}={format(v, 'f') if isinstance(v, Decimal) else v}"
                for k, v in value.items()
            )
        else:
            key = (
                CANONICAL_NAMES[name]
                if name in CANONICAL_NAMES and data.draw(st.booleans())
                else name
            )
            words.append(f"{key}={format(value, 'f') if isinstance(value, Decimal) else value}")
    separators = data.draw(
        st.lists(st.sampled_from([" ", ",", ", ", " , "]), min_size=len(words), max_size=len(words))
    )
    return "".join(word + sep for word, sep in zip(words, separators, strict=True)).encode()


@given(alert=alerts(), data=st.data(), content_type=CONTENT_TYPES)
def test_valid_json_alert_reads_back_to_the_same_values(
    alert: tuple[dict[str, Any], AlertIntent], data: st.DataObject, content_type: str | None
):
    spec, expected = alert
    assert parse_alert(render_json(spec, data), content_type) == expected


@given(alert=alerts(), data=st.data())
def test_text_and_json_forms_of_an_alert_give_equal_intents(
    alert: tuple[dict[str, Any], AlertIntent], data: st.DataObject
):
    spec, expected = alert
    from_text = parse_alert(render_text(spec, data), "text/plain")
    assert from_text == parse_alert(render_json(spec, data), "application/json")
    assert from_text == expected
