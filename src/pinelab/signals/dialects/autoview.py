"""Autoview's command lines: ``key=value`` words, e.g. ``s=BTCUSDT b=buy q=0.01 t=market``.

As Autoview documents them (autoview.com, "Alert Syntax"; use.autoview.com, "Building Autoview
commands"): each command is a line (or a part between ``|``) of ``key=value`` words, and each
command is one order or one cancel/close. PineLab turns an alert into one intent, so it takes
one command.

What PineLab reads: ``b`` (buy/long, sell/short), ``q`` (a quantity, or ``N%`` of equity with
``y=equity``), ``s`` (the symbol: a webhook has no chart to default to), ``t=market``,
``c=order`` (cancel the strategy's open orders in the ticker) and ``c=position`` (close its
position), ``d=0``. ``e`` (the exchange) and ``a`` (the account alias) pick Autoview's account;
PineLab trades on the strategy's bound accounts, so they are not used. Autoview's defaults are
a limit order (``t=limit``) priced at an offset (``p``) from the live price, for 100% of the
balance; PineLab has no live price when the alert arrives and does not guess a size, so a
command without ``t=market`` or without ``q`` is refused with that reason, as is every option
that would change the side, size or price and that PineLab cannot honour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pinelab.signals.dialects.base import Translation
from pinelab.signals.dialects.problems import Problems, quoted

NAME: Final = "Autoview"
FORM: Final = (
    "one command of key=value words: s=SYMBOL b=buy|sell q=QUANTITY t=market, or s=SYMBOL "
    "c=order|position, e.g. e=binance s=BTCUSDT b=buy q=0.01 t=market"
)

_COMMANDS: Final = re.compile(r"[\r\n|]+")
_SIDES: Final = {"buy": "buy", "long": "buy", "sell": "sell", "short": "sell"}
_READ: Final = frozenset({"b", "c", "q", "s", "t", "y", "d", "e", "a", "cm", "cmo"})
_LIVE_PRICE: Final = "which PineLab does not have when the alert arrives"
_REFUSED: Final[dict[str, str]] = {
    "p": f"prices the order at an offset from the live price, {_LIVE_PRICE}",
    "sl": f"places a stop-loss at a distance from the live price, {_LIVE_PRICE}",
    "tp": f"places a take-profit at a distance from the live price, {_LIVE_PRICE}",
    "ts": f"places a trailing stop Autoview computes from the live price, {_LIVE_PRICE}",
    "l": "sets the leverage, which PineLab does not set",
    "delay": "waits between commands; PineLab acts on an alert at once",
    "dt": "cancels the order at a date; PineLab's orders have no expiry date",
    "bcc": "relays the command without trading; PineLab would trade",
    "cc": "relays the command to another endpoint, which PineLab does not do",
    "ab": "borrows funds for the order, which PineLab does not do",
    "ar": "repays borrowed funds, which PineLab does not do",
    "amr": "moves funds to the position's margin, which PineLab does not do",
    "aid": "picks one of several accounts at the exchange; PineLab trades on the strategy's "
    "bound accounts",
    "collateral": "sizes from the collateral balance, which PineLab does not do",
    "cot": "places a close-on-trigger order, which PineLab does not do",
    "close": "cancels the other limit orders of the side, which PineLab does not do",
    "eh": "trades in extended hours, which PineLab does not choose",
}
_CLAIMING: Final = frozenset({"b", "c", "e", "q", "s", "t"})


class Autoview:
    """The Autoview dialect (the parser uses the instance AUTOVIEW)."""

    name = NAME
    # the canonical fields a rejection names, as this service calls them
    sources: Final[Mapping[str, str]] = {
        "ticker": "s",
        "action": "b",
        "quantity": "q",
        "quantity_type": "q",
        "order_type": "t",
    }

    def claims(self, text: str) -> bool:
        """Whether the text starts with a key=value word and has a key of Autoview's own.

        PineLab's plain-text form starts with an action word, so such a message is never one:
        claiming it lets the refusal name what Autoview needs.
        """
        words = text.replace("|", " ").split()
        if not words or "=" not in words[0]:
            return False
        return any(word.partition("=")[0].lower() in _CLAIMING for word in words)

    def translate(self, text: str) -> Translation:
        """Return the canonical fields, or DialectRejected naming every problem."""
        problems = Problems(NAME, FORM)
        commands = [line for line in _COMMANDS.split(text) if line.strip()]
        if len(commands) > 1:
            problems.add(
                "body",
                f"has {len(commands)} commands; PineLab places one order per alert, so send "
                "each as its own alert",
            )
        options = _options(commands[0] if commands else "", problems)
        fields = _translate(options, problems)
        problems.raise_if_any()
        return Translation(dialect=NAME, fields=fields)


def _options(command: str, problems: Problems) -> dict[str, tuple[str, str]]:
    """Return the command's words: lower-case key -> (key as written, value)."""
    options: dict[str, tuple[str, str]] = {}
    for word in command.split():
        key, equals, value = word.partition("=")
        if not equals or not key:
            problems.add("body", f"expected key=value words, got {quoted(word)}")
        elif key.lower() in options:
            problems.add(key, "is given twice")
        else:
            options[key.lower()] = (key, value)
    for key in sorted(options.keys() - _READ):
        written = options[key][0]
        if key in _REFUSED:
            problems.unsupported(written, f"{written}= {_REFUSED[key]}")
        else:
            problems.add(written, f"{written}= is not an Autoview parameter PineLab knows")
    return options


def _translate(options: dict[str, tuple[str, str]], problems: Problems) -> dict[str, Any]:
    symbol = options.get("s")
    if symbol is None or not symbol[1]:
        problems.missing("s", "s= (the symbol) is required: a webhook has no chart symbol")
    fields: dict[str, Any] = {"ticker": symbol[1] if symbol else ""}
    disabled = options.get("d")
    if disabled is not None and disabled[1] != "0":
        problems.unsupported(
            disabled[0],
            f"{disabled[0]}={disabled[1]} asks for no live action (a dry run); PineLab would trade",
        )
    yield_on = options.get("y")
    if yield_on is not None and yield_on[1].lower() not in ("balance", "equity"):
        problems.add(yield_on[0], f"must be balance or equity, got {quoted(yield_on[1])}")
    if "c" in options:
        return {**fields, **_cancel_or_close(options, problems)}
    for key in ("cm", "cmo"):
        if key in options:
            problems.add(options[key][0], "is for c=order or c=position")
    return {**fields, **_order(options, problems)}


def _cancel_or_close(options: dict[str, tuple[str, str]], problems: Problems) -> dict[str, Any]:
    written, value = options["c"]
    action = {"order": "cancel", "position": "exit"}.get(value.lower())
    if action is None:
        problems.add(written, f"must be order or position, got {quoted(value)}")
        return {}
    whole = "all the strategy's open orders" if action == "cancel" else "the whole position"
    if "b" in options:
        problems.unsupported(
            options["b"][0], f"with c= picks one side; PineLab's {action} acts on {whole}"
        )
    if "q" in options:
        problems.unsupported(
            options["q"][0], f"with c= is a part; PineLab's {action} acts on {whole}"
        )
    maximum = options.get("cm")
    if maximum is not None and maximum[1].lower() not in ("all", "100%"):
        problems.unsupported(maximum[0], f"limits how many; PineLab's {action} acts on {whole}")
    order_type = options.get("t")
    if action == "exit" and order_type is not None and order_type[1].lower() != "market":
        problems.unsupported(order_type[0], "PineLab closes a position with a market order")
    return {"action": action}


def _order(options: dict[str, tuple[str, str]], problems: Problems) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    side = options.get("b")
    if side is None:
        problems.missing("b", "b= (buy, long, sell or short) is required")
    elif side[1].lower() in _SIDES:
        fields["action"] = _SIDES[side[1].lower()]
    else:
        problems.add(side[0], f"must be buy, long, sell or short, got {quoted(side[1])}")
    order_type = options.get("t")
    if order_type is None:
        problems.missing(
            "t",
            "t= is missing: Autoview's default is a limit order at an offset from the live "
            f"price, {_LIVE_PRICE}; write t=market",
        )
    elif order_type[1].lower() != "market":
        problems.unsupported(
            order_type[0],
            f"t={order_type[1]} is priced from the live price (p=), {_LIVE_PRICE}; PineLab takes "
            "t=market",
        )
    fields["order_type"] = "market"
    _quantity(options, fields, problems)
    return fields


def _quantity(
    options: dict[str, tuple[str, str]], fields: dict[str, Any], problems: Problems
) -> None:
    quantity = options.get("q")
    if quantity is None:
        problems.missing(
            "q",
            "q= is required: Autoview's default is 100% of the balance, which PineLab does "
            "not assume",
        )
        return
    written, value = quantity
    number = value.removesuffix("%")
    if "-" in number.lstrip("-"):
        problems.unsupported(written, f"{written}={value} asks for a random quantity in a range")
        return
    if number == value:
        fields["quantity"] = problems.number(written, value)
        return
    yield_on = options.get("y", ("y", "balance"))
    if yield_on[1].lower() != "equity":
        problems.unsupported(
            written,
            f"{written}={value} is a percent of the balance (y={yield_on[1]}); PineLab sizes by "
            "equity: add y=equity",
        )
        return
    fields["quantity"] = problems.number(written, number)
    fields["quantity_type"] = "percent_of_equity"


AUTOVIEW: Final = Autoview()
