"""POST /webhooks/{token}: every answer of ALERTS.md, and every alert on the record."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy
from pinelab.strategies.tokens import hash_passphrase
from pinelab.trading.models import Order
from tests.factories import Seeded, settled_signal

ALERT = {
    "ticker": "AAPL",
    "action": "buy",
    "quantity": "10",
    "price": "190.25",
    "id": "a1",
    "time": "t1",
}


def _db(app: FastAPI) -> Database:
    database: Database = app.state.db
    return database


async def _signal(app: FastAPI, signal_id: int) -> Signal:
    async with _db(app).session() as session:
        signal = await session.get(Signal, signal_id)
    assert signal is not None
    return signal


async def _count(app: FastAPI, model: Any) -> int:
    async with _db(app).session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_canonical_alert_is_stored_then_filled(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    response = await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted"
    signal = await settled_signal(_db(app), body["signal_id"])
    assert signal.status == "executed", signal.reason
    assert signal.source_ip == "203.0.113.7"
    async with _db(app).session() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert (order.status, order.filled_quantity, order.average_fill_price) == ("filled", 10, 190.25)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (
            b'{"ticker":"AAPL","action":"buy","quantity":"1","price":"10"}',
            "text/plain; charset=utf-8",
        ),
        (b"buy AAPL 1 price=10", "text/plain"),
        (b"sell,AAPL,1,price=10", None),
    ],
)
async def test_json_as_text_and_plain_text_alerts_are_accepted(
    app: FastAPI,
    client: httpx.AsyncClient,
    seeded: Seeded,
    content: bytes,
    content_type: str | None,
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(f"/webhooks/{seeded.token}", content=content, headers=headers)
    assert response.status_code == 202, response.text
    signal = await settled_signal(_db(app), response.json()["signal_id"])
    assert signal.status == "executed", signal.reason


async def test_duplicate_alert_is_recorded_and_places_no_order(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    first = await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    second = await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    assert first.json()["status"] == "accepted"
    assert second.status_code == 202
    assert second.json()["status"] == "duplicate"
    await settled_signal(_db(app), first.json()["signal_id"])
    duplicate = await _signal(app, second.json()["signal_id"])
    assert duplicate.status == "duplicate"
    assert duplicate.duplicate_of_id == first.json()["signal_id"]
    assert await _count(app, Order) == 1


async def test_concurrent_copies_of_one_alert_place_one_order(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    responses = await asyncio.gather(
        *(client.post(f"/webhooks/{seeded.token}", json=ALERT) for _ in range(20))
    )
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["accepted"] + ["duplicate"] * 19
    accepted = next(r.json()["signal_id"] for r in responses if r.json()["status"] == "accepted")
    await settled_signal(_db(app), accepted)
    assert await _count(app, Order) == 1


async def test_unknown_token_is_404_with_the_error_body(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    response = await client.post("/webhooks/not-a-token", json=ALERT)
    assert response.status_code == 404
    assert set(response.json()) == {"error", "message", "details"}


async def test_unreadable_alert_is_422_naming_the_field_and_still_recorded(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    response = await client.post(f"/webhooks/{seeded.token}", json={**ALERT, "quantity": "NaN"})
    assert response.status_code == 422
    body = response.json()
    assert body["details"][0]["field"] == "quantity"
    signal = await _signal(app, body["signal_id"])
    assert signal.status == "rejected"
    assert "quantity" in (signal.reason or "")
    assert await _count(app, Order) == 0


async def test_oversized_body_is_413_and_recorded(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, settings: Settings
) -> None:
    big = b"buy AAPL 1 " + b"x" * settings.webhook_max_body_bytes
    response = await client.post(
        f"/webhooks/{seeded.token}", content=big, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 413
    signal = await _signal(app, response.json()["signal_id"])
    assert signal.status == "rejected"
    assert len(signal.raw_body) == settings.webhook_max_body_bytes


async def test_passphrase_is_checked_and_never_stored(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    async with _db(app).transaction() as session:
        strategy = await session.get(Strategy, seeded.strategy_id)
        assert strategy is not None
        strategy.passphrase_hash = hash_passphrase("correct horse", key=app.state.secret_key)
    app.state.tokens.invalidate()
    wrong = await client.post(f"/webhooks/{seeded.token}", json={**ALERT, "passphrase": "guess"})
    missing = await client.post(f"/webhooks/{seeded.token}", json={**ALERT, "id": "a2"})
    right = await client.post(
        f"/webhooks/{seeded.token}", json={**ALERT, "id": "a3", "passphrase": "correct horse"}
    )
    assert (wrong.status_code, missing.status_code, right.status_code) == (401, 401, 202)
    assert "guess" not in wrong.text
    for response in (wrong, right):
        signal = await _signal(app, response.json()["signal_id"])
        assert "guess" not in signal.raw_body
        assert "correct horse" not in signal.raw_body
        assert "passphrase" not in (signal.intent or {})


async def test_disabled_strategy_records_the_alert_and_answers_409(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    async with _db(app).transaction() as session:
        strategy = await session.get(Strategy, seeded.strategy_id)
        assert strategy is not None
        strategy.enabled = False
    app.state.tokens.invalidate()
    response = await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    assert response.status_code == 409
    assert (await _signal(app, response.json()["signal_id"])).status == "rejected"
    assert await _count(app, Order) == 0


async def test_strategy_over_its_rate_gets_429_with_retry_after(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    ingestor = app.state.ingestor
    ingestor.strategy_limiter = replace(ingestor.strategy_limiter, amount=2)
    answers = [
        await client.post(f"/webhooks/{seeded.token}", json={**ALERT, "id": str(i)})
        for i in range(3)
    ]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert int(answers[2].headers["retry-after"]) >= 1


async def test_source_sending_unknown_tokens_is_rate_limited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ingestor = app.state.ingestor
    ingestor.bad_token_limiter = replace(ingestor.bad_token_limiter, amount=3)
    codes = [(await client.post(f"/webhooks/guess-{i}", json=ALERT)).status_code for i in range(4)]
    assert codes == [404, 404, 404, 429]


async def test_alert_for_two_accounts_fans_out(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    from pinelab.brokers.models import BrokerAccount
    from pinelab.strategies.models import StrategyBrokerAccount

    async with _db(app).transaction() as session:
        second = BrokerAccount(
            user_id=seeded.user_id, kind="paper", label="second", starting_cash=50000
        )
        session.add(second)
        await session.flush()
        session.add(
            StrategyBrokerAccount(strategy_id=seeded.strategy_id, broker_account_id=second.id)
        )
    app.state.tokens.invalidate()
    response = await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    signal = await settled_signal(_db(app), response.json()["signal_id"])
    assert signal.status == "executed"
    async with _db(app).session() as session:
        orders = list((await session.execute(select(Order))).scalars())
    assert sorted(o.broker_account_id for o in orders) == sorted([seeded.account_id, second.id])
    assert len({o.client_order_id for o in orders}) == 2
