"""Alerts written for other services, through the webhook: traded as those services document,
refused naming the service and what is missing, and never stored with their secrets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pinelab.db import Database
from pinelab.signals.models import Signal
from pinelab.trading.models import Order
from tests.factories import Seeded, session_headers, settled_signal

D = Decimal


def _db(app: FastAPI) -> Database:
    database: Database = app.state.db
    return database


async def _executed(app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, body: Any) -> Signal:
    response = await client.post(f"/webhooks/{seeded.token}", json=body)
    assert response.status_code == 202, response.text
    signal = await settled_signal(_db(app), response.json()["signal_id"])
    assert signal.status == "executed", signal.reason
    return signal


async def _orders(app: FastAPI) -> list[Order]:
    async with _db(app).session() as session:
        return list((await session.execute(select(Order).order_by(Order.id))).scalars())


async def test_a_traderspost_sell_without_quantity_exits_the_whole_long(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    entry = {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 100, "id": "entry"}
    await _executed(app, client, seeded, entry)
    await _executed(app, client, seeded, {"ticker": "AAPL", "action": "sell", "signalPrice": 101})
    orders = await _orders(app)
    assert [(o.side, o.quantity, o.status) for o in orders] == [
        ("buy", 10, "filled"),
        ("sell", 10, "filled"),
    ]


@pytest.mark.parametrize(
    ("message", "dialect", "side", "quantity"),
    [
        (
            {
                "secret": "3commas-secret-value",
                "bot_uuid": "0f3c4d5e",
                "action": "enter_long",
                "tv_exchange": "NASDAQ",
                "tv_instrument": "AAPL",
                "trigger_price": "100",
                "order": {"amount": "2", "currency_type": "base"},
            },
            "3Commas signal bot",
            "buy",
            2,
        ),
        (
            {
                "api_key": "altrady-key-value",
                "api_secret": "altrady-secret-value",
                "exchange": "PAPER",
                "symbol": "AAPL",
                "side": "short",
                "quote_amount": 500,
                "signal_price": 100,
            },
            "Altrady signal bot",
            "sell",
            5,
        ),
        (
            {"symbol": "AAPL", "side": "buy", "qty": 3, "price": 100, "secret": "bot-secret-value"},
            "open-source bot JSON",
            "buy",
            3,
        ),
        (
            {
                "ticker": "AAPL",
                "action": "buy",
                "signalPrice": 100,
                "quantityType": "dollar_amount",
                "quantity": 400,
                "takeProfit": {"limitPrice": 120},
                "stopLoss": {"type": "stop", "stopPrice": 90},
            },
            "TradersPost",
            "buy",
            4,
        ),
    ],
    ids=["3commas", "altrady", "open-source", "traderspost"],
)
async def test_a_dialects_message_is_traded_and_its_secrets_never_stored(
    app: FastAPI,
    client: httpx.AsyncClient,
    seeded: Seeded,
    message: dict[str, Any],
    dialect: str,
    side: str,
    quantity: int,
) -> None:
    signal = await _executed(app, client, seeded, message)
    assert signal.intent is not None
    assert signal.intent["dialect"] == dialect
    assert "-value" not in signal.raw_body
    (entry,) = [order for order in await _orders(app) if order.leg is None]
    assert (entry.side, entry.quantity) == (side, D(quantity))


async def test_secrets_under_any_spelling_are_not_stored_nor_returned(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    body = (
        b'{"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 10,'
        b' "pass\\u0070hrase": "hunter2-a", "api_secret": "hunter2-b", "secret": "hunter2-c",'
        b' "nested": {"Token": "hunter2-d"}}'
    )
    response = await client.post(
        f"/webhooks/{seeded.token}", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text
    await settled_signal(_db(app), response.json()["signal_id"])
    listed = await client.get(
        "/api/v1/signals",
        headers=await session_headers(_db(app), app.state.secret_key, seeded.user_id),
    )
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert "hunter2" not in listed.text
    assert item["raw_body"].count("[redacted]") == 4


async def test_a_dialect_message_missing_a_field_is_refused_naming_the_service(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    message = {"secret": "3commas-secret-value", "bot_uuid": "u", "action": "enter_long"}
    response = await client.post(f"/webhooks/{seeded.token}", json=message)
    assert response.status_code == 422
    (detail,) = response.json()["details"]
    assert detail["field"] == "tv_instrument"
    assert "3Commas signal bot" in detail["message"]
    signal = await settled_signal(_db(app), response.json()["signal_id"])
    assert signal.status == "rejected"
    assert signal.reason is not None
    assert "3Commas signal bot" in signal.reason
    assert "3commas-secret-value" not in signal.raw_body
    assert await _orders(app) == []


async def test_a_sizing_pinelab_cannot_compute_is_refused_at_the_door(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    message = {
        "action": "ENTER_LONG",
        "instrument": "BTC-USDT-SWAP",
        "signalToken": "okx-token-value",
        "investmentType": "percentage_balance",
        "amount": "10",
    }
    response = await client.post(f"/webhooks/{seeded.token}", json=message)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["details"]] == ["investmentType"]
    signal = await settled_signal(_db(app), response.json()["signal_id"])
    assert "okx-token-value" not in signal.raw_body
    assert await _orders(app) == []


async def test_a_bad_text_alert_lists_every_problem_and_the_expected_form(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    response = await client.post(
        f"/webhooks/{seeded.token}",
        content=b"purchase AAPL ten limt_price=3",
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 422
    details = response.json()["details"]
    assert [d["field"] for d in details] == ["limt_price", "action", "quantity", "body"]
    assert "ACTION TICKER [QUANTITY]" in details[-1]["message"]


async def test_deep_or_broken_json_holding_a_secret_is_a_422_and_stored_redacted(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    deep = '{"secret": "hunter2", "a": ' + "[" * 600 + "]" * 600 + "}"
    broken = '{"ticker": "AAPL", "pass\\u0070hrase": "hunter2", "action": '
    for body in (deep, broken):
        response = await client.post(
            f"/webhooks/{seeded.token}",
            content=body.encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
        signal = await settled_signal(_db(app), response.json()["signal_id"])
        assert signal.status == "rejected"
        assert "hunter2" not in signal.raw_body
