"""Altrady signal bots' webhook signals (support.altrady.com, "Webhook Signals: Open, Increase,
Reduce, Close or Reverse a Position").

`symbol` is Altrady's market code, `<EXCHANGE>_<QUOTE>_<BASE>` (`BINA_USDT_BTC` is `BTCUSDT`), or
a TradingView ticker; `side` is `long` or `short`; `action` is `open` (the default), `increase`
(PineLab's `add`), `close` (the whole position on that side) or `reverse` (close it and open the
strategy's size on the side given). `quote_amount` is money, `signal_price` the price,
`signal_id` the id. `api_key` and `api_secret` are the bot's credentials: never stored. Refused
by name: `reduce` (its amounts are Altrady settings), bot commands (`start_bot`, `stop_bot`, ...),
`test: true`, `leverage` above 1, and the `take_profits`, `stop_loss` and `dca_orders` blocks
(send `take_profit`/`stop_loss` in PineLab's form instead).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pinelab.signals.dialects.base import Translation
from pinelab.signals.dialects.mapping import Problems, put, secrets_in, word

NAME: Final = "Altrady signal bot"

SIDES: Final[Mapping[str, str]] = {"long": "buy", "short": "sell"}
CLOSING: Final[Mapping[str, str]] = {"long": "sell", "short": "buy"}
ACTIONS: Final = ("open", "increase", "close", "reverse")
BOT_COMMANDS: Final = frozenset({"start_bot", "start_and_open", "stop_bot", "stop_and_close"})
BLOCKS: Final = ("take_profit", "take_profits", "stop_loss", "dca_orders")
SECRETS: Final = ("api_key", "api_secret")
_OWN_KEYS: Final = ("api_key", "api_secret", "quote_amount", "signal_price", "signal_id")
_MARKET: Final = re.compile(r"[A-Z0-9]{2,8}_([A-Z0-9]+)_([A-Z0-9]+)", re.ASCII)


class Altrady:
    """An Altrady signal bot's webhook signal."""

    name = NAME
    secret_keys: Final = frozenset(SECRETS)
    sources: Final[Mapping[str, str]] = {
        "ticker": "symbol",
        "quantity": "quote_amount",
        "price": "signal_price",
        "id": "signal_id",
    }

    def claims(self, data: Mapping[str, Any]) -> bool:
        """Claim a message with a symbol and Altrady's credentials or its own fields."""
        return "symbol" in data and any(name in data for name in _OWN_KEYS)

    def translate(self, data: Mapping[str, Any]) -> Translation:
        """Return the canonical fields of an Altrady signal, or refuse what it cannot do."""
        problems = Problems(NAME)
        fields: dict[str, Any] = {}
        symbol = data.get("symbol")
        if symbol is None:
            problems.missing("symbol", "Altrady's market code, e.g. BINA_USDT_BTC, or {{ticker}}")
        elif isinstance(symbol, str) and (market := _MARKET.fullmatch(symbol.strip())):
            fields["ticker"] = market.group(2) + market.group(1)
        else:
            fields["ticker"] = symbol
        _action(data, fields, problems)
        if data.get("quote_amount") is not None:
            fields["quantity"] = data["quote_amount"]
            fields["quantity_type"] = "notional"
        put(fields, "price", data.get("signal_price"))
        put(fields, "id", data.get("signal_id"))
        put(fields, "passphrase", data.get("passphrase"))
        if data.get("test") is True:
            problems.unsupported("test", "a test signal places no order; use a paper account")
        if data.get("leverage") not in (None, 0, 1, "0", "1"):
            problems.unsupported(
                "leverage", "PineLab does not set leverage; set it on the exchange account"
            )
        problems.refuse_present(data, BLOCKS, "send take_profit or stop_loss in PineLab's form")
        problems.refuse_foreign(data, ("action", *BLOCKS))
        problems.raise_any()
        return Translation(dialect=NAME, fields=fields, secrets=secrets_in(data, SECRETS))


def _action(data: Mapping[str, Any], fields: dict[str, Any], problems: Problems) -> None:
    action = word(data.get("action")) or "open"
    if action in BOT_COMMANDS:
        problems.unsupported(
            "action",
            "Altrady bot commands are not trades; enable or disable the PineLab strategy instead",
        )
        return
    if action == "reduce":
        problems.unsupported(
            "action",
            "reduce takes its amount from Altrady's settings; send a "
            "sell or buy with a quantity or quantity_type percent_of_position",
        )
        return
    if action not in ACTIONS:
        problems.add("action", f"must be one of {', '.join(ACTIONS)}, got {action!r}")
        return
    if action == "increase":
        fields["action"] = "add"
        return
    side = word(data.get("side")) or ""
    if side not in SIDES:
        problems.missing("side", "long or short")
        return
    if action == "close":
        fields["action"], fields["sentiment"] = CLOSING[side], "flat"
    elif action == "reverse":
        if data.get("quote_amount") is not None:
            problems.unsupported(
                "quote_amount",
                "a reverse closes the whole position and opens the strategy's size; "
                "leave quote_amount out",
            )
        fields["action"], fields["sentiment"] = SIDES[side], side
    else:
        fields["action"] = SIDES[side]


ALTRADY: Final = Altrady()
