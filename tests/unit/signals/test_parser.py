"""parse_alert, rule by rule of shared/ALERTS.md and of the parser's brief."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from decimal import Decimal
from typing import Any

import pytest

from pinelab.brokers.base import OrderType, TimeInForce
from pinelab.errors import ErrorDetail, ValidationFailed
from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, QuantityType, Sentiment
from pinelab.signals.parser import parse_alert

BASE: dict[str, Any] = {"ticker": "AAPL", "action": "buy"}


def parse(body: bytes | str | dict[str, Any], content_type: str | None = "application/json"):
    """Parse a body given as bytes, text or a dict to be sent as JSON."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return parse_alert(body, content_type)


def with_base(**fields: Any) -> dict[str, Any]:
    """Return the minimal valid alert with the given fields added (or replaced)."""
    return {**BASE, **fields}


def rejection(body: bytes | str | dict[str, Any], content_type: str | None = "application/json"):
    """Parse a body that must be rejected and return the rejection."""
    with pytest.raises(AlertRejected) as caught:
        parse(body, content_type)
    return caught.value


def fields_of(error: AlertRejected) -> list[str]:
    """Return the field named by each detail of a rejection."""
    return [detail.field for detail in error.details]


# --- the canonical alert -------------------------------------------------------------------


def test_filled_canonical_alert_gives_the_full_intent():
    body = {
        "ticker": "AAPL",
        "action": "buy",
        "quantity": "10",
        "price": "190.25",
        "sentiment": "long",
        "id": "Long entry",
        "time": "2024-05-01T14:30:00Z",
    }
    assert parse(body) == AlertIntent(
        ticker="AAPL",
        action=Action.BUY,
        quantity=Decimal("10"),
        price=Decimal("190.25"),
        sentiment=Sentiment.LONG,
        alert_id="Long entry",
        alert_time="2024-05-01T14:30:00Z",
    )


def test_minimal_alert_takes_the_documented_defaults():
    intent = parse(BASE)
    assert intent.quantity is None
    assert intent.quantity_type is QuantityType.FIXED
    assert intent.order_type is OrderType.MARKET
    assert intent.time_in_force is TimeInForce.DAY
    assert intent.take_profit is None
    assert intent.stop_loss is None
    assert intent.idempotency_key is None


def test_json_float_is_read_as_the_decimal_written():
    intent = parse(b'{"ticker": "AAPL", "action": "buy", "quantity": 0.1, "price": 190.25}')
    assert intent.quantity == Decimal("0.1")
    assert str(intent.price) == "190.25"


def test_json_number_with_more_digits_than_a_double_keeps_every_digit():
    body = b'{"ticker": "X", "action": "buy", "price": 12345678901234567.123456789}'
    assert parse(body).price == Decimal("12345678901234567.123456789")


# --- ticker ---------------------------------------------------------------------------------


def test_ticker_is_required():
    error = rejection({"action": "buy"})
    assert error.details == [ErrorDetail("ticker", "is required", "missing")]


def test_ticker_is_trimmed():
    assert parse(with_base(ticker="  BTCUSDT \t")).ticker == "BTCUSDT"


@pytest.mark.parametrize("ticker", ["", "   "])
def test_empty_ticker_is_rejected(ticker: str):
    assert fields_of(rejection(with_base(ticker=ticker))) == ["ticker"]


def test_ticker_of_64_characters_is_accepted():
    assert parse(with_base(ticker="A" * 64)).ticker == "A" * 64


def test_ticker_longer_than_64_characters_is_rejected():
    error = rejection(with_base(ticker="A" * 65))
    assert fields_of(error) == ["ticker"]
    assert "at most 64 characters" in error.message


@pytest.mark.parametrize("ticker", ["AA\x00PL", "AA\u2028PL", "\ud800"])
def test_ticker_with_control_or_invalid_characters_is_rejected(ticker: str):
    body = json.dumps(with_base(ticker=ticker)).encode()  # ASCII escapes, as a sender may write
    assert fields_of(rejection(body)) == ["ticker"]


def test_unfilled_ticker_placeholder_is_rejected_saying_so():
    error = rejection(with_base(ticker="{{ticker}}"))
    assert error.details == [
        ErrorDetail(
            "ticker", "the TradingView placeholder {{ticker}} was not filled in", "placeholder"
        )
    ]
    assert error.message == "ticker: the TradingView placeholder {{ticker}} was not filled in"


# --- action ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "action"),
    [
        ("buy", Action.BUY),
        ("sell", Action.SELL),
        ("exit", Action.EXIT),
        ("cancel", Action.CANCEL),
        ("add", Action.ADD),
        ("long", Action.BUY),
        ("short", Action.SELL),
        ("  BUY ", Action.BUY),
        ("Short", Action.SELL),
    ],
)
def test_action_words_are_read(word: str, action: Action):
    assert parse(with_base(action=word)).action is action


@pytest.mark.parametrize("word", ["close", "flat", "b", "buy sell", ""])
def test_unknown_action_is_rejected(word: str):
    error = rejection(with_base(action=word))
    assert fields_of(error) == ["action"]
    assert "must be one of buy, sell, exit, cancel, add, long, short" in error.message


def test_action_is_required():
    assert rejection({"ticker": "AAPL"}).details == [
        ErrorDetail("action", "is required", "missing")
    ]


def test_unfilled_action_placeholder_is_rejected_saying_so():
    error = rejection(with_base(action="{{strategy.order.action}}"))
    assert error.details[0].type == "placeholder"
    assert "{{strategy.order.action}} was not filled in" in error.message


@pytest.mark.parametrize(
    ("fields", "field", "placeholder"),
    [
        ({"quantity": "{{strategy.order.contracts}}"}, "quantity", "{{strategy.order.contracts}}"),
        ({"price": " {{close}} "}, "price", "{{close}}"),
        ({"take_profit": {"price": "{{plot_0}}"}}, "take_profit.price", "{{plot_0}}"),
        ({"stop_loss": "{{strategy.order.price}}"}, "stop_loss", "{{strategy.order.price}}"),
        (
            {"sentiment": "{{strategy.market_position}}"},
            "sentiment",
            "{{strategy.market_position}}",
        ),
        ({"id": "{{strategy.order.id}}"}, "id", "{{strategy.order.id}}"),
    ],
)
def test_any_read_field_still_holding_a_placeholder_is_rejected_naming_it(
    fields: dict[str, Any], field: str, placeholder: str
):
    error = rejection(with_base(**fields))
    assert error.details == [
        ErrorDetail(
            field, f"the TradingView placeholder {placeholder} was not filled in", "placeholder"
        )
    ]


# --- quantity and numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10", Decimal("10")),
        (" 1.5 ", Decimal("1.5")),
        (10, Decimal("10")),
        (0.01, Decimal("0.01")),
        ("1e3", Decimal("1000")),
        (".5", Decimal("0.5")),
        ("+2", Decimal("2")),
    ],
)
def test_quantity_accepts_numbers_and_numeric_strings(value: Any, expected: Decimal):
    assert parse(with_base(quantity=value)).quantity == expected


def test_quantity_is_optional():
    assert parse(BASE).quantity is None


def test_null_is_the_same_as_leaving_a_field_out():
    assert parse(with_base(quantity=None, price=None, take_profit=None)) == parse(BASE)


def test_nan_string_is_rejected_naming_the_field():
    error = rejection(with_base(quantity="NaN"))
    assert error.message == "quantity: must be a number, got 'NaN'"
    assert error.details == [ErrorDetail("quantity", "must be a number, got 'NaN'")]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_json_literals_are_rejected_naming_the_field(literal: str):
    body = f'{{"ticker": "AAPL", "action": "buy", "quantity": {literal}}}'
    error = rejection(body, "text/plain")
    assert error.details == [ErrorDetail("quantity", f"must be a number, got {literal}")]


@pytest.mark.parametrize(
    "value", ["", "   ", "inf", "-inf", "Infinity", "nan", "1,5", "1_000", "ten"]
)
def test_non_numeric_strings_are_rejected_naming_the_field(value: str):
    error = rejection(with_base(quantity=value))
    assert fields_of(error) == ["quantity"]
    assert error.message.startswith("quantity: must be a number, got ")


def test_json_number_too_large_for_a_double_is_rejected_not_infinite():
    error = rejection(b'{"ticker": "AAPL", "action": "buy", "price": 1e999}')
    assert fields_of(error) == ["price"]
    assert "must be below 1e20" in error.message


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(value: bool):
    error = rejection(with_base(quantity=value))
    assert error.details == [
        ErrorDetail("quantity", f"must be a number, got {str(value).lower()}", "type_error")
    ]


@pytest.mark.parametrize("value", ["0", 0, "-1", -0.5, "-0"])
def test_zero_or_negative_quantity_is_rejected(value: Any):
    error = rejection(with_base(quantity=value))
    assert fields_of(error) == ["quantity"]
    assert "must be greater than 0" in error.message


def test_number_of_20_integer_digits_is_rejected_as_too_large():
    assert fields_of(rejection(with_base(quantity="1" + "0" * 20))) == ["quantity"]
    assert parse(with_base(quantity="9" * 20)).quantity == Decimal("9" * 20)


def test_number_with_more_than_18_decimal_places_is_rejected():
    error = rejection(with_base(price="0." + "0" * 18 + "1"))
    assert error.details == [ErrorDetail("price", "must have at most 18 decimal places")]


def test_trailing_zeros_do_not_count_as_decimal_places():
    assert parse(with_base(price="1." + "0" * 30)).price == Decimal(1)


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("quantity", {"value": 1}, "an object"),
        ("quantity", [1], "an array"),
        ("price", {}, "an object"),
        ("limit_price", [], "an array"),
        ("position_size", True, "true"),
    ],
)
def test_number_field_of_the_wrong_type_is_rejected_naming_it(field: str, value: Any, kind: str):
    error = rejection(with_base(**{field: value}))
    assert error.details == [ErrorDetail(field, f"must be a number, got {kind}", "type_error")]


# --- quantity_type --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(QuantityType))
def test_quantity_type_values_are_read(kind: QuantityType):
    assert parse(with_base(quantity="5", quantity_type=kind.value.upper())).quantity_type is kind


def test_unknown_quantity_type_is_rejected():
    error = rejection(with_base(quantity_type="dollar_amount"))
    assert fields_of(error) == ["quantity_type"]
    assert "fixed, notional, percent_of_equity" in error.message


# --- price ----------------------------------------------------------------------------------


def test_signal_price_is_read():
    assert parse(with_base(price="190.25")).price == Decimal("190.25")


def test_field_given_under_both_of_its_names_is_rejected():
    error = rejection(with_base(price="1", signalPrice="2"))
    assert error.details == [
        ErrorDetail("signalPrice", "price is given twice, as 'price' and 'signalPrice'")
    ]


# --- order types and the prices each needs --------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"order_type": "market"}, {"order_type": OrderType.MARKET}),
        (
            {"order_type": "limit", "limit_price": "100"},
            {"order_type": OrderType.LIMIT, "limit_price": Decimal(100)},
        ),
        (
            {"order_type": "stop", "stop_price": "90"},
            {"order_type": OrderType.STOP, "stop_price": Decimal(90)},
        ),
        (
            {"order_type": "STOP_LIMIT", "stop_price": "90", "limit_price": "89.5"},
            {
                "order_type": OrderType.STOP_LIMIT,
                "stop_price": Decimal(90),
                "limit_price": Decimal("89.5"),
            },
        ),
        (
            {"order_type": "trailing_stop", "trail_percent": "1.5"},
            {"order_type": OrderType.TRAILING_STOP, "trail_percent": Decimal("1.5")},
        ),
    ],
)
def test_order_types_with_their_prices_are_read(fields: dict[str, str], expected: dict[str, Any]):
    assert parse(with_base(**fields)) == AlertIntent(ticker="AAPL", action=Action.BUY, **expected)


@pytest.mark.parametrize(
    ("order_type", "missing"),
    [
        ("limit", ["limit_price"]),
        ("stop", ["stop_price"]),
        ("stop_limit", ["limit_price", "stop_price"]),
        ("trailing_stop", ["trail_percent"]),
    ],
)
def test_order_type_without_its_prices_is_rejected_naming_each(order_type: str, missing: list[str]):
    error = rejection(with_base(order_type=order_type))
    assert error.details == [
        ErrorDetail(name, f"is required when order_type is {order_type}", "missing")
        for name in missing
    ]


def test_stop_limit_with_only_one_price_names_the_other():
    error = rejection(with_base(order_type="stop_limit", stop_price="90"))
    assert fields_of(error) == ["limit_price"]


def test_unknown_order_type_is_rejected():
    error = rejection(with_base(order_type="iceberg"))
    assert fields_of(error) == ["order_type"]


@pytest.mark.parametrize("field", ["limit_price", "stop_price", "trail_percent"])
def test_order_prices_must_be_positive(field: str):
    assert fields_of(rejection(with_base(**{field: "0"}))) == [field]


# --- time_in_force --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(TimeInForce))
def test_time_in_force_values_are_read(kind: TimeInForce):
    assert parse(with_base(time_in_force=kind.value)).time_in_force is kind


def test_unknown_time_in_force_is_rejected():
    assert fields_of(rejection(with_base(time_in_force="gtd"))) == ["time_in_force"]


# --- take_profit and stop_loss --------------------------------------------------------------


@pytest.mark.parametrize("field", ["take_profit", "stop_loss"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"price": 200}, ExitTarget(price=Decimal(200))),
        ({"percent": "2"}, ExitTarget(percent=Decimal(2))),
        ({"amount": 5.5}, ExitTarget(amount=Decimal("5.5"))),
        (200, ExitTarget(price=Decimal(200))),
        ("200.5", ExitTarget(price=Decimal("200.5"))),
    ],
)
def test_bracket_is_read_as_price_percent_amount_or_bare_price(
    field: str, value: Any, expected: ExitTarget
):
    assert getattr(parse(with_base(**{field: value})), field) == expected


@pytest.mark.parametrize("field", ["take_profit", "stop_loss"])
@pytest.mark.parametrize(
    "value", [{}, {"price": 1, "percent": 2}, {"percent": 1, "amount": 2, "price": 3}]
)
def test_bracket_needs_exactly_one_of_price_percent_amount(field: str, value: dict[str, Any]):
    error = rejection(with_base(**{field: value}))
    assert fields_of(error) == [field]
    assert "exactly one of price, percent or amount" in error.message


@pytest.mark.parametrize("field", ["take_profit", "stop_loss"])
@pytest.mark.parametrize(("value", "kind"), [([200], "an array"), (True, "true")])
def test_bracket_of_the_wrong_type_is_rejected_naming_it(field: str, value: Any, kind: str):
    error = rejection(with_base(**{field: value}))
    assert fields_of(error) == [field]
    assert error.details[0].type == "type_error"
    assert error.message.endswith(f"got {kind}")


def test_bad_value_inside_a_bracket_is_named_with_its_path():
    error = rejection(with_base(take_profit={"percent": "NaN"}, stopLoss={"amount": -1}))
    assert fields_of(error) == ["take_profit.percent", "stopLoss.amount"]


@pytest.mark.parametrize("kind", ["stop", "stop_limit", "trailing_stop"])
def test_stop_loss_type_is_read(kind: str):
    stop_loss = {"percent": 1, "type": kind, "limit_price": 95}
    assert parse(with_base(stop_loss=stop_loss)).stop_loss == ExitTarget(
        percent=Decimal(1), order_type=OrderType(kind), limit_price=Decimal(95)
    )


def test_stop_loss_defaults_to_a_stop_order():
    assert parse(with_base(stop_loss={"price": 90})).stop_loss == ExitTarget(
        price=Decimal(90), order_type=OrderType.STOP
    )


def test_stop_limit_stop_loss_needs_its_limit_price():
    error = rejection(with_base(stop_loss={"price": 90, "type": "stop_limit"}))
    assert error.details == [
        ErrorDetail("stop_loss.limit_price", "is required when type is stop_limit", "missing")
    ]


@pytest.mark.parametrize("kind", ["price", "amount"])
def test_trailing_stop_loss_takes_a_percent_only(kind: str):
    # No broker adapter trails by an amount: refused at the door, not failed after the 202.
    error = rejection(with_base(stop_loss={kind: 90, "type": "trailing_stop"}))
    assert fields_of(error) == [f"stop_loss.{kind}"]
    assert parse(with_base(stop_loss={"percent": 2, "type": "trailing_stop"})).stop_loss


@pytest.mark.parametrize("kind", ["market", "limit", "trailing"])
def test_stop_loss_type_outside_the_three_is_rejected(kind: str):
    error = rejection(with_base(stop_loss={"price": 90, "type": kind}))
    assert fields_of(error) == ["stop_loss.type"]
    assert "stop, stop_limit, trailing_stop" in error.message


def test_take_profit_takes_no_type():
    error = rejection(with_base(take_profit={"price": 200, "type": "stop"}))
    assert error.details == [ErrorDetail("take_profit.type", "is allowed only in stop_loss")]


def test_unknown_keys_inside_a_bracket_are_ignored():
    stop_loss = {"percent": 1, "note": "tight"}
    assert parse(with_base(stop_loss=stop_loss)).stop_loss == ExitTarget(percent=Decimal(1))


# --- sentiment, position_size ---------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Sentiment))
def test_sentiment_values_are_read(kind: Sentiment):
    assert parse(with_base(sentiment=f" {kind.value.title()} ")).sentiment is kind


def test_unknown_sentiment_is_rejected():
    assert fields_of(rejection(with_base(sentiment="upward"))) == ["sentiment"]


@pytest.mark.parametrize("value", ["0", "-3", "2.5", -1, 0])
def test_position_size_may_be_zero_or_negative(value: Any):
    assert parse(with_base(position_size=value)).position_size == Decimal(str(value))


def test_position_size_nan_is_rejected():
    error = rejection(with_base(position_size="NaN"))
    assert error.message == "position_size: must be a number, got 'NaN'"


# --- id, time, passphrase -------------------------------------------------------------------


def test_id_and_time_are_kept_and_are_no_idempotency_key():
    intent = parse(with_base(id="L1", time="2024-05-01T14:30:00Z"))
    assert (intent.alert_id, intent.alert_time) == ("L1", "2024-05-01T14:30:00Z")
    assert intent.idempotency_key is None


@pytest.mark.parametrize("name", ["idempotency_key", "idempotencyKey"])
def test_the_explicit_idempotency_key_is_read_trimmed(name: str):
    intent = parse(with_base(**{name: " AAPL-1714573800-L1 "}))
    assert intent.idempotency_key == "AAPL-1714573800-L1"


def test_an_idempotency_key_longer_than_the_column_is_rejected():
    error = rejection(with_base(idempotency_key="k" * 256))
    assert error.message == "idempotency_key: must be at most 255 characters long, got 256"


def test_numeric_id_and_time_are_converted_to_strings():
    intent = parse(b'{"ticker": "X", "action": "buy", "id": 42, "time": 1714573800.5}')
    assert (intent.alert_id, intent.alert_time) == ("42", "1714573800.5")


def test_empty_id_time_and_key_are_absent():
    intent = parse(with_base(id="", time="  ", idempotency_key=""))
    assert (intent.alert_id, intent.alert_time, intent.idempotency_key) == (None, None, None)


@pytest.mark.parametrize(("field", "value"), [("id", True), ("time", {"t": 1}), ("id", [1])])
def test_id_or_time_of_the_wrong_type_is_rejected(field: str, value: Any):
    error = rejection(with_base(**{field: value}))
    assert fields_of(error) == [field]
    assert error.details[0].type == "type_error"


def test_overlong_id_is_rejected_so_the_key_fits_its_column():
    assert fields_of(rejection(with_base(id="x" * 121))) == ["id"]


def test_unfilled_time_placeholder_is_rejected():
    error = rejection(with_base(time="{{timenow}}"))
    assert error.details == [
        ErrorDetail(
            "time", "the TradingView placeholder {{timenow}} was not filled in", "placeholder"
        )
    ]


def test_passphrase_is_read_as_given_and_left_out_of_the_record():
    intent = parse(with_base(passphrase=" s3cret "))
    assert intent.passphrase == " s3cret "
    assert "passphrase" not in intent.to_record()


@pytest.mark.parametrize("value", [123456, "{{hunter2}}"])
def test_bad_passphrase_is_rejected_without_echoing_it(value: Any):
    error = rejection(with_base(passphrase=value))
    assert fields_of(error) == ["passphrase"]
    assert "123456" not in error.message
    assert "hunter2" not in error.message


# --- aliases, unknown fields, wrong types ---------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "name", "value"),
    [
        ("signalPrice", "price", "190.25"),
        ("quantityType", "quantity_type", "notional"),
        ("orderType", "order_type", "trailing_stop"),
        ("limitPrice", "limit_price", "100"),
        ("stopPrice", "stop_price", "90"),
        ("trailPercent", "trail_percent", "1"),
        ("timeInForce", "time_in_force", "gtc"),
        ("takeProfit", "take_profit", {"percent": 2}),
        ("stopLoss", "stop_loss", {"percent": 3, "type": "trailing_stop"}),
        ("positionSize", "position_size", "-5"),
    ],
)
def test_camel_case_alias_reads_as_the_canonical_field(alias: str, name: str, value: Any):
    base = with_base(trail_percent="2") if name == "order_type" else BASE
    from_alias = parse({**base, alias: value})
    assert from_alias == parse({**base, name: value})
    assert from_alias != parse(base)


def test_camel_case_limit_price_is_read_inside_stop_loss():
    stop_loss = {"price": 90, "type": "stop_limit", "limitPrice": 89}
    assert parse(with_base(stopLoss=stop_loss)).stop_loss == ExitTarget(
        price=Decimal(90), order_type=OrderType.STOP_LIMIT, limit_price=Decimal(89)
    )


def test_unknown_fields_are_ignored():
    body = with_base(exchange="NASDAQ", comment="{{strategy.order.comment}}", extra={"a": [1]})
    assert parse(body) == parse(BASE)


def test_field_names_are_case_sensitive():
    assert parse(with_base(Quantity="10")).quantity is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ticker", {"symbol": "AAPL"}),
        ("ticker", ["AAPL"]),
        ("ticker", 700),
        ("action", 1),
        ("action", ["buy"]),
        ("order_type", {"kind": "limit"}),
        ("time_in_force", True),
        ("sentiment", 0),
        ("quantity_type", []),
        ("passphrase", {"p": "x"}),
    ],
)
def test_string_field_of_the_wrong_type_is_rejected_naming_it(field: str, value: Any):
    error = rejection(with_base(**{field: value}))
    assert fields_of(error) == [field]
    assert error.details[0].type == "type_error"
    assert error.message.startswith(f"{field}: must be a string")


def test_every_bad_field_is_reported_at_once():
    error = rejection({"action": "hold", "quantity": "NaN", "order_type": "limit"})
    assert fields_of(error) == ["ticker", "action", "limit_price", "quantity"]
    assert error.message.count("; ") == 3


# --- the body as a whole --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [("[1, 2]", "an array"), ('"buy AAPL"', "a string"), ("3", "3"), ("null", "null")],
)
def test_json_that_is_not_an_object_is_rejected(body: str, kind: str):
    error = rejection(body, "application/json")
    assert error.details == [
        ErrorDetail("body", f"must be a JSON object, got {kind}", "type_error")
    ]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/plain; charset=utf-8", None, "application/octet-stream"]
)
def test_json_is_detected_by_its_first_character_whatever_the_content_type(
    content_type: str | None,
):
    body = '\n  {"ticker": "AAPL", "action": "sell", "quantity": "2"}'
    assert parse(body, content_type) == AlertIntent(
        ticker="AAPL", action=Action.SELL, quantity=Decimal(2)
    )


def test_text_alert_sent_as_json_content_type_is_read_as_text():
    assert parse("buy AAPL 10", "application/json; charset=utf-8").quantity == Decimal(10)


def test_invalid_json_is_rejected_as_not_valid_json():
    error = rejection('{"ticker": "AAPL", "action": "buy",}')
    assert fields_of(error) == ["body"]
    assert error.details[0].type == "parse_error"
    assert error.message.startswith("body: is not valid JSON")


def test_json_with_an_unquoted_unfilled_placeholder_says_so():
    error = rejection(
        '{"ticker": "AAPL", "action": "buy", "quantity": {{strategy.order.contracts}}}'
    )
    assert fields_of(error) == ["body"]
    assert "placeholder {{strategy.order.contracts}} was not filled in" in error.message


def test_deeply_nested_json_is_rejected_not_crashing():
    assert fields_of(rejection("[" * 100_000)) == ["body"]
    assert fields_of(rejection('{"a":' * 5_000)) == ["body"]


@pytest.mark.parametrize(
    "body", [b"\xff\xfe", b'{"ticker": "\xc3(", "action": "buy"}', b"buy \x80 1"]
)
def test_body_that_is_not_utf8_is_rejected(body: bytes):
    error = rejection(body)
    assert fields_of(error) == ["body"]
    assert "not valid UTF-8" in error.message


@pytest.mark.parametrize("body", [b"", b"   \n\t ", b"\xef\xbb\xbf"])
def test_empty_body_is_rejected(body: bytes):
    assert rejection(body).details == [ErrorDetail("body", "is empty", "missing")]


def test_utf8_byte_order_mark_is_ignored():
    assert parse(b"\xef\xbb\xbfbuy AAPL 1", "text/plain").ticker == "AAPL"


def test_rejection_is_a_validation_failure_with_a_sentence_per_field():
    error = rejection(with_base(quantity="NaN"))
    assert isinstance(error, ValidationFailed)
    assert str(error) == error.message == "quantity: must be a number, got 'NaN'"


# --- plain text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("buy AAPL 10", AlertIntent(ticker="AAPL", action=Action.BUY, quantity=Decimal(10))),
        (
            "sell,BTCUSDT,0.01,order_type=limit,limit_price=65000",
            AlertIntent(
                ticker="BTCUSDT",
                action=Action.SELL,
                quantity=Decimal("0.01"),
                order_type=OrderType.LIMIT,
                limit_price=Decimal(65000),
            ),
        ),
        ("exit TSLA", AlertIntent(ticker="TSLA", action=Action.EXIT)),
        ("  CANCEL , TSLA  ", AlertIntent(ticker="TSLA", action=Action.CANCEL)),
        ("long ETHUSD, 2", AlertIntent(ticker="ETHUSD", action=Action.BUY, quantity=Decimal(2))),
    ],
)
def test_text_alerts_of_alerts_md_are_read(text: str, expected: AlertIntent):
    assert parse(text, "text/plain") == expected


def test_text_keys_cover_the_json_fields_and_aliases():
    text = (
        "buy AAPL quantity_type=notional price=190.25 orderType=stop stopPrice=191 "
        "time_in_force=gtc sentiment=long positionSize=0 id=L1 time=1714573800 "
        "idempotency_key=AAPL-L1 passphrase=pw"
    )
    assert parse(text, "text/plain") == AlertIntent(
        ticker="AAPL",
        action=Action.BUY,
        quantity_type=QuantityType.NOTIONAL,
        price=Decimal("190.25"),
        order_type=OrderType.STOP,
        stop_price=Decimal(191),
        time_in_force=TimeInForce.GTC,
        sentiment=Sentiment.LONG,
        position_size=Decimal(0),
        alert_id="L1",
        alert_time="1714573800",
        idempotency_key="AAPL-L1",
        passphrase="pw",
    )


@pytest.mark.parametrize(
    ("options", "take_profit", "stop_loss"),
    [
        (
            "take_profit=200 stop_loss=180",
            ExitTarget(price=Decimal(200)),
            ExitTarget(price=Decimal(180)),
        ),
        ("take_profit_price=200", ExitTarget(price=Decimal(200)), None),
        (
            "take_profit_percent=2 stop_loss_percent=1",
            ExitTarget(percent=Decimal(2)),
            ExitTarget(percent=Decimal(1)),
        ),
        (
            "take_profit_amount=5 stop_loss_amount=3",
            ExitTarget(amount=Decimal(5)),
            ExitTarget(amount=Decimal(3)),
        ),
        ("takeProfit=200", ExitTarget(price=Decimal(200)), None),
        (
            "stop_loss_price=180 stop_loss_type=stop_limit stop_loss_limit_price=179",
            None,
            ExitTarget(
                price=Decimal(180), order_type=OrderType.STOP_LIMIT, limit_price=Decimal(179)
            ),
        ),
        (
            "stop_loss_percent=1,stop_loss_type=trailing_stop",
            None,
            ExitTarget(percent=Decimal(1), order_type=OrderType.TRAILING_STOP),
        ),
    ],
)
def test_text_brackets_use_the_flattened_keys(
    options: str, take_profit: ExitTarget | None, stop_loss: ExitTarget | None
):
    intent = parse(f"buy AAPL 1 {options}", "text/plain")
    assert (intent.take_profit, intent.stop_loss) == (take_profit, stop_loss)


def test_text_and_json_forms_of_an_alert_are_equal():
    text = (
        "sell BTCUSDT 0.5 order_type=stop_limit stop_price=60000 limit_price=59900 "
        "take_profit_percent=3 stop_loss=61000 id=7"
    )
    body = {
        "action": "sell",
        "ticker": "BTCUSDT",
        "quantity": 0.5,
        "order_type": "stop_limit",
        "stop_price": 60000,
        "limit_price": "59900",
        "take_profit": {"percent": 3},
        "stop_loss": 61000,
        "id": 7,
    }
    assert parse(text, "text/plain") == parse(body)


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("buy AAPL 10\nsell AAPL 10", "body", "must be one line"),
        ("buy AAPL 10 20", "body", "extra word '20'"),
        ("buy AAPL 10 limit_price=5 gtc", "body", "expected key=value"),
        ("buy AAPL 10 limt_price=5", "limt_price", "is not a known field"),
        ("buy AAPL 10 take_profit_type=stop", "take_profit_type", "is not a known field"),
        ("buy AAPL 10 =5", "body", "is not a known field"),
        ("buy AAPL 10 price=1 price=2", "price", "is given twice"),
        ("buy AAPL 10 quantity=3", "quantity", "is given twice"),
        ("buy AAPL 1 take_profit=2 take_profit_price=3", "take_profit.price", "is given twice"),
        ("buy AAPL 1 price=1 signalPrice=1", "signalPrice", "price is given twice"),
        ("buy AAPL NaN", "quantity", "must be a number, got 'NaN'"),
        ("buy AAPL 10 price=", "price", "must be a number, got ''"),
        ("hello world", "action", "must be one of"),
        ("buy", "ticker", "is required"),
        ("buy {{ticker}} 1", "ticker", "placeholder {{ticker}} was not filled in"),
        ("{{strategy.order.action}} AAPL 1", "action", "placeholder {{strategy.order.action}}"),
        ("buy AAPL 1 take_profit_percent=x", "take_profit.percent", "must be a number"),
        ("buy AAPL 1 order_type=limit", "limit_price", "is required when order_type is limit"),
    ],
)
def test_bad_text_alert_is_rejected_with_a_reason(text: str, field: str, says: str):
    error = rejection(text, "text/plain")
    assert field in fields_of(error)
    assert says in error.message


def test_parsed_intent_survives_the_signal_record():
    body = with_base(
        quantity="1.50", stop_loss={"percent": "1", "type": "stop_limit", "limit_price": 9}
    )
    intent = parse(body)
    assert AlertIntent.from_record(json.loads(json.dumps(intent.to_record()))) == intent


def test_every_field_of_a_full_intent_survives_the_signal_record():
    target = ExitTarget(Decimal(1), Decimal(2), Decimal(3), OrderType.LIMIT, Decimal(4))
    full = AlertIntent(
        ticker="AAPL",
        action=Action.SELL,
        quantity=Decimal("1.5"),
        quantity_type=QuantityType.NOTIONAL,
        price=Decimal(10),
        order_type=OrderType.STOP_LIMIT,
        limit_price=Decimal(9),
        stop_price=Decimal(11),
        trail_percent=Decimal("0.5"),
        time_in_force=TimeInForce.GTC,
        take_profit=target,
        stop_loss=target,
        sentiment=Sentiment.FLAT,
        position_size=Decimal(-2),
        alert_id="a",
        alert_time="t",
        idempotency_key="k",
        passphrase="secret",
        dialect="TradersPost",
    )
    assert all(getattr(full, f.name) is not None for f in fields(AlertIntent))
    record = json.loads(json.dumps(full.to_record()))  # the stdlib refuses anything not JSON
    assert "passphrase" not in record
    assert AlertIntent.from_record(record) == replace(full, passphrase=None)


def test_a_percent_of_the_position_above_100_is_rejected():
    error = rejection(with_base(quantity="150", quantity_type="percent_of_position"))
    assert fields_of(error) == ["quantity"]
    assert "at most 100" in error.message
    assert parse(with_base(quantity="100", quantity_type="percent_of_position")).quantity == 100
