"""OKX signal bots' alert message (okx.com help, "Trading Signal Bot Alert Message 2.0
Specifications").

Both of its sections: A, for Pine strategies (`action` `{{strategy.order.action}}`,
`marketPosition`, `id`), and B, universal (`action` `ENTER_LONG`, `EXIT_LONG`, `ENTER_SHORT`,
`EXIT_SHORT`). `instrument` is the ticker; `timestamp` the time; `investmentType` + `amount`
size it (`base`: units; `percentage_position`: a share of the position, on exits). An exit
without an amount closes the whole position. `signalToken` is the bot's password: never
stored. Refused by name: the sizings PineLab cannot compute (`margin` and `contract` depend on
the bot's leverage and the contract's face value, `percentage_balance` and
`percentage_investment` on the bot's own balance) and `orderType: limit` (its price is an
offset from the order book, which PineLab does not read). `maxLag` is not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pinelab.signals.dialects.base import Translation
from pinelab.signals.dialects.mapping import Problems, put, secrets_in, word

NAME: Final = "OKX signal bot"

ACTIONS: Final[Mapping[str, tuple[str, str | None]]] = {
    "enter_long": ("buy", None),
    "enter_short": ("sell", None),
    "exit_long": ("sell", "flat"),
    "exit_short": ("buy", "flat"),
    "buy": ("buy", None),
    "sell": ("sell", None),
}
INVESTMENT_TYPES: Final[Mapping[str, str]] = {
    "base": "fixed",
    "percentage_position": "percent_of_position",
}
_NOT_COMPUTED: Final[Mapping[str, str]] = {
    "margin": "it sizes by margin times the bot's leverage",
    "contract": "it counts contracts of the exchange's face value",
    "percentage_balance": "it sizes from the bot's available balance",
    "percentage_investment": "it sizes from the bot's own investment",
}
SECRETS: Final = ("signalToken",)


class Okx:
    """An OKX signal bot's alert message, section A or B."""

    name = NAME
    secret_keys: Final = frozenset(SECRETS)
    sources: Final[Mapping[str, str]] = {
        "ticker": "instrument",
        "quantity": "amount",
        "quantity_type": "investmentType",
        "time": "timestamp",
        "sentiment": "marketPosition",
    }

    def claims(self, data: Mapping[str, Any]) -> bool:
        """Claim a message with OKX's token, or its instrument and no PineLab ticker."""
        return "signalToken" in data or ("instrument" in data and "ticker" not in data)

    def translate(self, data: Mapping[str, Any]) -> Translation:
        """Return the canonical fields of an OKX signal, or refuse what it cannot do."""
        problems = Problems(NAME)
        fields: dict[str, Any] = {}
        if data.get("instrument") is None:
            problems.missing("instrument", "the ticker, {{ticker}} or an OKX instId")
        put(fields, "ticker", data.get("instrument"))
        if data.get("action") is None:
            problems.missing("action", ", ".join(name.upper() for name in ACTIONS))
        else:
            chosen = problems.choice("action", data["action"], ACTIONS)
            if chosen is not None:
                fields["action"], sentiment = chosen
                put(fields, "sentiment", sentiment or data.get("marketPosition"))
        put(fields, "id", data.get("id"))
        put(fields, "time", data.get("timestamp"))
        put(fields, "passphrase", data.get("passphrase"))
        _amount(data, fields, problems)
        if word(data.get("orderType")) not in (None, "market"):
            problems.unsupported(
                "orderType",
                "a limit priced by orderPriceOffset needs the "
                "order book, which PineLab does not read; use market",
            )
        problems.refuse_foreign(data, ("action", "orderType"))
        problems.raise_any()
        return Translation(dialect=NAME, fields=fields, secrets=secrets_in(data, SECRETS))


def _amount(data: Mapping[str, Any], fields: dict[str, Any], problems: Problems) -> None:
    kind = word(data.get("investmentType")) or ""
    if kind in _NOT_COMPUTED:
        problems.unsupported(
            "investmentType",
            f"{_NOT_COMPUTED[kind]}, which PineLab does not know; use base or "
            "percentage_position, or leave the amount out for the strategy's sizing rule",
        )
        return
    if data.get("amount") in (None, ""):
        return
    if not kind:
        problems.missing("investmentType", "base or percentage_position, to read the amount")
        return
    fields["quantity"] = data["amount"]
    fields["quantity_type"] = problems.choice("investmentType", kind, INVESTMENT_TYPES)


OKX: Final = Okx()
