"""TradersPost's webhook message, field by field of its reference (docs.traderspost.io, "Webhooks").

Most of it is PineLab's own camelCase form; what differs is translated here: `quantityType`'s
words, `bullish`/`bearish`, `takeProfit.limitPrice`, the `stopLoss` fields (`stopPrice`,
`limitPrice`, `trailPercent`), an order type implied by the prices given, and the exit rules
(`sentiment: flat` always exits the whole position; a buy or sell without a quantity against
an open position exits all of it, which the sizing rules do for every alert). What PineLab
cannot do is refused by name: `trailAmount`, `timeInForce` `gtd`/`opg`/`cls` (by the canonical
reader), `extendedHours: true`, options contracts, a limit or stop order without its price.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pinelab.signals.dialects.base import Translation
from pinelab.signals.dialects.mapping import Problems, put, word

NAME: Final = "TradersPost"

QUANTITY_TYPES: Final[Mapping[str, str]] = {
    "fixed_quantity": "fixed",
    "dollar_amount": "notional",
    "risk_dollar_amount": "risk_amount",
    "percent_of_equity": "percent_of_equity",
    "percent_of_position": "percent_of_position",
}
SENTIMENTS: Final[Mapping[str, str]] = {
    "bullish": "long",
    "long": "long",
    "bearish": "short",
    "short": "short",
    "flat": "flat",
}
OPTION_FIELDS: Final = (
    "optionType",
    "intrinsicValue",
    "expiration",
    "strikeCount",
    "strikesAway",
    "strikePrice",
)
# Fields copied as they are: the canonical reader knows them under these names.
_COPIED: Final = (
    ("ticker", "ticker"),
    ("action", "action"),
    ("quantity", "quantity"),
    ("price", "price"),
    ("signalPrice", "price"),
    ("orderType", "order_type"),
    ("limitPrice", "limit_price"),
    ("stopPrice", "stop_price"),
    ("trailPercent", "trail_percent"),
    ("timeInForce", "time_in_force"),
    ("id", "id"),
    ("time", "time"),
    ("passphrase", "passphrase"),
)
_TAKE_PROFIT: Final = (
    ("limitPrice", "price"),
    ("price", "price"),
    ("percent", "percent"),
    ("amount", "amount"),
)
_STOP_LOSS: Final = (
    ("type", "type"),
    ("stopPrice", "price"),
    ("percent", "percent"),
    ("amount", "amount"),
    ("limitPrice", "limit_price"),
    ("trailPercent", "percent"),
)
_OWN_QUANTITY_TYPES: Final = frozenset({"fixed_quantity", "dollar_amount", "risk_dollar_amount"})
_OWN_STOP_KEYS: Final = frozenset({"stopPrice", "trailPercent", "trailAmount"})
_OWN_KEYS: Final = frozenset({"trailAmount", "extendedHours", *OPTION_FIELDS})
_HANDLED: Final = frozenset(
    {source for source, _ in _COPIED}
    | {"sentiment", "quantityType", "takeProfit", "stopLoss", *_OWN_KEYS}
)
_NO_TRAIL_AMOUNT: Final = "a trailing stop by a money amount is not supported; send trailPercent"


class TradersPost:
    """TradersPost's JSON signal."""

    name = NAME
    sources: Final[Mapping[str, str]] = {
        "quantity_type": "quantityType",
        "order_type": "orderType",
        "limit_price": "limitPrice",
        "stop_price": "stopPrice",
        "trail_percent": "trailPercent",
        "time_in_force": "timeInForce",
        "take_profit": "takeProfit",
        "stop_loss": "stopLoss",
    }

    def claims(self, data: Mapping[str, Any]) -> bool:
        """Claim a message that uses a word or a field only TradersPost's reference has."""
        if _OWN_KEYS & data.keys():
            return True
        if word(data.get("quantityType")) in _OWN_QUANTITY_TYPES:
            return True
        if word(data.get("sentiment")) in ("bullish", "bearish"):
            return True
        take_profit, stop_loss = data.get("takeProfit"), data.get("stopLoss")
        return (isinstance(take_profit, dict) and "limitPrice" in take_profit) or (
            isinstance(stop_loss, dict) and bool(_OWN_STOP_KEYS & stop_loss.keys())
        )

    def translate(self, data: Mapping[str, Any]) -> Translation:
        """Return the canonical fields of a TradersPost signal, or refuse what it cannot do."""
        problems = Problems(NAME)
        # Fields TradersPost does not define go on as sent, so that a PineLab field mixed in
        # (`position_size`, `order_type`) is read, not dropped.
        fields: dict[str, Any] = {k: v for k, v in data.items() if k not in _HANDLED}
        for source, target in _COPIED:
            if data.get(source) is not None:
                if target in fields:
                    problems.add(source, f"gives {target} a second time")
                fields[target] = data[source]
        _sentiment(data, fields, problems)
        if data.get("quantityType") is not None:
            fields["quantity_type"] = problems.choice(
                "quantityType", data["quantityType"], QUANTITY_TYPES
            )
        _order_type(data, fields, problems)
        put(fields, "take_profit", _bracket(data, "takeProfit", _TAKE_PROFIT, problems))
        put(fields, "stop_loss", _bracket(data, "stopLoss", _STOP_LOSS, problems))
        if data.get("extendedHours") is True:
            problems.unsupported("extendedHours", "PineLab sends regular-hours orders only")
        problems.refuse_present(data, OPTION_FIELDS, "PineLab does not trade options contracts")
        problems.raise_any()
        return Translation(dialect=NAME, fields=fields)


def _sentiment(data: Mapping[str, Any], fields: dict[str, Any], problems: Problems) -> None:
    if data.get("sentiment") is None:
        return
    sentiment = problems.choice("sentiment", data["sentiment"], SENTIMENTS)
    if word(data.get("action")) not in (None, "buy", "sell"):
        problems.add("sentiment", "can only be sent with action buy or sell")
    fields["sentiment"] = sentiment
    if sentiment == "flat":
        # "When you send sentiment=flat, it will always exit the full quantity."
        fields.pop("quantity", None)
        fields.pop("quantity_type", None)


def _order_type(data: Mapping[str, Any], fields: dict[str, Any], problems: Problems) -> None:
    if data.get("trailAmount") is not None:
        problems.unsupported("trailAmount", _NO_TRAIL_AMOUNT)
    if "order_type" not in fields:
        # The prices sent say which order is meant; a price must not be dropped silently.
        limit, stop = "limit_price" in fields, "stop_price" in fields
        implied = {(True, True): "stop_limit", (True, False): "limit", (False, True): "stop"}
        if (limit, stop) in implied:
            fields["order_type"] = implied[(limit, stop)]
        elif "trail_percent" in fields:
            fields["order_type"] = "trailing_stop"
        return
    if word(fields["order_type"]) == "limit" and "limit_price" not in fields:
        if "price" not in fields:
            problems.missing("limitPrice", "PineLab does not fetch a quote to price the order")
        else:
            fields["limit_price"] = fields["price"]


def _bracket(
    data: Mapping[str, Any], name: str, names: tuple[tuple[str, str], ...], problems: Problems
) -> Any:
    value = data.get(name)
    if not isinstance(value, dict):
        return value  # a bare price, or a wrong type the canonical reader names
    bracket: dict[str, Any] = {}
    given: dict[str, str] = {}
    for source, target in names:
        if value.get(source) is None:
            continue
        if target in given:
            problems.add(f"{name}.{source}", f"cannot be sent with {name}.{given[target]}")
        given[target] = source
        bracket[target] = value[source]
    if value.get("trailAmount") is not None:
        problems.unsupported(f"{name}.trailAmount", _NO_TRAIL_AMOUNT)
    if value.get("trailPercent") is not None:
        bracket.setdefault("type", "trailing_stop")
    return bracket


TRADERSPOST: Final = TradersPost()
