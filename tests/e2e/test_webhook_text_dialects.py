"""POST /webhooks/{token} with the text dialects of the services traders move from: what they
document is traded, what PineLab cannot honour is a 422 naming the dialect and the field."""

from __future__ import annotations

from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pinelab.db import Database
from pinelab.signals.models import Signal
from pinelab.trading.models import Order
from tests.factories import Seeded, settled_signal


def _db(app: FastAPI) -> Database:
    database: Database = app.state.db
    return database


async def _post(client: httpx.AsyncClient, seeded: Seeded, text: str) -> httpx.Response:
    return await client.post(
        f"/webhooks/{seeded.token}",
        content=text.encode(),
        headers={"content-type": "text/plain; charset=utf-8"},
    )


async def _executed(app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, text: str) -> None:
    response = await _post(client, seeded, text)
    assert response.status_code == 202, response.text
    signal = await settled_signal(_db(app), response.json()["signal_id"])
    assert signal.status == "executed", signal.reason


async def _orders(app: FastAPI) -> list[tuple[str, str, Decimal, str]]:
    async with _db(app).session() as session:
        rows = (await session.execute(select(Order).order_by(Order.id))).scalars().all()
    return [(row.ticker, row.side, row.quantity, row.status) for row in rows]


async def _rejected(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, text: str
) -> tuple[dict[str, str], Signal]:
    response = await _post(client, seeded, text)
    assert response.status_code == 422, response.text
    body = response.json()
    async with _db(app).session() as session:
        signal = await session.get(Signal, body["signal_id"])
    assert signal is not None
    assert signal.status == "rejected"
    messages: dict[str, str] = {}
    for detail in body["details"]:
        messages[detail["field"]] = " | ".join(
            filter(None, [messages.get(detail["field"]), detail["message"]])
        )
    return messages, signal


async def test_pineconnector_messages_trade_and_what_it_cannot_honour_is_refused(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    await _executed(app, client, seeded, "buy EURUSD 1 price=1.08")  # the paper venue's quote
    await _executed(app, client, seeded, "60123456789,buy,EURUSD,risk=2")
    await _executed(app, client, seeded, "60123456789 , closelong , EURUSD")
    assert await _orders(app) == [
        ("EURUSD", "buy", 1, "filled"),
        ("EURUSD", "buy", 2, "filled"),
        ("EURUSD", "sell", 3, "filled"),
    ]
    response = await _post(client, seeded, "60123456789,closeall")
    assert "60123456789" not in response.text
    details, signal = await _rejected(app, client, seeded, "60123456789,buy,EURUSD,spread=2")
    assert details["spread"].startswith("PineConnector: spread= skips the trade")
    assert "PineConnector" in (signal.reason or "")
    assert len(await _orders(app)) == 3


async def test_alertatron_commands_trade_and_a_chain_of_commands_is_refused(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    await _executed(app, client, seeded, "buy XBTUSD 1 price=100")
    await _executed(app, client, seeded, "MyKeys(XBTUSD) { market(side=buy, amount=2); }\n#bot")
    await _executed(app, client, seeded, "MyKeys(XBTUSD) { market(position=0); } #bot")
    assert await _orders(app) == [
        ("XBTUSD", "buy", 1, "filled"),
        ("XBTUSD", "buy", 2, "filled"),
        ("XBTUSD", "sell", 3, "filled"),
    ]
    chained = "MyKeys(XBTUSD) { cancel(which=all); market(side=buy, amount=100); } #bot"
    details, signal = await _rejected(app, client, seeded, chained)
    assert "Alertatron: has 2 commands (cancel(), market())" in details["body"]
    assert signal.raw_body == chained
    assert len(await _orders(app)) == 3


async def test_autoview_commands_trade_and_its_default_limit_order_is_refused(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    await _executed(app, client, seeded, "buy BTCUSDT 1 price=100")
    await _executed(app, client, seeded, "e=binance s=BTCUSDT b=buy q=0.5 t=market")
    await _executed(app, client, seeded, "e=binance s=BTCUSDT c=position")
    assert await _orders(app) == [
        ("BTCUSDT", "buy", 1, "filled"),
        ("BTCUSDT", "buy", Decimal("0.5"), "filled"),
        ("BTCUSDT", "sell", Decimal("1.5"), "filled"),
    ]
    details, _ = await _rejected(app, client, seeded, "e=binance s=BTCUSDT b=buy q=1")
    assert "write t=market" in details["t"]
    assert "Autoview: expected" in details["body"]
    assert len(await _orders(app)) == 3
