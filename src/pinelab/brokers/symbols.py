"""Tickers: what an alert may name, its one canonical form, and each venue's symbol for it.

A ticker is letters, digits and ``. : / - _ !``, 1 to 64 characters (``ticker_problem``).
Its canonical form (``canonical_ticker``), the one every signal, order, position and exit is kept
under, is upper-case without TradingView's exchange prefix: ``BINANCE:btcusdt`` is ``BTCUSDT``,
so an exit for ``BINANCE:BTCUSDT`` closes the position opened as ``BTCUSDT``. TradingView's
suffixes stay, because they name other instruments: ``BTCUSDT.P`` is the perpetual swap (not
the spot pair) and ``ES1!`` the continuous front-month future (``ES2!`` the next one).

Each venue maps a canonical ticker its own way (``paper_symbol``, ``alpaca_symbol``,
``ccxt_candidate``): the paper venue keeps it as it is (a perpetual or a continuous future is an
instrument of its own there); Alpaca trades stocks and spot crypto, and the CCXT adapter spot
markets, so neither takes a perpetual or a future (``venue_refusal`` says so before anything is
stored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pinelab.brokers.exceptions import UnknownSymbol

MAX_TICKER_LENGTH: Final = 64
TICKER_CHARACTERS: Final = "letters, digits and . : / - _ !"

_TICKER: Final = re.compile(r"[A-Za-z0-9.:/\-_!]+", re.ASCII)
# An exchange prefix is a name before the first colon ("BINANCE", "CME_MINI", "FX_IDC").
_PREFIX: Final = re.compile(r"[A-Z0-9_]+:", re.ASCII)
_CONTINUOUS: Final = re.compile(r"(.+?)(\d+)!", re.ASCII)
_PERPETUAL_SUFFIX: Final = ".P"


class InstrumentKind(StrEnum):
    """What a TradingView ticker names, told by its suffix."""

    SPOT = "spot"  # a stock, a spot pair, an index: no suffix
    PERPETUAL = "perpetual"  # BTCUSDT.P
    CONTINUOUS_FUTURE = "continuous_future"  # ES1!


@dataclass(frozen=True)
class Instrument:
    """A canonical ticker read apart: the root symbol and what its suffix says."""

    ticker: str  # canonical, suffix included
    root: str  # without the suffix: "BTCUSDT" for BTCUSDT.P, "ES" for ES1!
    kind: InstrumentKind


def ticker_problem(ticker: str) -> str | None:
    """Return why a ticker (as received, trimmed) breaks the grammar, or None when it is fine."""
    if not ticker:
        return "must not be empty"
    if len(ticker) > MAX_TICKER_LENGTH:
        return f"must be at most {MAX_TICKER_LENGTH} characters long, got {len(ticker)}"
    if _TICKER.fullmatch(ticker) is None:
        bad = next(ch for ch in ticker if _TICKER.fullmatch(ch) is None)
        return f"may hold only {TICKER_CHARACTERS}, got {bad!r}"
    if canonical_ticker(ticker) == "":
        return "names no symbol after the exchange prefix"
    return None


def checked_ticker(ticker: str) -> str:
    """Return a ticker's canonical form, or raise ValueError saying what breaks the grammar."""
    text = ticker.strip()
    problem = ticker_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return canonical_ticker(text)


def canonical_ticker(ticker: str) -> str:
    """Return the canonical form: trimmed, upper-case, without an exchange prefix.

    Assumes the grammar holds (``ticker_problem``); an empty answer means no symbol was named.
    """
    text = ticker.strip().upper()
    prefix = _PREFIX.match(text)
    return text[prefix.end() :] if prefix is not None else text


def instrument(ticker: str) -> Instrument:
    """Read a canonical ticker's suffix: a perpetual (``.P``), a continuous future (``1!``)."""
    if ticker.endswith(_PERPETUAL_SUFFIX) and len(ticker) > len(_PERPETUAL_SUFFIX):
        return Instrument(ticker, ticker[: -len(_PERPETUAL_SUFFIX)], InstrumentKind.PERPETUAL)
    continuous = _CONTINUOUS.fullmatch(ticker)
    if continuous is not None:
        return Instrument(ticker, continuous.group(1), InstrumentKind.CONTINUOUS_FUTURE)
    return Instrument(ticker, ticker, InstrumentKind.SPOT)


# Which instruments each broker kind ("paper", "alpaca", "ccxt") can trade.
_TRADES: Final[dict[str, frozenset[InstrumentKind]]] = {
    "paper": frozenset(InstrumentKind),
    "alpaca": frozenset({InstrumentKind.SPOT}),
    "ccxt": frozenset({InstrumentKind.SPOT}),
}
_VENUE_NAMES: Final = {"paper": "the paper broker", "alpaca": "Alpaca", "ccxt": "this CCXT account"}
_KIND_NAMES: Final = {
    InstrumentKind.PERPETUAL: "a perpetual swap (TradingView's .P)",
    InstrumentKind.CONTINUOUS_FUTURE: "a continuous future (TradingView's 1!)",
}


def venue_refusal(broker_kind: str, ticker: str) -> str | None:
    """Return why a broker kind cannot trade a canonical ticker at all, or None if it may."""
    kind = broker_kind.partition(":")[0]
    found = instrument(ticker)
    if found.kind in _TRADES.get(kind, frozenset(InstrumentKind)):
        return None
    venue = _VENUE_NAMES.get(kind, kind)
    trades = "spot markets" if kind == "ccxt" else "stocks and spot crypto"
    return f"{ticker} is {_KIND_NAMES[found.kind]}; {venue} trades {trades} only"


def _checked(broker_kind: str, ticker: str) -> str:
    symbol = canonical_ticker(ticker)
    if not symbol:
        raise UnknownSymbol(f"no symbol in ticker {ticker!r}")
    refusal = venue_refusal(broker_kind, symbol)
    if refusal is not None:
        raise UnknownSymbol(refusal)
    return symbol


def paper_symbol(ticker: str) -> str:
    """The paper venue's symbol: the canonical ticker, suffix and all."""
    return _checked("paper", ticker)


def alpaca_symbol(ticker: str) -> str:
    """The symbol to look up at Alpaca: the canonical ticker of a stock or spot crypto pair."""
    return _checked("alpaca", ticker)


def ccxt_candidate(ticker: str) -> str:
    """The name to find a CCXT spot market by (compared without separators by the adapter)."""
    return _checked("ccxt", ticker)
