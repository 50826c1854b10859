"""Duplicates through the webhook: an explicit idempotency_key dedupes exactly; without one, only
the identical body within the strategy's duplicate window is a repeat (TradingView's resend after
a 5xx). Pine's order id and a time to the second are never keys."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import select

from pinelab.clock import FrozenClock
from pinelab.db import Database
from pinelab.signals.models import Signal
from pinelab.trading.models import Order
from tests.factories import Seeded, seed_strategy, settled_signal

FIRED_AT = "2026-01-02T15:30:00Z"  # {{timenow}}: to the second


def _template(ticker: str, action: str = "buy", **extra: Any) -> bytes:
    """The README's alert as TradingView fills it in on one chart."""
    return orjson.dumps(
        {
            "ticker": ticker,
            "action": action,
            "quantity": "1",
            "price": "100",
            "sentiment": "long" if action == "buy" else "flat",
            "id": "Long",  # {{strategy.order.id}}: the same on every chart
            "time": FIRED_AT,
        }
        | extra
    )


async def _post(client: httpx.AsyncClient, token: str, body: bytes) -> dict[str, Any]:
    response = await client.post(
        f"/webhooks/{token}", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _orders(db: Database) -> list[Order]:
    async with db.session() as session:
        return list((await session.scalars(select(Order).order_by(Order.id))).all())


async def _signal(db: Database, signal_id: int) -> Signal:
    async with db.session() as session:
        signal = await session.get(Signal, signal_id)
    assert signal is not None
    return signal


async def test_one_strategy_on_two_charts_in_one_second_places_both_orders(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, frozen_clock: FrozenClock
) -> None:
    db: Database = app.state.db
    answers = await asyncio.gather(
        _post(client, seeded.token, _template("BTCUSDT")),
        _post(client, seeded.token, _template("ETHUSDT")),
    )
    assert [answer["status"] for answer in answers] == ["accepted", "accepted"]
    for answer in answers:
        signal = await settled_signal(db, answer["signal_id"])
        assert signal.status == "executed", signal.reason
    assert sorted(order.ticker for order in await _orders(db)) == ["BTCUSDT", "ETHUSDT"]


async def test_an_exit_and_an_entry_on_one_bar_are_both_traded(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, frozen_clock: FrozenClock
) -> None:
    db: Database = app.state.db
    entry = await _post(client, seeded.token, _template("AAPL"))
    await settled_signal(db, entry["signal_id"])
    for body in (_template("AAPL", "sell"), _template("AAPL", quantity="2")):
        answer = await _post(client, seeded.token, body)
        assert answer["status"] == "accepted"
        assert (await settled_signal(db, answer["signal_id"])).status == "executed"
    assert [(o.side, o.quantity) for o in await _orders(db)] == [
        ("buy", 1),
        ("sell", 1),
        ("buy", 2),
    ]


async def test_a_resent_identical_body_is_a_duplicate_only_within_the_window(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, frozen_clock: FrozenClock
) -> None:
    db: Database = app.state.db
    body = _template("AAPL")
    first = await _post(client, seeded.token, body)
    frozen_clock.advance(15)  # TradingView's third resend, 5 s apart
    resent = await _post(client, seeded.token, body)
    assert resent["status"] == "duplicate"
    repeat = await _signal(db, resent["signal_id"])
    assert repeat.duplicate_of_id == first["signal_id"]
    assert repeat.reason == "same alert body within 60s"
    frozen_clock.advance(46)  # past the default window of 60 s: a new alert
    later = await _post(client, seeded.token, body)
    assert later["status"] == "accepted"
    await settled_signal(db, later["signal_id"])
    assert len(await _orders(db)) == 2


async def test_a_strategy_without_a_window_trades_every_identical_body(
    app: FastAPI, client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    db: Database = app.state.db
    seeded = await seed_strategy(db, duplicate_window_seconds=0)
    answers = [await _post(client, seeded.token, _template("AAPL")) for _ in range(2)]
    assert [answer["status"] for answer in answers] == ["accepted", "accepted"]
    for answer in answers:
        await settled_signal(db, answer["signal_id"])
    assert len(await _orders(db)) == 2


async def test_an_idempotency_key_dedupes_exactly_and_outside_the_window(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, frozen_clock: FrozenClock
) -> None:
    db: Database = app.state.db
    first = await _post(client, seeded.token, _template("AAPL", idempotency_key="bar-1"))
    await settled_signal(db, first["signal_id"])
    frozen_clock.advance(86_400)
    # Another body (a new price) with the same key: still the same alert.
    again = await _post(
        client, seeded.token, _template("AAPL", idempotency_key="bar-1", price="101")
    )
    other = await _post(client, seeded.token, _template("AAPL", idempotency_key="bar-2"))
    assert (first["status"], again["status"], other["status"]) == (
        "accepted",
        "duplicate",
        "accepted",
    )
    repeat = await _signal(db, again["signal_id"])
    assert repeat.duplicate_of_id == first["signal_id"]
    assert repeat.reason == "same strategy and idempotency_key as an earlier alert"
    await settled_signal(db, other["signal_id"])
    assert len(await _orders(db)) == 2


async def test_keyed_alerts_in_one_second_with_distinct_keys_are_all_traded(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, frozen_clock: FrozenClock
) -> None:
    db: Database = app.state.db
    # One after another, in the same second of the frozen clock: each is its own alert.
    for n in range(3):
        answer = await _post(client, seeded.token, _template("AAPL", idempotency_key=f"AAPL-{n}"))
        assert answer["status"] == "accepted"
        assert (await settled_signal(db, answer["signal_id"])).status == "executed"
    assert len(await _orders(db)) == 3
