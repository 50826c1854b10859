"""PineConnector's comma syntax: ``LicenseID,Command,Symbol[,key=value...]``.

As PineConnector documents it (docs.pineconnector.com, "Syntax" and "Cheatsheet"): one
license id, one command and one symbol, in that order, separated by commas (spaces around them
allowed), then ``key=value`` parameters. The license id only identifies the PineConnector
customer: PineLab never needs it, treats it as a secret and never stores it.

PineConnector's EA decides what the numbers mean (its "Volume Type", "Target Type" and
"Pending Order Entry" settings), and the message does not say. PineLab reads them as the
settings under which the message alone is enough: ``risk=`` is the quantity ("Lots": the volume
opened is as indicated), ``sl=``/``tp=``/``price=`` are prices ("Price"). A stop-loss or
take-profit on the wrong side of the order's price is refused, naming this reading, since it is
what pips or percent read as prices look like. Without ``risk=`` the strategy's sizing rule
applies. What PineLab cannot do (breakeven and trailing in pips, spread and account filters,
closing every symbol, cancelling one side's pending orders, switching the EA) is refused with
the reason, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from pinelab.signals.dialects.base import Translation
from pinelab.signals.dialects.problems import Problems, quoted

NAME: Final = "PineConnector"
FORM: Final = (
    "LicenseID,Command,Symbol[,key=value...], e.g. LicenseID,buy,EURUSD,risk=1,sl=1.07,tp=1.09"
)

# command -> (action, order type)
_ENTRIES: Final[dict[str, tuple[str, str]]] = {
    **dict.fromkeys(("buy", "long", "bull", "bullish"), ("buy", "market")),
    **dict.fromkeys(("sell", "short", "bear", "bearish"), ("sell", "market")),
    "buylimit": ("buy", "limit"),
    "selllimit": ("sell", "limit"),
    "buystop": ("buy", "stop"),
    "sellstop": ("sell", "stop"),
}
_CLOSES: Final = frozenset({"closelong", "closeshort", "closelongshort"})
# close one side, then open a new position of risk= on that side: a target position
_REOPENS: Final[dict[str, str]] = {"closelongbuy": "buy", "closeshortsell": "sell"}
_REFUSED_COMMANDS: Final[dict[str, str]] = {
    "closeall": "closes the positions and orders of every symbol; a PineLab alert acts on one "
    "ticker (send closelongshort for each symbol)",
    "closealleaoff": "closes every symbol and halts the EA; a PineLab alert acts on one ticker, "
    "and a strategy is halted by disabling it",
    "cancellong": "cancels only the pending buy orders; PineLab's cancel would cancel all the "
    "strategy's open orders in the ticker, stop-losses included",
    "cancelshort": "cancels only the pending sell orders; PineLab's cancel would cancel all the "
    "strategy's open orders in the ticker, stop-losses included",
    "newsltplong": "moves the stop-loss and take-profit of open positions, which PineLab cannot do",
    "newsltpshort": "moves the stop-loss and take-profit of open positions, which PineLab cannot "
    "do",
    "eaon": "switches PineConnector's EA on; in PineLab, enable the strategy instead",
    "eaoff": "halts PineConnector's EA; in PineLab, disable the strategy instead",
}
COMMANDS: Final = frozenset(_ENTRIES) | _CLOSES | frozenset(_REOPENS) | frozenset(_REFUSED_COMMANDS)

_TRAILING: Final = (
    "trails the stop-loss by pips, which needs the symbol's pip size; PineLab does not"
)
_REFUSED_PARAMETERS: Final[dict[str, str]] = {
    "betrigger": "moves the stop-loss to breakeven after a gain in pips, which PineLab does not do",
    "beoffset": "moves the stop-loss to breakeven after a gain in pips, which PineLab does not do",
    "trailtrig": _TRAILING,
    "traildist": _TRAILING,
    "trailstep": _TRAILING,
    **dict.fromkeys(
        ("atrtimeframe", "atrtrigger", "atrperiod", "atrmultiplier", "atrshift"),
        "trails the stop-loss by the ATR, which PineLab does not compute",
    ),
    "spread": "skips the trade when the spread is wider; PineLab cannot check the spread, so it "
    "would trade when PineConnector would not",
    "accfilter": "skips the trade below an account balance or equity; PineLab does not apply this "
    "filter, so it would trade when PineConnector would not",
}
_PRICE_READING: Final = "PineLab reads sl=, tp= and price= as prices (the EA's Target Type Price)"
_LICENSE_ID: Final = re.compile(r"\d{6,}")  # "a long value that usually starts with a 6 or 7"
_CANONICAL_ACTIONS: Final = frozenset({"buy", "sell", "exit", "cancel", "add", "long", "short"})


class PineConnector:
    """The PineConnector dialect (the parser uses the instance PINECONNECTOR)."""

    name = NAME
    # the canonical fields a rejection names, as this service calls them
    sources: Final[Mapping[str, str]] = {
        "ticker": "symbol",
        "quantity": "risk",
        "position_size": "risk",
        "limit_price": "price",
        "stop_price": "price",
        "stop_loss": "sl",
        "take_profit": "tp",
    }

    def claims(self, text: str) -> bool:
        """Whether the second comma-separated field is a PineConnector command, or the first
        a license id (a long number) even if the command is misspelt."""
        fields = _split(text, limit=3)
        if len(fields) < 2:
            return False
        first = fields[0].strip()
        if _LICENSE_ID.fullmatch(first):
            return True
        return (
            fields[1].strip().lower() in COMMANDS
            and "=" not in first
            and first.lower() not in _CANONICAL_ACTIONS
        )

    def translate(self, text: str) -> Translation:
        """Return the canonical fields, or DialectRejected naming every problem."""
        problems = Problems(NAME, FORM)
        lines = [line for line in text.splitlines() if line.strip()] or [""]
        if len(lines) > 1:
            problems.secrets.update(filter(None, (_split(line)[0].strip() for line in lines)))
            problems.add("body", f"has {len(lines)} lines; PineLab takes one message per alert")
        fields = [field.strip() for field in _split(lines[0])]
        fields += [""] * (3 - len(fields))
        license_id, command = fields[0], fields[1].lower()
        if license_id:
            problems.secrets.add(license_id)
        else:
            problems.missing("license_id", "the license id (the first field) is empty")
        has_symbol = "=" not in fields[2]
        symbol = fields[2] if has_symbol else ""
        options = _options([word for word in fields[3 if has_symbol else 2 :] if word], problems)
        if command not in COMMANDS:
            problems.add("command", f"{quoted(fields[1])} is not a PineConnector command")
        elif command in _REFUSED_COMMANDS:
            problems.unsupported("command", f"{command} {_REFUSED_COMMANDS[command]}")
        elif not symbol:
            problems.missing("symbol", f"{command} needs a symbol (the third field)")
        canonical = _translate(command, symbol, options, problems)
        problems.raise_if_any()
        return Translation(dialect=NAME, fields=canonical, secrets=frozenset(problems.secrets))


def _split(text: str, limit: int | None = None) -> list[str]:
    """Split on the commas outside double quotes (a comment="a, b" stays one field)."""
    fields: list[str] = []
    start, quoted_run = 0, False
    for index, char in enumerate(text):
        if char == '"':
            quoted_run = not quoted_run
        elif char == "," and not quoted_run:
            fields.append(text[start:index])
            start = index + 1
            if limit is not None and len(fields) >= limit:
                return fields
    fields.append(text[start:])
    return fields


def _options(words: list[str], problems: Problems) -> dict[str, str]:
    options: dict[str, str] = {}
    for word in words:
        key, equals, value = word.partition("=")
        key = key.strip().lower()
        if not equals or not key:
            problems.add("body", f"expected key=value after the symbol, got {quoted(word)}")
        elif key in options:
            problems.add(key, "is given twice")
        else:
            options[key] = value.strip()
    return options


def _translate(
    command: str, symbol: str, options: dict[str, str], problems: Problems
) -> dict[str, Any]:
    for key in sorted(options.keys() & _REFUSED_PARAMETERS.keys()):
        problems.unsupported(key, f"{key}= {_REFUSED_PARAMETERS[key]}")
    unknown = options.keys() - _REFUSED_PARAMETERS.keys() - {"risk", "sl", "tp", "price", "comment"}
    for key in sorted(unknown):
        problems.add(key, f"{key}= is not a PineConnector parameter PineLab knows")
    if command in _CLOSES:
        for key in sorted(options.keys() & {"risk", "sl", "tp", "price"}):
            problems.add(key, f"{command} takes no {key}=: PineLab closes the whole position")
        return {"ticker": symbol, "action": "exit"}
    if command in _REOPENS:
        return _reopen(command, symbol, options, problems)
    if command in _ENTRIES:
        return _entry(command, symbol, options, problems)
    return {}


def _reopen(
    command: str, symbol: str, options: dict[str, str], problems: Problems
) -> dict[str, Any]:
    action = _REOPENS[command]
    for key in sorted(options.keys() & {"sl", "tp", "price"}):
        problems.add(key, f"{command} takes no {key}= in PineLab (it orders a target position)")
    risk = options.get("risk")
    if risk is None:
        problems.missing("risk", f"{command} needs risk=, the size of the new position")
        return {}
    size = problems.number("risk", risk)
    if size is None:
        return {}
    target = size if action == "buy" else f"-{size}"
    return {"ticker": symbol, "action": action, "position_size": target}


def _entry(
    command: str, symbol: str, options: dict[str, str], problems: Problems
) -> dict[str, Any]:
    action, order_type = _ENTRIES[command]
    fields: dict[str, Any] = {"ticker": symbol, "action": action, "order_type": order_type}
    if "risk" in options:
        fields["quantity"] = problems.number("risk", options["risk"])
    price = _pending_price(command, order_type, options, problems)
    if price is not None:
        fields["limit_price" if order_type == "limit" else "stop_price"] = price
    stop_loss = problems.number("sl", options["sl"]) if "sl" in options else None
    take_profit = problems.number("tp", options["tp"]) if "tp" in options else None
    if stop_loss is not None:
        fields["stop_loss"] = {"price": stop_loss}
    if take_profit is not None:
        fields["take_profit"] = {"price": take_profit}
    _check_sides(action, price, stop_loss, take_profit, problems)
    return fields


def _pending_price(
    command: str, order_type: str, options: dict[str, str], problems: Problems
) -> str | None:
    if order_type == "market":
        if "price" in options:
            problems.add("price", f"price= is for pending orders (buylimit, ...), not {command}")
        return None
    if "price" not in options:
        problems.missing("price", f"{command} needs price=, the pending order's price")
        return None
    return problems.number("price", options["price"])


def _check_sides(
    action: str,
    price: str | None,
    stop_loss: str | None,
    take_profit: str | None,
    problems: Problems,
) -> None:
    """Refuse brackets on the wrong side: what pips or percent read as prices look like."""
    buying = action == "buy"
    # (field, value, other field, other value): for a buy the value must be below the other
    below_for_a_buy = (
        ("sl", stop_loss, "tp", take_profit),
        ("sl", stop_loss, "price", price),
        ("price", price, "tp", take_profit),
    )
    for name, value, other_name, other in below_for_a_buy:
        if value is None or other is None:
            continue
        below = Decimal(value) < Decimal(other)
        if below != buying or Decimal(value) == Decimal(other):
            side = "below" if buying else "above"
            message = f"{name}={value} must be {side} {other_name}={other} for a {action}"
            field = "tp" if name == "price" else name
            problems.add(field, f"{message}; {_PRICE_READING}")


PINECONNECTOR: Final = PineConnector()
