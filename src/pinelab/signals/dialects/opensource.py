"""The JSON of the common open-source TradingView-to-exchange bots.

Two shapes. The flat one most bots read, `{"symbol": "BTCUSDT", "side": "buy", "qty": 0.01}`,
with `quantity`, `size` or `amount` for the size, `price`, `type`/`order_type` (`market`,
`limit`, `stop`), `stop_loss`/`sl` and `take_profit`/`tp` as prices, and `reduce_only` for a
close-only order. And the nested one of the widely copied tradingview-binance webhook bots:
`{"passphrase", "time", "exchange", "ticker", "bar": {...}, "strategy": {"order_action",
"order_contracts", "order_price", "order_id", "market_position", ...}}`. `leverage` above 1 is
refused (PineLab does not set leverage); other fields are ignored, as these bots ignore them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pinelab.signals.dialects.base import Translation
from pinelab.signals.dialects.mapping import Problems, put

NAME: Final = "open-source bot JSON"

SIDES: Final[Mapping[str, str]] = {
    "buy": "buy",
    "long": "buy",
    "sell": "sell",
    "short": "sell",
    "close": "exit",
    "exit": "exit",
    "flat": "exit",
}
ORDER_TYPES: Final[Mapping[str, str]] = {
    "market": "market",
    "limit": "limit",
    "stop": "stop",
    "stop_market": "stop",
    "stop_limit": "stop_limit",
}
_SYMBOLS: Final = ("symbol", "pair")
_SIZES: Final = ("qty", "quantity", "size", "amount")
_TYPES: Final = ("type", "order_type", "orderType")
_STOPS: Final = ("stop_loss", "sl", "stopLoss")
_TARGETS: Final = ("take_profit", "tp", "takeProfit")
_FLAT_READS: Final = (
    "quantity", "price", "order_type", "orderType", "limit_price", "stop_price",
    "stop_loss", "stopLoss", "take_profit", "takeProfit",
)  # fmt: skip
_STRATEGY: Final = (
    ("order_action", "action"),
    ("order_contracts", "quantity"),
    ("order_price", "price"),
    ("order_id", "id"),
    ("market_position", "sentiment"),
)


class OpenSourceBot:
    """The symbol/side/qty JSON of open-source bots, and the tradingview-binance bots' nesting."""

    name = NAME
    sources: Final[Mapping[str, str]] = {
        "ticker": "symbol",
        "quantity": "qty",
        "order_type": "type",
        "stop_loss": "stop_loss",
        "take_profit": "take_profit",
    }

    def claims(self, data: Mapping[str, Any]) -> bool:
        """Claim symbol/side JSON without PineLab's fields, or a nested strategy block."""
        strategy = data.get("strategy")
        if isinstance(strategy, dict) and "order_action" in strategy:
            return True
        has_symbol = any(name in data for name in _SYMBOLS)
        return has_symbol and "side" in data and "ticker" not in data and "action" not in data

    def translate(self, data: Mapping[str, Any]) -> Translation:
        """Return the canonical fields, or refuse what PineLab cannot do."""
        problems = Problems(NAME)
        strategy = data.get("strategy")
        if isinstance(strategy, dict) and "order_action" in strategy:
            fields = _nested(data, strategy)
            problems.refuse_foreign(data, ("ticker",))
        else:
            fields = _flat(data, problems)
            problems.refuse_foreign(data, _FLAT_READS)
        put(fields, "time", data.get("time"))
        put(fields, "passphrase", data.get("passphrase"))
        if data.get("leverage") not in (None, 1, "1"):
            problems.unsupported(
                "leverage", "PineLab does not set leverage; set it on the exchange account"
            )
        problems.raise_any()
        return Translation(dialect=NAME, fields=fields)


def _nested(data: Mapping[str, Any], strategy: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    put(fields, "ticker", data.get("ticker"))
    for source, target in _STRATEGY:
        put(fields, target, strategy.get(source))
    return fields


def _flat(data: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    put(fields, "ticker", _one(data, _SYMBOLS, problems))
    if data.get("side") is None:
        problems.missing("side", "buy or sell")
    else:
        put(fields, "action", problems.choice("side", data["side"], SIDES))
    put(fields, "quantity", _one(data, _SIZES, problems))
    put(fields, "price", data.get("price"))
    kind = _one(data, _TYPES, problems)
    if kind is not None:
        fields["order_type"] = problems.choice("type", kind, ORDER_TYPES)
    for name in ("limit_price", "stop_price", "id"):
        put(fields, name, data.get(name))
    if fields.get("order_type") in ("limit", "stop_limit") and "limit_price" not in fields:
        put(fields, "limit_price", data.get("price"))
    if fields.get("order_type") == "stop" and "stop_price" not in fields:
        put(fields, "stop_price", data.get("price"))
    put(fields, "stop_loss", _one(data, _STOPS, problems))
    put(fields, "take_profit", _one(data, _TARGETS, problems))
    if data.get("reduce_only") is True or data.get("reduceOnly") is True:
        fields["sentiment"] = "flat"
    return fields


def _one(data: Mapping[str, Any], names: tuple[str, ...], problems: Problems) -> Any:
    given = [name for name in names if data.get(name) is not None]
    if len(given) > 1:
        problems.add(given[1], f"gives the same thing as {given[0]}; send one")
    return data[given[0]] if given else None


OPEN_SOURCE_BOT: Final = OpenSourceBot()
