"""3Commas signal bots' JSON (help.3commas.io, "Signal bot: JSON file in Custom signal type" and
"Signal bot: JSON file for Strategy type").

`tv_instrument` is the ticker, `action` is `enter_long`/`exit_long`/`enter_short`/`exit_short`
(custom signal) or `{{strategy.order.action}}` with `strategy_info.market_position` (strategy
type); `order` sizes it (`currency_type` `base`, `quote`, `position_percent`; `order_type` and
`price` for a limit entry); `trigger_price` is the signal price and `timestamp` the time. An
exit without `order` closes the whole position. `secret` is the bot's password: never stored.
Not honoured, and refused by name: `margin_percent` sizing, a take profit of several steps,
bot commands such as `disable`. `max_lag` and `bot_uuid` are not used (PineLab binds accounts
to the strategy and does not drop late alerts).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from pinelab.signals.dialects.base import Translation
from pinelab.signals.dialects.mapping import Problems, put, secrets_in, word

NAME: Final = "3Commas signal bot"

# (action, sentiment): an exit is a close-only order on the position's other side.
ACTIONS: Final[Mapping[str, tuple[str, str | None]]] = {
    "enter_long": ("buy", None),
    "enter_short": ("sell", None),
    "exit_long": ("sell", "flat"),
    "exit_short": ("buy", "flat"),
    "buy": ("buy", None),
    "sell": ("sell", None),
}
CURRENCY_TYPES: Final[Mapping[str, str]] = {
    "base": "fixed",
    "quote": "notional",
    "position_percent": "percent_of_position",
}
ORDER_TYPES: Final[Mapping[str, str]] = {"market": "market", "limit": "limit"}
SECRETS: Final = ("secret",)


class ThreeCommas:
    """A 3Commas signal bot's custom-signal or strategy JSON."""

    name = NAME
    secret_keys: Final = frozenset(SECRETS)
    sources: Final[Mapping[str, str]] = {
        "ticker": "tv_instrument",
        "quantity": "order.amount",
        "quantity_type": "order.currency_type",
        "order_type": "order.order_type",
        "limit_price": "order.price",
        "price": "trigger_price",
        "time": "timestamp",
        "sentiment": "strategy_info.market_position",
    }

    def claims(self, data: Mapping[str, Any]) -> bool:
        """Claim a message with 3Commas' own keys."""
        return "tv_instrument" in data or "bot_uuid" in data

    def translate(self, data: Mapping[str, Any]) -> Translation:
        """Return the canonical fields of a 3Commas signal, or refuse what it cannot do."""
        problems = Problems(NAME)
        fields: dict[str, Any] = {}
        if data.get("tv_instrument") is None:
            problems.missing("tv_instrument", "the ticker, {{ticker}}")
        put(fields, "ticker", data.get("tv_instrument"))
        _action(data, fields, problems)
        put(fields, "price", data.get("trigger_price"))
        put(fields, "time", data.get("timestamp"))
        put(fields, "passphrase", data.get("passphrase"))
        _order(data.get("order"), fields, problems)
        put(fields, "take_profit", _take_profit(data.get("take_profit"), problems))
        put(fields, "stop_loss", _stop_loss(data.get("stop_loss"), problems))
        problems.refuse_foreign(data, ("action", "take_profit", "stop_loss"))
        problems.raise_any()
        return Translation(dialect=NAME, fields=fields, secrets=secrets_in(data, SECRETS))


def _action(data: Mapping[str, Any], fields: dict[str, Any], problems: Problems) -> None:
    if data.get("action") is None:
        problems.missing("action", ", ".join(ACTIONS))
        return
    if word(data["action"]) in ("disable", "enable", "start", "stop"):
        problems.unsupported(
            "action",
            "3Commas bot commands are not trades; enable or disable the PineLab strategy instead",
        )
        return
    chosen = problems.choice("action", data["action"], ACTIONS)
    if chosen is None:
        return
    fields["action"], sentiment = chosen
    info = data.get("strategy_info")
    if sentiment is None and isinstance(info, dict):
        sentiment = info.get("market_position")
    put(fields, "sentiment", sentiment)


def _order(order: Any, fields: dict[str, Any], problems: Problems) -> None:
    if order is None:
        return
    if not isinstance(order, dict):
        problems.add("order", "must be an object with amount and currency_type", "type_error")
        return
    if order.get("amount") is not None:
        fields["quantity"] = order["amount"]
        if word(order.get("currency_type")) == "margin_percent":
            problems.unsupported(
                "order.currency_type",
                "margin_percent sizes from the "
                "exchange's free margin, which PineLab does not compute; "
                "use base, quote or position_percent",
            )
        else:
            fields["quantity_type"] = problems.choice(
                "order.currency_type", order.get("currency_type"), CURRENCY_TYPES
            )
    if order.get("order_type") is not None:
        fields["order_type"] = problems.choice("order.order_type", order["order_type"], ORDER_TYPES)
    if fields.get("order_type") == "limit":
        if order.get("price") is None:
            problems.missing("order.price", "the limit price of a limit order")
        fields["limit_price"] = order.get("price")


def _take_profit(value: Any, problems: Problems) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("enabled") is False:
        return None
    steps = value.get("steps")
    if not isinstance(steps, list) or len(steps) != 1 or not isinstance(steps[0], dict):
        problems.unsupported("take_profit.steps", "PineLab places one take profit; send one step")
        return None
    step = steps[0]
    if step.get("volume_percent") not in (None, 100, "100"):
        problems.unsupported("take_profit.steps", "a take profit closes the whole position")
    if step.get("price_percent") is None:
        problems.missing("take_profit.steps.price_percent", "the distance from the entry in %")
        return None
    return {"percent": _magnitude(step["price_percent"])}


def _stop_loss(value: Any, problems: Problems) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("enabled") is False:
        return None
    if value.get("trigger_price_percent") is None:
        problems.missing("stop_loss.trigger_price_percent", "the distance from the entry in %")
        return None
    return {"percent": _magnitude(value["trigger_price_percent"])}


def _magnitude(value: Any) -> Any:
    # 3Commas writes a short's distances with a minus sign; PineLab's percent is a distance.
    if isinstance(value, str):
        return value.strip().removeprefix("-")
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return abs(value)
    return value


THREE_COMMAS: Final = ThreeCommas()
