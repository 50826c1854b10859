"""WunderTrading signal bots' JSON (help.wundertrading.com, "Signal bot: complete JSON guide").

`code` is the alert code the bot shows, `<COMMAND>_<EXCHANGE>_<PAIR>_<bot>_<timeframe>_<id>`:
`ENTER-LONG`, `ENTER-SHORT`, `EXIT-LONG`, `EXIT-SHORT` or `EXIT-ALL`, and the pair is the ticker.
The code is what authenticates the alert at WunderTrading, so it is a secret: never stored, and
never repeated in a refusal. `amountPerTradeType` + `amountPerTrade` size it (`quote` or `$`:
money; `base`: units). An exit closes the whole position. Refused by name: `percents` and
`contracts` sizing, `leverage` other than 1, `takeProfits`, `stopLoss`, `trailingStop`,
`moveToBreakeven` (their units differ from PineLab's: send `take_profit`/`stop_loss` instead),
a limit order without `price`, and a pair of `NONE` (a multi-pair bot's code).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pinelab.signals.dialects.base import Translation
from pinelab.signals.dialects.mapping import Problems, put, secrets_in, word

NAME: Final = "WunderTrading signal bot"

COMMANDS: Final[Mapping[str, tuple[str, str | None]]] = {
    "ENTER-LONG": ("buy", None),
    "ENTER-SHORT": ("sell", None),
    "EXIT-LONG": ("sell", "flat"),
    "EXIT-SHORT": ("buy", "flat"),
    "EXIT-ALL": ("exit", None),
}
AMOUNT_TYPES: Final[Mapping[str, str]] = {"quote": "notional", "$": "notional", "base": "fixed"}
ORDER_TYPES: Final[Mapping[str, str]] = {"market": "market", "limit": "limit"}
BRACKETS: Final = ("takeProfits", "stopLoss", "trailingStop", "moveToBreakeven")
SECRETS: Final = ("code",)


class WunderTrading:
    """A WunderTrading signal bot's JSON alert."""

    name = NAME
    secret_keys: Final = frozenset(SECRETS)
    sources: Final[Mapping[str, str]] = {
        "ticker": "code",
        "quantity": "amountPerTrade",
        "quantity_type": "amountPerTradeType",
        "order_type": "orderType",
        "limit_price": "price",
    }

    def claims(self, data: Mapping[str, Any]) -> bool:
        """Claim a message whose code starts with a WunderTrading command."""
        code = data.get("code")
        if isinstance(code, str) and code.strip().upper().startswith(("ENTER-", "EXIT-")):
            return True
        return "amountPerTradeType" in data

    def translate(self, data: Mapping[str, Any]) -> Translation:
        """Return the canonical fields of a WunderTrading alert, or refuse what it cannot do."""
        problems = Problems(NAME)
        fields: dict[str, Any] = {}
        _code(data.get("code"), fields, problems)
        _amount(data, fields, problems)
        if data.get("orderType") is not None:
            fields["order_type"] = problems.choice("orderType", data["orderType"], ORDER_TYPES)
        if fields.get("order_type") == "limit":
            if data.get("price") is None:
                problems.missing("price", "the limit price of a limit order")
            put(fields, "limit_price", data.get("price"))
        if data.get("leverage") not in (None, 1, "1"):
            problems.unsupported(
                "leverage", "PineLab does not set leverage; set it on the exchange account"
            )
        problems.refuse_present(data, BRACKETS, "send take_profit or stop_loss in PineLab's form")
        if data.get("reduceOnly") is True and fields.get("sentiment") != "flat":
            problems.unsupported("reduceOnly", "an entry cannot be reduce-only")
        put(fields, "id", data.get("id"))
        put(fields, "time", data.get("time"))
        put(fields, "passphrase", data.get("passphrase"))
        problems.refuse_foreign(data, ("orderType", "stopLoss"))
        problems.raise_any()
        return Translation(dialect=NAME, fields=fields, secrets=secrets_in(data, SECRETS))


def _code(code: Any, fields: dict[str, Any], problems: Problems) -> None:
    if not isinstance(code, str) or not code.strip():
        problems.missing("code", "the alert code your WunderTrading bot shows")
        return
    parts = code.strip().split("_")
    command = COMMANDS.get(parts[0].upper())
    if command is None:
        problems.add("code", f"must start with one of {', '.join(COMMANDS)}")
        return
    fields["action"], sentiment = command
    put(fields, "sentiment", sentiment)
    pair = parts[2].strip() if len(parts) > 2 else ""
    if not pair or pair.upper() == "NONE":
        problems.unsupported(
            "code", "it names no pair (a multi-pair bot's code); create the bot for one pair"
        )
        return
    fields["ticker"] = pair


def _amount(data: Mapping[str, Any], fields: dict[str, Any], problems: Problems) -> None:
    if data.get("amountPerTrade") in (None, ""):
        return
    kind = word(data.get("amountPerTradeType"))
    if kind in ("percents", "contracts"):
        problems.unsupported(
            "amountPerTradeType",
            f"{kind} sizing depends on the WunderTrading "
            "portfolio or contract size; use quote or base",
        )
        return
    fields["quantity"] = data["amountPerTrade"]
    fields["quantity_type"] = problems.choice("amountPerTradeType", kind, AMOUNT_TYPES)


WUNDERTRADING: Final = WunderTrading()
