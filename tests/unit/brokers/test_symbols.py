"""Tickers: the grammar, the canonical form, and each venue's map (brokers/symbols.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pinelab.brokers.exceptions import UnknownSymbol
from pinelab.brokers.symbols import (
    InstrumentKind,
    alpaca_symbol,
    canonical_ticker,
    ccxt_candidate,
    checked_ticker,
    instrument,
    paper_symbol,
    ticker_problem,
    venue_refusal,
)


@pytest.mark.parametrize(
    ("ticker", "canonical"),
    [
        ("BTCUSDT", "BTCUSDT"),
        ("BINANCE:BTCUSDT", "BTCUSDT"),
        ("binance:btcusdt", "BTCUSDT"),
        ("BINANCE:BTCUSDT.P", "BTCUSDT.P"),
        ("CME_MINI:ES1!", "ES1!"),
        ("NASDAQ:AAPL", "AAPL"),
        ("NYSE:BRK.B", "BRK.B"),
        ("BTC/USDT", "BTC/USDT"),
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),  # a settle currency, not an exchange prefix
        ("FX_IDC:EURUSD", "EURUSD"),
    ],
)
def test_the_canonical_form_drops_the_exchange_prefix_and_keeps_the_suffix(
    ticker: str, canonical: str
) -> None:
    assert ticker_problem(ticker) is None
    assert canonical_ticker(ticker) == canonical == checked_ticker(f" {ticker} ")


@pytest.mark.parametrize(
    ("ticker", "problem"),
    [
        ('AAPL"; DROP TABLE', "may hold only letters, digits and . : / - _ !, got '\"'"),
        ("AA PL", "may hold only letters, digits and . : / - _ !, got ' '"),
        ("AAPL;", "may hold only letters, digits and . : / - _ !, got ';'"),
        ("ÄPFEL", "may hold only letters, digits and . : / - _ !, got 'Ä'"),
        ("A" * 65, "must be at most 64 characters long, got 65"),
        ("", "must not be empty"),
        ("BINANCE:", "names no symbol after the exchange prefix"),
    ],
)
def test_a_ticker_outside_the_grammar_is_refused_saying_why(ticker: str, problem: str) -> None:
    assert ticker_problem(ticker) == problem
    with pytest.raises(ValueError, match="^" + problem.replace("(", r"\(")[:20]):
        checked_ticker(ticker)


@pytest.mark.parametrize(
    ("ticker", "root", "kind"),
    [
        ("BTCUSDT.P", "BTCUSDT", InstrumentKind.PERPETUAL),
        ("ES1!", "ES", InstrumentKind.CONTINUOUS_FUTURE),
        ("NQ2!", "NQ", InstrumentKind.CONTINUOUS_FUTURE),
        ("BRK.B", "BRK.B", InstrumentKind.SPOT),
        (".P", ".P", InstrumentKind.SPOT),
    ],
)
def test_the_suffix_tells_the_instrument(ticker: str, root: str, kind: InstrumentKind) -> None:
    found = instrument(ticker)
    assert (found.root, found.kind) == (root, kind)


def test_the_paper_venue_trades_every_instrument_under_its_canonical_ticker() -> None:
    assert paper_symbol("BINANCE:BTCUSDT") == paper_symbol("btcusdt") == "BTCUSDT"
    assert paper_symbol("BINANCE:BTCUSDT.P") == "BTCUSDT.P"
    assert paper_symbol("CME_MINI:ES1!") == "ES1!"


@pytest.mark.parametrize("to_symbol", [alpaca_symbol, ccxt_candidate])
def test_alpaca_and_ccxt_take_spot_symbols_and_refuse_derivatives(
    to_symbol: Callable[[str], str],
) -> None:
    assert to_symbol("BINANCE:BTCUSDT") == "BTCUSDT"
    with pytest.raises(UnknownSymbol, match=r"BTCUSDT\.P is a perpetual swap"):
        to_symbol("BINANCE:BTCUSDT.P")
    with pytest.raises(UnknownSymbol, match="ES1! is a continuous future"):
        to_symbol("ES1!")


def test_venue_refusal_names_the_venue_and_what_it_trades() -> None:
    assert venue_refusal("paper", "BTCUSDT.P") is None
    assert venue_refusal("ccxt:binance", "BTCUSDT") is None
    assert venue_refusal("ccxt:binance", "BTCUSDT.P") == (
        "BTCUSDT.P is a perpetual swap (TradingView's .P); this CCXT account trades spot markets"
        " only"
    )
    assert venue_refusal("alpaca", "ES1!") == (
        "ES1! is a continuous future (TradingView's 1!); Alpaca trades stocks and spot crypto only"
    )
