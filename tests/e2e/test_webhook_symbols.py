"""Tickers through the webhook: the grammar (else a 422 naming `ticker`, recorded), and one
canonical form for orders, positions and exits, whatever exchange prefix an alert carries."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pinelab.db import Database
from pinelab.signals.models import Signal
from pinelab.trading.models import Order, Position
from tests.e2e.conftest import error_fields
from tests.factories import Seeded, session_headers, settled_signal


async def _alert(client: httpx.AsyncClient, token: str, **fields: Any) -> httpx.Response:
    return await client.post(f"/webhooks/{token}", json={"price": "100"} | fields)


async def _executed(db: Database, response: httpx.Response) -> Signal:
    assert response.status_code == 202, response.text
    signal = await settled_signal(db, response.json()["signal_id"])
    assert signal.status == "executed", signal.reason
    return signal


@pytest.mark.parametrize(
    ("ticker", "reason"),
    [
        ('AAPL" ;DROP', "may hold only letters, digits and . : / - _ !, got '\"'"),
        ("AA PL", "may hold only letters, digits and . : / - _ !, got ' '"),
        ("AAPL;", "may hold only letters, digits and . : / - _ !, got ';'"),
        ("A" * 65, "must be at most 64 characters long, got 65"),
        ("BINANCE:", "names no symbol after the exchange prefix"),
    ],
)
async def test_a_ticker_outside_the_grammar_is_422_naming_ticker_and_recorded(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, ticker: str, reason: str
) -> None:
    response = await _alert(client, seeded.token, ticker=ticker, action="buy", quantity="1")
    assert response.status_code == 422, response.text
    assert error_fields(response) == {"ticker"}
    assert response.json()["details"][0]["message"] == reason
    async with app.state.db.session() as session:
        signal = await session.get(Signal, response.json()["signal_id"])
        orders = (await session.scalars(select(Order))).all()
    assert signal is not None
    assert (signal.status, signal.reason) == ("rejected", f"ticker: {reason}")
    assert orders == []


async def test_a_text_alert_with_a_bad_ticker_is_refused_the_same_way(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    response = await client.post(
        f"/webhooks/{seeded.token}",
        content=b"buy AAPL;rm 1",
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 422
    # the ticker, and the text form's closing detail: the form expected, with an example
    assert error_fields(response) == {"ticker", "body"}


async def test_an_exit_for_the_prefixed_ticker_closes_the_position_opened_without_it(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    db: Database = app.state.db
    await _executed(
        db, await _alert(client, seeded.token, ticker="BTCUSDT", action="buy", quantity="2")
    )
    await _executed(
        db, await _alert(client, seeded.token, ticker="binance:btcusdt", action="add", quantity="1")
    )
    closed = await _executed(
        db, await _alert(client, seeded.token, ticker="BINANCE:BTCUSDT", action="exit", price="110")
    )
    assert closed.ticker == "BTCUSDT"
    async with db.session() as session:
        orders = (await session.scalars(select(Order).order_by(Order.id))).all()
        positions = (await session.scalars(select(Position))).all()
    assert [(o.ticker, o.symbol, o.side, o.quantity) for o in orders] == [
        ("BTCUSDT", "BTCUSDT", "buy", 2),
        ("BTCUSDT", "BTCUSDT", "buy", 1),
        ("BTCUSDT", "BTCUSDT", "sell", 3),
    ]
    [position] = positions
    assert (position.ticker, position.quantity, position.realized_pnl) == ("BTCUSDT", 0, 30)


async def test_the_api_finds_a_position_by_any_spelling_of_its_ticker(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    db: Database = app.state.db
    await _executed(
        db, await _alert(client, seeded.token, ticker="BTCUSDT", action="buy", quantity="1")
    )
    headers = await session_headers(db, app.state.secret_key, seeded.user_id)
    for spelling in ("BTCUSDT", "BINANCE:BTCUSDT", "binance:btcusdt"):
        listed = await client.get("/api/v1/positions", params={"ticker": spelling}, headers=headers)
        assert listed.status_code == 200, listed.text
        assert [p["ticker"] for p in listed.json()["items"]] == ["BTCUSDT"]
    refused = await client.get("/api/v1/positions", params={"ticker": "BTC USDT"}, headers=headers)
    assert refused.status_code == 422
    assert error_fields(refused) == {"ticker"}


async def test_a_perpetual_is_its_own_instrument_on_the_paper_broker(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    db: Database = app.state.db
    await _executed(
        db, await _alert(client, seeded.token, ticker="BTCUSDT", action="buy", quantity="1")
    )
    await _executed(
        db,
        await _alert(client, seeded.token, ticker="BINANCE:BTCUSDT.P", action="sell", quantity="2"),
    )
    await _executed(
        db, await _alert(client, seeded.token, ticker="CME_MINI:ES1!", action="buy", quantity="1")
    )
    async with db.session() as session:
        positions = (await session.scalars(select(Position).order_by(Position.ticker))).all()
    assert [(p.ticker, p.quantity) for p in positions] == [
        ("BTCUSDT", 1),
        ("BTCUSDT.P", -2),
        ("ES1!", 1),
    ]
