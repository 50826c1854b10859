"""Turn a TradingView alert body into an AlertIntent, or reject it naming every bad field.

The formats are those of ``shared/ALERTS.md`` and docs/alerts.md. ``read_alert`` never raises
for bad input: it returns the intent or the refusal, and the body as it may be stored, with
every secret the message holds redacted (``redaction.py``), decided on the message as read.

Dialects. Before PineLab's own forms, a text body is offered to each of ``TEXT_DIALECTS`` and a
JSON object to each of ``JSON_DIALECTS`` (``dialects/__init__.py``), in order; the first whose
``claims`` is true translates it into the canonical fields below, which are then read by the
same rules as a PineLab alert, and the intent records the dialect's name. A refusal, whether
the dialect's own or the canonical reader's, names the service's field where the dialect says
which it was (its ``sources``) and ends with "(read in the <service> format)".

Which format. A body whose first non-space character is ``{`` or ``[`` (but not ``{{``) is
JSON whatever its content type: TradingView sends ``text/plain`` for any message it does not
take for JSON, and other senders mislabel bodies too. A body declared as JSON that parses to a
scalar is rejected as not an object; any other body is a text alert. The body must be UTF-8
and not empty.

JSON. The fields of ALERTS.md, each also accepted under its camelCase alias (``signalPrice``
is ``price``; ``quantityType``, ``orderType``, ``limitPrice``, ``stopPrice``, ``trailPercent``,
``timeInForce``, ``takeProfit``, ``stopLoss``, ``positionSize``). One field given under two
names is rejected; ``null`` is the same as leaving a field out; unknown fields are ignored (the
caller keeps the raw body). Numbers are JSON numbers or numeric strings (``"10"``, ``" 1.5 "``),
read exactly as Decimal, at most 20 integer digits and 18 decimals (what the books store);
``NaN``, ``inf``, empty strings and booleans are rejected. Quantities, prices, percents and
amounts must be above 0; ``position_size`` may be 0 or negative. Choice fields are
case-insensitive and trimmed; ``long``/``short`` are actions ``buy``/``sell``. ``take_profit``
and ``stop_loss`` are ``{"price"|"percent"|"amount": x}`` (exactly one) or a bare number, read
as a price; ``stop_loss`` may add ``"type"`` (``stop``, ``stop_limit`` with ``"limit_price"``,
or ``trailing_stop`` with a percent). ``id``, ``time`` and ``idempotency_key`` are
strings (numbers are converted). A string in a field that is read and still holds ``{{`` is a
TradingView placeholder that was not filled in, and is rejected.

Text. One line, ``ACTION TICKER [QUANTITY] [key=value ...]``, words separated by spaces and/or
commas, so no value can hold a space or a comma. Keys are the JSON field names or their aliases;
brackets are flattened:

- ``take_profit=200`` or ``take_profit_price=200`` (a price), ``take_profit_percent=2``,
  ``take_profit_amount=5``;
- the same four with ``stop_loss``, plus ``stop_loss_type=stop_limit`` and
  ``stop_loss_limit_price=95``.

A second line, more than three leading words, a word without ``=`` after the first key=value,
an unknown key or a repeated key is rejected: a typo in a text key must not silently turn a
limit order into a market order. Every problem of a text alert is reported at once, followed by
the expected form. The text becomes the JSON mapping and is read by the same
rules, so both forms of one alert give equal intents; a bad bracket value is named as in JSON
(``stop_loss.percent``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final, TypeVar

import orjson

from pinelab.brokers.base import OrderType, TimeInForce
from pinelab.brokers.symbols import MAX_TICKER_LENGTH, canonical_ticker, ticker_problem
from pinelab.errors import ErrorDetail
from pinelab.signals.dialects import JSON_DIALECTS, TEXT_DIALECTS
from pinelab.signals.dialects.base import JsonDialect, TextDialect, Translation
from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, QuantityType, Sentiment
from pinelab.signals.redaction import redact_json, redact_text

EnumT = TypeVar("EnumT", bound=StrEnum)

MAX_ID_LENGTH: Final = 120  # id and time each (stored in the intent, never a key)
MAX_KEY_LENGTH: Final = 255  # the idempotency key column
MAX_PASSPHRASE_LENGTH: Final = 256
MAX_INTEGER_DIGITS: Final = 20
MAX_DECIMAL_PLACES: Final = 18

FIELDS: Final = frozenset(
    {
        "ticker", "action", "quantity", "quantity_type", "price", "order_type", "limit_price",
        "stop_price", "trail_percent", "time_in_force", "take_profit", "stop_loss", "sentiment",
        "position_size", "id", "time", "idempotency_key", "passphrase",
    }
)  # fmt: skip
ALIASES: Final[Mapping[str, str]] = {
    "signalPrice": "price",
    "quantityType": "quantity_type",
    "orderType": "order_type",
    "limitPrice": "limit_price",
    "stopPrice": "stop_price",
    "trailPercent": "trail_percent",
    "timeInForce": "time_in_force",
    "takeProfit": "take_profit",
    "stopLoss": "stop_loss",
    "positionSize": "position_size",
    "idempotencyKey": "idempotency_key",
}
EXIT_FIELDS: Final = frozenset({"price", "percent", "amount", "type", "limit_price"})
EXIT_ALIASES: Final[Mapping[str, str]] = {"limitPrice": "limit_price"}
TEXT_BRACKETS: Final[Mapping[str, tuple[str, str]]] = {
    "take_profit": ("take_profit", "price"),
    "take_profit_price": ("take_profit", "price"),
    "take_profit_percent": ("take_profit", "percent"),
    "take_profit_amount": ("take_profit", "amount"),
    "stop_loss": ("stop_loss", "price"),
    "stop_loss_price": ("stop_loss", "price"),
    "stop_loss_percent": ("stop_loss", "percent"),
    "stop_loss_amount": ("stop_loss", "amount"),
    "stop_loss_type": ("stop_loss", "type"),
    "stop_loss_limit_price": ("stop_loss", "limit_price"),
}
TEXT_FORM: Final = "ACTION TICKER [QUANTITY] [key=value ...]"

_ACTIONS: Final = {
    **{action.value: action for action in Action},
    "long": Action.BUY,
    "short": Action.SELL,
}
_QUANTITY_TYPES: Final = {kind.value: kind for kind in QuantityType}
_ORDER_TYPES: Final = {kind.value: kind for kind in OrderType}
_TIMES_IN_FORCE: Final = {kind.value: kind for kind in TimeInForce}
_SENTIMENTS: Final = {kind.value: kind for kind in Sentiment}
_STOP_LOSS_TYPES: Final = {
    kind.value: kind for kind in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)
}
_PRICES_NEEDED: Final[Mapping[OrderType, tuple[str, ...]]] = {
    OrderType.MARKET: (),
    OrderType.LIMIT: ("limit_price",),
    OrderType.STOP: ("stop_price",),
    OrderType.STOP_LIMIT: ("limit_price", "stop_price"),
    OrderType.TRAILING_STOP: ("trail_percent",),
}
_EXIT_KINDS: Final = ("price", "percent", "amount")
_HUNDRED: Final = Decimal(100)
_NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_PLACEHOLDER: Final = re.compile(r"\{\{[^{}\x00-\x1f]{1,60}\}\}")
_TEXT_SEPARATORS: Final = re.compile(r"[\s,]+")
_TEXT_POSITIONS: Final = ("action", "ticker", "quantity")


@dataclass(frozen=True)
class AlertReading:
    """One alert body as read: its intent or why it is refused, and the body as it may be kept."""

    stored_body: str  # every secret the message holds replaced (see redaction.py)
    intent: AlertIntent | None = None
    rejection: AlertRejected | None = None

    def accepted(self) -> AlertIntent:
        """Return the intent, or raise why the alert is refused."""
        if self.intent is None:
            raise self.rejection or AlertRejected([])
        return self.intent


def parse_alert(body: bytes, content_type: str | None) -> AlertIntent:
    """Parse a TradingView alert body (JSON or one line of text) into an AlertIntent."""
    return read_alert(body, content_type).accepted()


def read_alert(body: bytes, content_type: str | None) -> AlertReading:
    """Read an alert body in PineLab's form or a dialect's; never raises for bad input."""
    try:
        text = _decode(body)
    except AlertRejected as rejection:
        raw = body.decode("utf-8", errors="replace")
        return AlertReading(
            redact_json(raw) if raw.lstrip()[:1] == "{" else redact_text(raw), rejection=rejection
        )
    if text[0] in "{[" and not text.startswith("{{"):
        return _read_json(text, _load_json)
    if content_type is not None and "json" in content_type.lower():
        try:
            data = _load_json(text)
        except AlertRejected:
            return _read_text(text)
        return _read_json(text, lambda _: data)
    return _read_text(text)


def _read_json(text: str, load: Callable[[str], Any]) -> AlertReading:
    try:
        data = _json_object(load(text))
    except AlertRejected as rejection:
        return AlertReading(redact_json(text), rejection=rejection)
    dialect = next((each for each in JSON_DIALECTS if each.claims(data)), None)
    if dialect is None:
        return _outcome(redact_json(text), lambda: _intent_from_json(data))
    try:
        translation = dialect.translate(data)
    except AlertRejected as rejection:
        secrets: frozenset[str] = getattr(dialect, "secret_keys", frozenset())
        return AlertReading(redact_json(text, secrets), rejection=_as_read_by(dialect, rejection))
    stored = redact_json(text, translation.secrets)
    return _outcome(stored, lambda: _intent_from_translation(dialect, translation))


def _read_text(text: str) -> AlertReading:
    dialect = next((each for each in TEXT_DIALECTS if each.claims(text)), None)
    if dialect is None:
        return _outcome(redact_text(text), lambda: _intent_from_text(text))
    try:
        translation = dialect.translate(text)
    except AlertRejected as rejection:
        stored = redact_text(text, rejection.secrets)
        return AlertReading(stored, rejection=_as_read_by(dialect, rejection))
    stored = redact_text(text, translation.secrets)
    return _outcome(stored, lambda: _intent_from_translation(dialect, translation))


def _outcome(stored: str, read: Callable[[], AlertIntent]) -> AlertReading:
    try:
        return AlertReading(stored, intent=read())
    except AlertRejected as rejection:
        return AlertReading(stored, rejection=rejection)


def _intent_from_translation(
    dialect: JsonDialect | TextDialect, translation: Translation
) -> AlertIntent:
    try:
        return _intent_from_mapping(translation.fields, dialect=translation.dialect)
    except AlertRejected as rejection:
        raise _as_read_by(dialect, rejection, canonical=True) from None


def _as_read_by(
    dialect: JsonDialect | TextDialect, rejection: AlertRejected, *, canonical: bool = False
) -> AlertRejected:
    """Name the dialect in each problem, and, for problems found in the canonical fields it
    translated to, the service's own field where it differs."""
    sources: Mapping[str, str] = getattr(dialect, "sources", {}) if canonical else {}
    details = []
    for detail in rejection.details:
        head, dot, rest = detail.field.partition(".")
        field = sources.get(head, head) + dot + rest
        message = detail.message
        if dialect.name not in message:
            message = f"{message} (read in the {dialect.name} format)"
        details.append(ErrorDetail(field=field, message=message, type=detail.type))
    return AlertRejected(details)


def _intent_from_json(data: dict[str, Any]) -> AlertIntent:
    try:
        return _intent_from_mapping(data)
    except AlertRejected as rejection:
        if "ticker" in data or "action" in data:
            raise
        known = ", ".join(dialect.name for dialect in JSON_DIALECTS)
        hint = ErrorDetail(
            "body",
            f"is neither PineLab's alert (ticker, action, ...) nor one of the formats PineLab "
            f"reads ({known})",
            "unknown_format",
        )
        raise AlertRejected([*rejection.details, hint]) from None


def _intent_from_text(text: str) -> AlertIntent:
    errors: list[ErrorDetail] = []
    data = _mapping_from_text(text, errors)
    try:
        return _intent_from_mapping(data, errors=errors)
    except AlertRejected as rejection:
        form = ErrorDetail(
            "body",
            f"a text alert is {TEXT_FORM}, e.g. 'buy AAPL 10' or "
            "'sell,BTCUSDT,0.01,order_type=limit,limit_price=65000'",
            "expected_form",
        )
        raise AlertRejected([*rejection.details, form]) from None


class _JsonConstant:
    """`NaN` or `Infinity` as written in a JSON body, kept so the reader can name its field."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _reject(field: str, message: str, kind: str = "value_error") -> AlertRejected:
    return AlertRejected([ErrorDetail(field=field, message=message, type=kind)])


def _decode(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _reject("body", f"is not valid UTF-8 (bad byte at position {exc.start})") from None
    text = text.strip().lstrip("\ufeff").strip()
    if not text:
        raise _reject("body", "is empty", "missing")
    return text


def _load_json(text: str) -> Any:
    if "." in text:
        # Most likely a price with decimals, which orjson would read as a double: read it once,
        # exactly, rather than twice.
        return _load_json_exactly(text, None)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return _load_json_exactly(text, str(exc))
    if isinstance(data, dict) and _has_float(data):
        return _load_json_exactly(text, None)
    return data


def _load_json_exactly(text: str, first_error: str | None) -> Any:
    # orjson reads numbers as doubles and refuses NaN; the stdlib keeps every digit and NaN.
    try:
        return _EXACT_JSON.decode(text)
    except (ValueError, RecursionError) as exc:
        reason = first_error or str(exc)
    found = _PLACEHOLDER.search(text)
    if found is not None:
        message = f"the TradingView placeholder {found.group()} was not filled in"
        raise _reject("body", f"is not valid JSON: {message} ({reason})", "placeholder")
    raise _reject("body", f"is not valid JSON: {reason}", "parse_error")


# Built once: json.loads with options builds a new decoder on every call.
_EXACT_JSON: Final = json.JSONDecoder(parse_float=Decimal, parse_constant=_JsonConstant)


def _has_float(data: dict[str, Any]) -> bool:
    for value in data.values():
        if type(value) is float:
            return True
        if type(value) is dict and any(type(item) is float for item in value.values()):
            return True
    return False


def _json_object(data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    got = "a string" if isinstance(data, str) else _describe(data)
    raise _reject("body", f"must be a JSON object, got {got}", "type_error")


def _mapping_from_text(text: str, errors: list[ErrorDetail]) -> dict[str, Any]:
    def fail(field: str, message: str) -> None:
        errors.append(ErrorDetail(field=field, message=message, type="value_error"))

    if "\n" in text or "\r" in text:
        fail("body", f"a text alert must be one line: {TEXT_FORM}")
        text = text.splitlines()[0]
    words = [word for word in _TEXT_SEPARATORS.split(text) if word]
    first_option = next((i for i, word in enumerate(words) if "=" in word), len(words))
    leading, options = words[:first_option], words[first_option:]
    for extra in leading[len(_TEXT_POSITIONS) :]:
        fail("body", f"expected {TEXT_FORM}, got the extra word {_quote(extra)}")
    data: dict[str, Any] = dict(zip(_TEXT_POSITIONS, leading, strict=False))
    for word in options:
        if "=" not in word:
            fail("body", f"expected key=value after the first option, got {_quote(word)}")
            continue
        key, _, value = word.partition("=")
        problem = _put_text_option(data, key, value)
        if problem is not None:
            fail(*problem)
    return data


def _put_text_option(data: dict[str, Any], key: str, value: str) -> tuple[str, str] | None:
    name = key if key in FIELDS else ALIASES.get(key)
    bracket = TEXT_BRACKETS.get(name or key)
    if bracket is not None:
        outer, inner = bracket
        target = data.setdefault(outer, {})
        if inner in target:
            return f"{outer}.{inner}", "is given twice"
        target[inner] = value
    elif name is None:
        return key or "body", f"{_quote(key)} is not a known field"
    elif key in data:
        return key, "is given twice"
    else:
        data[key] = value
    return None


def _intent_from_mapping(
    data: Mapping[str, Any],
    *,
    dialect: str | None = None,
    errors: list[ErrorDetail] | None = None,
) -> AlertIntent:
    reader = _Reader(data, FIELDS, ALIASES, errors=errors)
    ticker = reader.ticker()
    action = reader.choice("action", _ACTIONS, required=True)
    order_type = reader.choice("order_type", _ORDER_TYPES) or OrderType.MARKET
    reader.require(_PRICES_NEEDED[order_type], f"when order_type is {order_type.value}")
    quantity = reader.number("quantity")
    quantity_type = reader.choice("quantity_type", _QUANTITY_TYPES) or QuantityType.FIXED
    if quantity_type is QuantityType.PERCENT_OF_POSITION and quantity and quantity > _HUNDRED:
        reader.fail(
            reader.fields["quantity"][0],
            f"must be at most 100 (percent of the position), got {quantity}",
        )
    # "" and BUY stand in for a missing ticker or action: that is an error, raised below.
    intent = AlertIntent.of(
        {
            "ticker": ticker or "",
            "action": action or Action.BUY,
            "quantity": quantity,
            "quantity_type": quantity_type,
            "price": reader.number("price"),
            "order_type": order_type,
            "limit_price": reader.number("limit_price"),
            "stop_price": reader.number("stop_price"),
            "trail_percent": reader.number("trail_percent"),
            "time_in_force": reader.choice("time_in_force", _TIMES_IN_FORCE) or TimeInForce.DAY,
            "take_profit": reader.exit_target("take_profit"),
            "stop_loss": reader.exit_target("stop_loss"),
            "sentiment": reader.choice("sentiment", _SENTIMENTS),
            "position_size": reader.number("position_size", positive=False),
            "alert_id": reader.text("id", limit=MAX_ID_LENGTH, numbers=True) or None,
            "alert_time": reader.text("time", limit=MAX_ID_LENGTH, numbers=True) or None,
            "idempotency_key": reader.text("idempotency_key", limit=MAX_KEY_LENGTH, numbers=True)
            or None,
            "passphrase": reader.text("passphrase", limit=MAX_PASSPHRASE_LENGTH, secret=True),
            "dialect": dialect,
        }
    )
    if reader.errors or ticker is None or action is None:
        raise AlertRejected(reader.errors)
    return intent


class _Reader:
    """Read the known fields of one JSON object, collecting every problem instead of stopping."""

    def __init__(
        self,
        data: Mapping[str, Any],
        names: frozenset[str],
        aliases: Mapping[str, str],
        *,
        prefix: str = "",
        errors: list[ErrorDetail] | None = None,
    ) -> None:
        self.prefix = prefix
        self.errors: list[ErrorDetail] = [] if errors is None else errors
        self.fields: dict[str, tuple[str, Any]] = {}
        for key, value in data.items():
            name = key if key in names else aliases.get(key)
            if name is None or value is None:
                continue
            if name in self.fields:
                first = self.fields[name][0].removeprefix(prefix)
                self.fail(prefix + key, f"{name} is given twice, as {first!r} and {key!r}")
                continue
            self.fields[name] = (prefix + key if prefix else key, value)

    def fail(self, field: str, message: str, kind: str = "value_error") -> None:
        """Record one problem with a field."""
        self.errors.append(ErrorDetail(field=field, message=message, type=kind))

    def require(self, names: tuple[str, ...], condition: str) -> None:
        """Record each of the named fields that is missing."""
        for name in names:
            if name not in self.fields:
                self.fail(self.prefix + name, f"is required {condition}", "missing")

    def ticker(self) -> str | None:
        """Return the ticker in its canonical form (brokers/symbols.py); required, by grammar."""
        if "ticker" not in self.fields:
            self.fail("ticker", "is required", "missing")
            return None
        ticker = self.text("ticker", limit=MAX_TICKER_LENGTH)
        if ticker is None:
            return None
        problem = ticker_problem(ticker)
        if problem is not None:
            self.fail(self.fields["ticker"][0], problem)
            return None
        return canonical_ticker(ticker)

    def choice(
        self, name: str, options: Mapping[str, EnumT], *, required: bool = False
    ) -> EnumT | None:
        """Return the option a choice field names, case-insensitive and trimmed."""
        entry = self.fields.get(name)
        if entry is None:
            if required:
                self.fail(self.prefix + name, "is required", "missing")
            return None
        field, value = entry
        if not isinstance(value, str):
            self.fail(field, f"must be a string, got {_describe(value)}", "type_error")
            return None
        if "{{" in value:
            self._placeholder(field, value)
            return None
        chosen = options.get(value.strip().lower())
        if chosen is None:
            self.fail(field, f"must be one of {', '.join(options)}, got {_quote(value)}")
        return chosen

    def text(
        self, name: str, *, limit: int, numbers: bool = False, secret: bool = False
    ) -> str | None:
        """Return a string field, trimmed unless secret; numbers become strings if allowed."""
        entry = self.fields.get(name)
        if entry is None:
            return None
        field, value = entry
        if numbers and isinstance(value, int | Decimal) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.fail(field, f"must be a string, got {_describe(value, secret)}", "type_error")
            return None
        if "{{" in value:
            self._placeholder(field, value, secret=secret)
            return None
        value = value if secret else value.strip()
        if not value.isprintable():
            self.fail(field, "must not contain control or invalid characters")
        elif len(value) > limit:
            self.fail(field, f"must be at most {limit} characters long, got {len(value)}")
        else:
            return value
        return None

    def number(self, name: str, *, positive: bool = True) -> Decimal | None:
        """Return a numeric field as an exact Decimal."""
        entry = self.fields.get(name)
        return None if entry is None else self.decimal(entry[0], entry[1], positive=positive)

    def decimal(self, field: str, value: Any, *, positive: bool) -> Decimal | None:
        """Return a JSON number or numeric string as a Decimal in the range the books store."""
        if isinstance(value, str):
            result = self._decimal_from_string(field, value)
        elif isinstance(value, int | Decimal) and not isinstance(value, bool):
            result = Decimal(value)
        elif isinstance(value, float):
            result = Decimal(repr(value))
        else:
            kind = "value_error" if isinstance(value, _JsonConstant) else "type_error"
            self.fail(field, f"must be a number, got {_describe(value)}", kind)
            return None
        return None if result is None else self._in_range(field, result, positive=positive)

    def exit_target(self, name: str) -> ExitTarget | None:
        """Return a take-profit or stop-loss given as an object or as a bare price."""
        entry = self.fields.get(name)
        if entry is None:
            return None
        field, value = entry
        if isinstance(value, dict):
            return self._exit_object(name, field, value)
        if isinstance(value, str | int | float | Decimal) and not isinstance(value, bool):
            price = self.decimal(field, value, positive=True)
            return None if price is None else ExitTarget(price=price)
        example = '{"price": 200}, {"percent": 2} or {"amount": 5}'
        self.fail(field, f"must be {example} or a price, got {_describe(value)}", "type_error")
        return None

    def _exit_object(self, name: str, field: str, data: dict[str, Any]) -> ExitTarget | None:
        before = len(self.errors)
        inner = _Reader(data, EXIT_FIELDS, EXIT_ALIASES, prefix=f"{field}.", errors=self.errors)
        price, percent, amount = (inner.number(kind) for kind in _EXIT_KINDS)
        given = [kind for kind in _EXIT_KINDS if kind in inner.fields]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            self.fail(field, f"must give exactly one of price, percent or amount, got {got}")
        order_type, limit_price = inner.stop_type(name, given)
        if len(self.errors) > before:
            return None
        return ExitTarget(
            price=price,
            percent=percent,
            amount=amount,
            order_type=order_type,
            limit_price=limit_price,
        )

    def stop_type(self, name: str, given: Sequence[str]) -> tuple[OrderType, Decimal | None]:
        """Return the order type and limit price of a stop-loss bracket."""
        if name != "stop_loss" and "type" in self.fields:
            self.fail(self.fields["type"][0], "is allowed only in stop_loss")
        order_type = OrderType.STOP
        if name == "stop_loss":
            order_type = self.choice("type", _STOP_LOSS_TYPES) or OrderType.STOP
        if order_type is OrderType.STOP_LIMIT:
            self.require(("limit_price",), "when type is stop_limit")
        if order_type is OrderType.TRAILING_STOP:
            # A trailing stop trails by a percent: no broker adapter here trails by an amount.
            for kind in ("price", "amount"):
                if kind in given:
                    self.fail(self.fields[kind][0], "a trailing_stop takes a percent")
        return order_type, self.number("limit_price")

    def _decimal_from_string(self, field: str, value: str) -> Decimal | None:
        if "{{" in value:
            self._placeholder(field, value)
            return None
        stripped = value.strip()
        if _NUMBER.fullmatch(stripped) is not None:
            try:
                return Decimal(stripped)
            except InvalidOperation:
                pass
        self.fail(field, f"must be a number, got {_quote(value)}")
        return None

    def _in_range(self, field: str, value: Decimal, *, positive: bool) -> Decimal | None:
        if not value.is_finite():
            self.fail(field, f"must be a finite number, got {value}")
        elif positive and value <= 0:
            self.fail(field, f"must be greater than 0, got {value}")
        elif value and value.adjusted() >= MAX_INTEGER_DIGITS:
            self.fail(field, f"must be below 1e{MAX_INTEGER_DIGITS}, got {value:.3e}")
        elif _too_many_decimal_places(value):
            self.fail(field, f"must have at most {MAX_DECIMAL_PLACES} decimal places")
        else:
            return value
        return None

    def _placeholder(self, field: str, value: str, *, secret: bool = False) -> None:
        found = None if secret else _PLACEHOLDER.search(value)
        shown = found.group() if found is not None else "{{...}}"
        self.fail(field, f"the TradingView placeholder {shown} was not filled in", "placeholder")


def _too_many_decimal_places(value: Decimal) -> bool:
    text = str(value)
    point = text.find(".")
    if "E" not in text and (point < 0 or len(text) - point - 1 <= MAX_DECIMAL_PLACES):
        return False  # positional, with few digits after the point: the common case, cheaply
    _, digits, raw_exponent = value.as_tuple()
    exponent = int(raw_exponent)
    if exponent >= -MAX_DECIMAL_PLACES or not value:
        return False
    significant = "".join(map(str, digits)).rstrip("0")
    return len(digits) - len(significant) + exponent < -MAX_DECIMAL_PLACES


def _describe(value: Any, secret: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, _JsonConstant):
        return value.literal
    if value is None:
        return "null"
    if secret:
        return "a number"
    return _quote(value) if isinstance(value, str) else str(value)


def _quote(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
