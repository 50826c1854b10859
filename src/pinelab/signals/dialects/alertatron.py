"""Alertatron's command lines: ``KeyName(SYMBOL) { command(key=value, ...); } #bot``.

As Alertatron documents them (alertatron.com/docs, "Basic Concepts", "Market Order", "Limit
Order", "Stop Order"): the name of the API keys, the symbol in brackets, then commands in braces,
each ``name(key=value, ...)`` ending in ``;``. Text around the block (``#bot``, a note) is not a
command, as for Alertatron. The key name picks Alertatron's account; PineLab trades on the
strategy's bound accounts, so it is not used (and is not a secret).

One command per alert: PineLab turns an alert into one intent, so a message chaining several
(``cancel(which=all); market(...)``) is refused, naming them. Prices must be absolute
(``offset=@65000``): Alertatron's other offsets are counted from the live price or the entry,
which PineLab does not have when the alert arrives. Amounts in percent of the balance (``50%``,
``50%b``) are percent of equity; of the available balance (``%%``, ``%a``) or of the position
(``%p``) are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from pinelab.signals.dialects.base import Translation
from pinelab.signals.dialects.problems import Problems, quoted

NAME: Final = "Alertatron"
FORM: Final = (
    "KeyName(SYMBOL) { command(key=value, ...); } with one command: market(), limit(), "
    "stopOrder() or cancel(which=all), e.g. MyKeys(XBTUSD) { market(side=buy, amount=100); } #bot"
)

_CLAIM: Final = re.compile(r"[A-Za-z0-9_.\-]+\s*\([^(){}]*\)\s*\{")
_BLOCK: Final = re.compile(r"[A-Za-z0-9_.\-]+\s*\(([^(){}]*)\)\s*\{([^{}]*)\}")
_COMMAND: Final = re.compile(r"\s*([A-Za-z]\w*)\s*\((.*)\)\s*", re.DOTALL)
_AMOUNT: Final = re.compile(r"([^%]*?)\s*(%%|%[A-Za-z]|%)?")

_MARKET: Final = frozenset({"side", "amount", "position", "reduceonly"})
_LIMIT: Final = frozenset({"side", "amount", "offset", "postonly", "reduceonly", "position", "tag"})
_STOP: Final = frozenset(
    {"side", "amount", "offset", "limitoffset", "reduceonly", "trigger", "position", "tag"}
)
# command (lower case) -> (order type, the arguments PineLab knows)
_ORDERS: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "market": ("market", _MARKET),
    "limit": ("limit", _LIMIT),
    "limitorder": ("limit", _LIMIT),
    "stoporder": ("stop", _STOP),
    "stopmarket": ("stop", _STOP),
    "stoplimit": ("stop", _STOP),
}
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}


class Alertatron:
    """The Alertatron dialect (the parser uses the instance ALERTATRON)."""

    name = NAME
    # the canonical fields a rejection names, as this service calls them
    sources: Final[Mapping[str, str]] = {
        "ticker": "symbol",
        "action": "side",
        "quantity": "amount",
        "position_size": "position",
        "limit_price": "offset",
        "stop_price": "offset",
    }

    def claims(self, text: str) -> bool:
        """Whether the text holds a ``KeyName(SYMBOL) {`` block."""
        return _CLAIM.search(text) is not None

    def translate(self, text: str) -> Translation:
        """Return the canonical fields, or DialectRejected naming every problem."""
        problems = Problems(NAME, FORM)
        fields = _translate(text, problems)
        problems.raise_if_any()
        return Translation(dialect=NAME, fields=fields)


def _translate(text: str, problems: Problems) -> dict[str, Any]:
    blocks = _BLOCK.findall(text)
    if not blocks:
        problems.add("body", "no complete KeyName(SYMBOL) { ... } block")
        return {}
    if len(blocks) > 1:
        problems.add(
            "body", f"has {len(blocks)} KeyName(SYMBOL) {{ ... }} blocks; PineLab takes one"
        )
    symbol, body = blocks[0][0].strip(), blocks[0][1]
    if not symbol:
        problems.missing("symbol", "KeyName(SYMBOL) needs the symbol")
    commands = [_command(part, problems) for part in body.split(";") if part.strip()]
    if not commands:
        problems.missing("command", "the { } block holds no command")
        return {}
    if len(commands) > 1:
        names = ", ".join(f"{name}()" for name, _ in commands if name)
        problems.add(
            "body",
            f"has {len(commands)} commands ({names}); PineLab places one order per alert, "
            "so send each as its own alert",
        )
    name, arguments = commands[0]
    command = name.lower()
    if command == "cancel":
        return _cancel(symbol, arguments, problems)
    if command in _ORDERS:
        return _order(name, symbol, arguments, problems)
    if name:
        problems.unsupported(
            "command",
            f"{name}() is not supported by PineLab (it takes market(), limit(), stopOrder() "
            "and cancel(which=all))",
        )
    return {}


def _command(text: str, problems: Problems) -> tuple[str, dict[str, tuple[str, str]]]:
    """Return a command's name and its arguments: lower-case name -> (name as written, value)."""
    found = _COMMAND.fullmatch(text)
    if found is None:
        problems.add("body", f"expected name(key=value, ...), got {quoted(text.strip())}")
        return "", {}
    arguments: dict[str, tuple[str, str]] = {}
    for word in found.group(2).split(","):
        if not word.strip():
            continue
        key, equals, value = (part.strip() for part in word.partition("="))
        if not equals or not key:
            problems.add("body", f"expected key=value in {found.group(1)}(), got {quoted(word)}")
        elif key.lower() in arguments:
            problems.add(key, "is given twice")
        else:
            arguments[key.lower()] = (key, value)
    return found.group(1), arguments


def _cancel(
    symbol: str, arguments: dict[str, tuple[str, str]], problems: Problems
) -> dict[str, Any]:
    _refuse_unknown("cancel", arguments, frozenset({"which", "tag"}), problems)
    if "tag" in arguments:
        problems.unsupported(
            arguments["tag"][0],
            "cancels only the tagged orders; PineLab's cancel cancels all the strategy's open "
            "orders in the ticker",
        )
    which = arguments.get("which")
    if which is None:
        problems.missing(
            "which", "cancel() needs which=all (PineLab cancels every open order in the ticker)"
        )
    elif which[1].lower() != "all":
        problems.unsupported(
            which[0],
            f"which={which[1]} cancels only some orders; PineLab's cancel cancels all the "
            "strategy's open orders in the ticker, stop-losses included",
        )
    return {"ticker": symbol, "action": "cancel"}


def _order(
    name: str, symbol: str, arguments: dict[str, tuple[str, str]], problems: Problems
) -> dict[str, Any]:
    order_type, known = _ORDERS[name.lower()]
    _refuse_unknown(name, arguments, known, problems)
    fields: dict[str, Any] = {"ticker": symbol, "order_type": order_type}
    if "position" in arguments:
        _target(name, order_type, arguments, fields, problems)
    else:
        _side_and_amount(name, arguments, fields, problems)
    # Alertatron places stop orders reduce-only where the venue allows it, unless told not to.
    if _flag(arguments, "reduceonly", problems, default=order_type == "stop"):
        fields["sentiment"] = "flat"
    if _flag(arguments, "postonly", problems, default=False):
        problems.unsupported(arguments["postonly"][0], "PineLab cannot place post-only orders")
    if "trigger" in arguments:
        problems.unsupported(
            arguments["trigger"][0],
            "trigger= picks the price a stop triggers on; PineLab's stops use the venue's own",
        )
    if order_type == "limit":
        fields["limit_price"] = _price(name, "offset", arguments, problems)
    elif order_type == "stop":
        fields["stop_price"] = _price(name, "offset", arguments, problems)
        if "limitoffset" in arguments:
            fields["order_type"] = "stop_limit"
            fields["limit_price"] = _price(name, "limitoffset", arguments, problems)
    return fields


def _target(
    name: str,
    order_type: str,
    arguments: dict[str, tuple[str, str]],
    fields: dict[str, Any],
    problems: Problems,
) -> None:
    written, value = arguments["position"]
    for key in ("side", "amount"):
        if key in arguments:
            problems.add(arguments[key][0], f"is given with {written}=, which sets side and amount")
    if order_type != "market":
        problems.unsupported(written, f"PineLab takes {written}= on market() only, not {name}()")
        return
    if "%" in value:
        problems.unsupported(
            written, f"{written}={value} is a percent target, which PineLab does not size"
        )
        return
    target = problems.number(written, value, signed=True)
    if target is None:
        return
    if Decimal(target) == 0:
        fields["action"] = "exit"
    else:
        fields["action"] = "sell" if Decimal(target) < 0 else "buy"
        fields["position_size"] = target


def _side_and_amount(
    name: str, arguments: dict[str, tuple[str, str]], fields: dict[str, Any], problems: Problems
) -> None:
    side = arguments.get("side")
    if side is None:
        problems.missing("side", f"{name}() needs side=buy or side=sell (or position=)")
    elif side[1].lower() in ("buy", "sell"):
        fields["action"] = side[1].lower()
    else:
        problems.add(side[0], f"must be buy or sell, got {quoted(side[1])}")
    amount = arguments.get("amount")
    if amount is None:
        problems.missing("amount", f"{name}() needs amount= (or position=)")
        return
    written, value = amount
    found = _AMOUNT.fullmatch(value.strip())
    number, unit = (found.group(1), found.group(2)) if found is not None else (value, None)
    if unit in ("%%", "%a", "%A"):
        problems.unsupported(
            written,
            f"{written}={value} is a percent of the available balance; PineLab sizes by equity "
            f"({written}={number}% is a percent of equity)",
        )
    elif unit in ("%p", "%P"):
        problems.unsupported(
            written, f"{written}={value} is a percent of the position, which PineLab does not size"
        )
    elif unit not in (None, "%", "%b", "%B"):
        problems.add(written, f"must be a number, N% or N%b, got {quoted(value)}")
    else:
        fields["quantity"] = problems.number(written, number)
        if unit is not None:
            fields["quantity_type"] = "percent_of_equity"


def _price(
    name: str, key: str, arguments: dict[str, tuple[str, str]], problems: Problems
) -> str | None:
    if key not in arguments:
        problems.missing(
            key,
            f"{name}() needs {key}=@PRICE (Alertatron's default is counted from the live price, "
            "which PineLab does not have)",
        )
        return None
    written, value = arguments[key]
    if not value.startswith("@"):
        problems.unsupported(
            written,
            f"{written}={value} is counted from the live price or the entry, which PineLab does "
            f"not have when the alert arrives: write {written}=@PRICE",
        )
        return None
    return problems.number(written, value[1:])


def _flag(
    arguments: dict[str, tuple[str, str]], key: str, problems: Problems, *, default: bool
) -> bool:
    if key not in arguments:
        return default
    written, value = arguments[key]
    flag = _BOOLEANS.get(value.lower())
    if flag is None:
        problems.add(written, f"must be true or false, got {quoted(value)}")
        return default
    return flag


def _refuse_unknown(
    name: str, arguments: dict[str, tuple[str, str]], known: frozenset[str], problems: Problems
) -> None:
    for key in sorted(arguments.keys() - known):
        written = arguments[key][0]
        problems.add(written, f"{written}= is not an argument of {name}() that PineLab knows")


ALERTATRON: Final = Alertatron()
