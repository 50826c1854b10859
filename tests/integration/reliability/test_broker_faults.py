"""Alerts keep arriving while the broker is down (refused, then 503s / unavailable, then
timeouts), and while its answers get lost after it took the order: afterwards every accepted
alert has exactly one order at the broker and one of ours, and no order was ever sent twice.

Each proof runs against the Alpaca emulator (faults on the wire) and against the built-in
paper broker (the same faults injected around its adapter, `tests/fakes/faulty_broker.py`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pinelab.brokers.models import PaperOrder
from pinelab.main import Services
from pinelab.signals.models import Signal
from pinelab.trading.execution import EXECUTE_SIGNAL
from pinelab.trading.models import Order
from tests.factories import Seeded, bind_account, seed_strategy
from tests.fakes.alpaca_emulator import AlpacaEmulator, running_emulator
from tests.fakes.faults import Fault
from tests.fakes.faulty_broker import FaultPlan, Outage, wrap
from tests.integration.brokers.test_alpaca import make_broker
from tests.integration.reliability.support import (
    Counts,
    orders_per_signal,
    unfinished_jobs,
)
from tests.waiting import eventually

ORDERS = "/v2/orders"
EVERY = 1_000_000  # a fault count that outlasts the stretch; the plan is cleared to end it
OUTAGES: tuple[Outage, ...] = ("refused", "unavailable", "timeouts")
_ids = itertools.count(1)


class AlpacaVenue:
    """The Alpaca emulator, with faults on the wire."""

    name = "alpaca"

    def __init__(self, emulator: AlpacaEmulator) -> None:
        self.emulator = emulator
        self._faults: dict[str, Fault] = {}

    async def bind(self, context: Services, seeded: Seeded) -> None:
        broker = make_broker(self.emulator, timeout=0.5)
        await bind_account(context, seeded, "alpaca", build=lambda _: broker)

    def start(self, outage: Outage) -> None:
        faults = self.emulator.faults
        faults.clear()
        if outage == "refused":
            self._faults[outage] = faults.add("refuse")
        elif outage == "unavailable":
            self._faults[outage] = faults.add("status", status=503, count=EVERY)
        else:  # orders time out after the venue took them; every other call before
            self._faults[outage] = faults.add(
                "timeout", count=EVERY, delay=1.0, when="after", path_prefix=ORDERS, method="POST"
            )
            faults.add("timeout", count=EVERY, delay=1.0, when="before")

    def lose_answers(self) -> None:
        self.emulator.faults.add(
            "drop_response_after_accept", count=EVERY, path_prefix=ORDERS, method="POST"
        )

    def clear(self) -> None:
        self.emulator.faults.clear()

    def spoiled(self, outage: Outage) -> int:
        return EVERY - self._faults[outage].count

    async def orders(self, context: Services) -> dict[str, str]:
        """Return the venue's orders: client_order_id → the venue's id."""
        return {cid: order.id for cid, order in self.emulator.books.by_client_id.items()}

    def submissions(self) -> int:
        return sum(1 for _, m, path in self.emulator.requests if (m, path) == ("POST", ORDERS))


class PaperVenue:
    """The built-in paper broker behind its adapter, with the faults injected around it."""

    name = "paper"

    def __init__(self) -> None:
        self.plan = FaultPlan()
        self.account_id = 0

    async def bind(self, context: Services, seeded: Seeded) -> None:
        default = context.brokers.build_default
        self.account_id = await bind_account(
            context,
            seeded,
            "paper",
            build=lambda row: wrap(default(row), self.plan),
            starting_cash=Decimal(10_000_000),
        )

    def start(self, outage: Outage) -> None:
        self.plan.down = outage

    def lose_answers(self) -> None:
        self.plan.lost_after_accept = EVERY

    def clear(self) -> None:
        self.plan.down = None
        self.plan.lost_after_accept = 0

    def spoiled(self, outage: Outage) -> int:
        return self.plan.spoiled.get(outage, 0)

    async def orders(self, context: Services) -> dict[str, str]:
        query = select(PaperOrder.client_order_id, PaperOrder.broker_order_id).where(
            PaperOrder.broker_account_id == self.account_id
        )
        async with context.db.session() as session:
            return {row[0]: row[1] for row in (await session.execute(query)).all()}

    def submissions(self) -> int:
        return self.plan.submits_reaching_venue


Venue = AlpacaVenue | PaperVenue


@pytest.fixture(params=["alpaca", "paper"])
def venue(request: pytest.FixtureRequest) -> Iterator[Venue]:
    if request.param == "paper":
        yield PaperVenue()
        return
    with running_emulator(cash=Decimal(10_000_000)) as running:
        yield AlpacaVenue(running)


@dataclass
class Sender:
    """Sends alerts to the webhook and remembers which were acknowledged."""

    client: httpx.AsyncClient
    token: str
    sent: int = 0
    acknowledged: list[int] = field(default_factory=list)

    async def send(self, count: int, *, spread: float = 0.0) -> None:
        """Send `count` alerts, `spread` seconds apart."""
        for _ in range(count):
            alert = {
                "ticker": "AAPL",
                "action": "buy",
                "quantity": "1",
                "price": "100",
                "id": f"o{next(_ids)}",
            }
            self.sent += 1
            answer = await self.client.post(f"/webhooks/{self.token}", json=alert)
            if answer.status_code == 202:
                self.acknowledged.append(answer.json()["signal_id"])
            await asyncio.sleep(spread)  # pacing: the alerts arrive over a stretch of time


async def _setup(app: FastAPI, client: httpx.AsyncClient, venue: Venue) -> Sender:
    context = app.state
    seeded: Seeded = await seed_strategy(context.db)
    await venue.bind(context, seeded)
    return Sender(client, seeded.token)


async def _drained(context: Services) -> None:
    async def done() -> bool:
        return await unfinished_jobs(context.db, EXECUTE_SIGNAL) == 0

    await eventually(done, timeout=45, what="the execution jobs to drain")


async def _prove(name: str, context: Services, venue: Venue, sender: Sender) -> None:
    """Assert exactly one order per acknowledged alert, at the broker and ours; print counts."""
    acknowledged = sender.acknowledged
    async with context.db.session() as session:
        signals = {s.id: s for s in (await session.scalars(select(Signal))).all()}
        ours = {o.signal_id: o for o in (await session.scalars(select(Order))).all()}
    at_broker = await venue.orders(context)
    per_signal = await orders_per_signal(context.db)
    duplicates = venue.submissions() - len(at_broker)
    duplicates += sum(n - 1 for n in per_signal.values() if n > 1)
    backend = "sqlite" if context.db.is_sqlite else "postgres"
    name = f"{name}[{venue.name},{backend}]"
    Counts(name, sender.sent, len(acknowledged), len(signals), len(at_broker), duplicates).report()

    assert len(acknowledged) == sender.sent
    assert set(acknowledged) <= set(signals)
    assert {signals[i].status for i in acknowledged} == {"executed"}
    assert duplicates == 0
    assert len(at_broker) == len(acknowledged)
    for signal_id in acknowledged:
        assert per_signal[signal_id] == 1
        order = ours[signal_id]
        assert at_broker[order.client_order_id] == order.broker_order_id
        assert order.status == "filled"


async def _outage(venue: Venue, sender: Sender, per_phase: int) -> dict[str, int]:
    """Refuse, then answer unavailable, then time out, while alerts arrive; count the spoiled."""
    spoiled: dict[str, int] = {}
    for outage in OUTAGES:
        venue.start(outage)
        await sender.send(per_phase, spread=0.1)

        def spoiling(outage: Outage = outage) -> bool:
            return venue.spoiled(outage) > 0

        await eventually(spoiling, timeout=10, what=f"the {outage} outage to fail a call")
        spoiled[outage] = venue.spoiled(outage)
    venue.clear()
    return spoiled


@pytest.mark.slow
async def test_broker_down_for_a_stretch_while_alerts_arrive_places_each_order_once(
    app: FastAPI, client: httpx.AsyncClient, venue: Venue
) -> None:
    context = app.state
    sender = await _setup(app, client, venue)

    await sender.send(2)  # healthy first: the adapter knows AAPL, so timeouts hit orders
    await _drained(context)
    spoiled = await _outage(venue, sender, per_phase=12)
    await _drained(context)

    assert spoiled["unavailable"] > 0
    assert spoiled["timeouts"] > 0

    await _prove("broker-outage", context, venue, sender)


@pytest.mark.slow
async def test_response_lost_after_the_broker_took_the_order_places_no_duplicate(
    app: FastAPI, client: httpx.AsyncClient, venue: Venue
) -> None:
    context = app.state
    sender = await _setup(app, client, venue)
    venue.lose_answers()

    await sender.send(20)
    await _drained(context)
    venue.clear()

    await _prove("response-lost", context, venue, sender)
