"""Reconciliation against the paper broker and the Alpaca and Crypto.com emulators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from pinelab.brokers.base import Broker, OrderRequest, OrderSide, QuoteDriven
from pinelab.brokers.exceptions import RetryableBrokerError
from pinelab.brokers.models import BrokerAccount
from pinelab.clock import FrozenClock
from pinelab.config import Settings
from pinelab.jobs import queue
from pinelab.jobs.models import Job
from pinelab.main import Services, build_services
from pinelab.notify.email import SEND_EMAIL
from pinelab.trading.models import Fill, Order, OrderEvent, Position, ReconciliationRun
from pinelab.trading.reconciliation import (
    MANUAL,
    NEVER_REACHED,
    RECONCILE,
    Reconciler,
    ReconciliationScope,
)
from tests.factories import Seeded, all_rows, bind_account, execute, ingest_alert, seed_strategy
from tests.fakes import alpaca_emulator, ccxt_emulator
from tests.fakes.faulty_broker import FaultPlan, wrap
from tests.integration.brokers.test_alpaca import make_broker as make_alpaca
from tests.integration.brokers.test_ccxt import make_broker as make_ccxt


@pytest.fixture
async def context(settings: Settings, frozen_clock: FrozenClock) -> AsyncIterator[Services]:
    built = build_services(settings)
    yield built
    await built.close()


async def _order(context: Services) -> Order:
    (order,) = await all_rows(context.db, Order)
    return order


async def reconcile(
    context: Services,
    *,
    trigger: str,
    scope: ReconciliationScope,
    requested_by: int | None = None,
) -> ReconciliationRun:
    settings = context.settings
    reconciler = Reconciler(
        db=context.db,
        brokers=context.brokers,
        window=timedelta(hours=settings.reconciliation_window_hours),
        email_attempts=settings.max_retry_attempts,
        base_url=settings.base_url,
    )
    run = await reconciler.run(trigger=trigger, scope=scope, requested_by=requested_by)
    context.metrics.reconciliation_fixed(run.updated)  # as the root's wrapper does
    return run


async def _run(context: Services, seeded: Seeded) -> ReconciliationRun:
    scope = ReconciliationScope(user_id=seeded.user_id)
    return await reconcile(context, trigger=MANUAL, scope=scope, requested_by=seeded.user_id)


async def _venue(context: Services, seeded: Seeded) -> Broker:
    async with context.db.session() as session:
        account = await session.get(BrokerAccount, seeded.account_id)
    assert account is not None
    return await context.brokers.get(account)


async def _unsent_order(context: Services, seeded: Seeded) -> Order:
    """Leave an order `new` in our books: the broker was down when it was sent."""
    default = context.brokers.build_default
    context.brokers.build = lambda account: wrap(default(account), FaultPlan(unavailable=1))
    signal_id = await ingest_alert(context, seeded)
    with pytest.raises(RetryableBrokerError):
        await execute(context, signal_id)
    context.brokers.build = default
    context.brokers.forget(seeded.account_id)
    order = await _order(context)
    assert order.status == "new"
    return order


async def test_fill_made_while_we_were_not_looking_is_recorded_once(
    context: Services, seeded: Seeded
) -> None:
    await execute(
        context, await ingest_alert(context, seeded, order_type="limit", limit_price="95")
    )
    assert (await _order(context)).status == "accepted"
    venue = await _venue(context, seeded)
    assert isinstance(venue, QuoteDriven)
    await venue.update_price("AAPL", Decimal(94))  # the venue fills; nobody tells us

    run = await _run(context, seeded)

    assert (run.status, run.checked, run.updated, run.fills_recorded) == ("finished", 1, 1, 1)
    assert (run.drift, run.errors) == (0, 0)
    order = await _order(context)
    assert (order.status, order.filled_quantity) == ("filled", 10)
    (position,) = await all_rows(context.db, Position)
    assert position.quantity == 10
    [change] = run.details["accounts"][0]["changes"]
    assert (change["from"], change["to"], change["fills"]) == ("accepted", "filled", 1)
    again = await _run(context, seeded)
    assert (again.checked, again.updated, again.fills_recorded) == (0, 0, 0)
    assert len(await all_rows(context.db, Fill)) == 1
    fixes = context.metrics.registry.get_sample_value("pinelab_reconciliation_fixes_total")
    assert fixes == 1


async def test_order_the_broker_took_while_we_lost_the_answer_is_adopted(
    context: Services, seeded: Seeded, frozen_clock: FrozenClock
) -> None:
    order = await _unsent_order(context, seeded)
    venue = await _venue(context, seeded)
    request = OrderRequest(
        order.client_order_id,
        "AAPL",
        OrderSide.BUY,
        quantity=Decimal(10),
        reference_price=Decimal(100),
    )
    await venue.submit_order(request)

    young = await _run(context, seeded)
    assert young.checked == 0
    assert young.details["accounts"][0]["in_flight"] == 1
    frozen_clock.advance(61)
    run = await _run(context, seeded)

    assert (run.checked, run.updated, run.fills_recorded) == (1, 1, 1)
    adopted = await _order(context)
    assert adopted.status == "filled"
    assert adopted.broker_order_id is not None
    assert adopted.submitted_at is not None


async def test_order_that_never_reached_the_broker_waits_for_its_job_then_fails(
    context: Services, seeded: Seeded, frozen_clock: FrozenClock
) -> None:
    await _unsent_order(context, seeded)
    frozen_clock.advance(120)

    waiting = await _run(context, seeded)
    assert (waiting.checked, waiting.updated) == (1, 0)
    [unresolved] = waiting.details["accounts"][0]["unresolved"]
    assert "still queued or running" in unresolved["note"]
    assert (await _order(context)).status == "new"

    async with context.db.transaction() as session:
        await session.execute(update(Job).values(status=queue.DEAD))
    run = await _run(context, seeded)

    assert (run.checked, run.updated) == (1, 1)
    order = await _order(context)
    assert (order.status, order.reason) == ("failed", NEVER_REACHED)
    events = [event.event for event in await all_rows(context.db, OrderEvent)]
    assert events == ["created", "failed"]


async def test_order_open_over_an_hour_is_flagged_and_its_owner_emailed_once(
    context: Services, seeded: Seeded, frozen_clock: FrozenClock
) -> None:
    await execute(
        context, await ingest_alert(context, seeded, order_type="limit", limit_price="90")
    )
    assert (await _run(context, seeded)).flagged == 0
    frozen_clock.advance(3601)

    first = await _run(context, seeded)
    second = await _run(context, seeded)

    assert (first.flagged, second.flagged) == (1, 1)
    [flag] = first.details["accounts"][0]["flagged"]
    assert (flag["status"], flag["ticker"]) == ("accepted", "AAPL")
    assert flag["alerted_at"] is not None
    emails = [job for job in await all_rows(context.db, Job) if job.kind == SEND_EMAIL]
    assert len(emails) == 1
    assert emails[0].payload["to"] == "trader@example.com"
    client_order_id = (await _order(context)).client_order_id
    assert client_order_id in emails[0].payload["text"]
    assert f"<td>{client_order_id}</td>" in emails[0].payload["html"]


async def test_position_drift_is_reported_and_not_fixed(context: Services, seeded: Seeded) -> None:
    await execute(context, await ingest_alert(context, seeded))
    async with context.db.transaction() as session:
        await session.execute(update(Position).values(quantity=Decimal(7)))

    run = await _run(context, seeded)

    assert run.drift == 1
    drift = run.details["accounts"][0]["drift"]
    assert drift == [{"symbol": "AAPL", "ours": "7", "broker": "10", "difference": "3"}]
    (position,) = await all_rows(context.db, Position)
    assert position.quantity == 7


async def test_an_account_that_cannot_be_reached_is_an_error_and_the_run_goes_on(
    context: Services, seeded: Seeded
) -> None:
    async with context.db.transaction() as session:
        broken = BrokerAccount(user_id=seeded.user_id, kind="alpaca", label="no keys", paper=True)
        session.add(broken)
    await execute(
        context, await ingest_alert(context, seeded, order_type="limit", limit_price="95")
    )
    venue = await _venue(context, seeded)
    assert isinstance(venue, QuoteDriven)
    await venue.update_price("AAPL", Decimal(94))

    run = await _run(context, seeded)

    assert (run.status, run.accounts, run.errors, run.updated) == ("finished", 2, 1, 1)
    by_account = {entry["broker_account_id"]: entry for entry in run.details["accounts"]}
    assert by_account[broken.id]["errors"][0]["error"] == "CredentialsUnavailable"
    assert by_account[seeded.account_id]["errors"] == []


async def test_run_of_one_account_leaves_the_others_alone(
    context: Services, seeded: Seeded
) -> None:
    other = await seed_strategy(context.db, email="other@example.com", token="other-token-0123456")
    scope = ReconciliationScope(user_id=seeded.user_id, broker_account_id=seeded.account_id)

    run = await reconcile(context, trigger=MANUAL, scope=scope)

    assert (run.scope, run.accounts, run.broker_account_id) == ("account", 1, seeded.account_id)
    assert run.details["accounts"][0]["broker_account_id"] != other.account_id


async def test_periodic_job_is_registered_at_the_configured_interval_and_runs_a_pass(
    context: Services, seeded: Seeded
) -> None:
    context.settings.reconciliation_interval_minutes = 2
    built = build_services(context.settings)
    worker = built.worker
    assert worker is not None
    assert worker.scheduler.tasks[RECONCILE].interval_seconds == 120
    async with context.db.transaction() as session:
        await session.execute(update(Job).values(status=queue.DONE))  # the alert-free queue
        await queue.enqueue(session, RECONCILE, {}, max_attempts=3)

    try:
        assert await worker.run_once()
    finally:
        await built.close()

    (run,) = await all_rows(context.db, ReconciliationRun)
    assert (run.trigger, run.scope, run.status, run.user_id) == (
        "periodic",
        "all",
        "finished",
        None,
    )


# --- the live adapters, against their emulators ---------------------------------------------


VenueFactory = Callable[[], Any]


@pytest.fixture
def alpaca() -> Iterator[alpaca_emulator.AlpacaEmulator]:
    with alpaca_emulator.running_emulator() as running:
        yield running


@pytest.fixture
def cryptocom() -> Iterator[ccxt_emulator.CryptocomEmulator]:
    with ccxt_emulator.running_emulator() as running:
        yield running


async def test_alpaca_partial_then_full_fill_is_synced_with_its_fills(
    context: Services, seeded: Seeded, alpaca: alpaca_emulator.AlpacaEmulator
) -> None:
    await bind_account(context, seeded, "alpaca", build=lambda _: make_alpaca(alpaca))
    await execute(
        context, await ingest_alert(context, seeded, order_type="limit", limit_price="95")
    )
    order = await _order(context)
    assert order.status == "accepted"
    assert order.broker_order_id is not None
    alpaca.fill(order.broker_order_id, Decimal(4), Decimal(95))

    partial = await _run(context, seeded)
    assert (partial.updated, partial.fills_recorded, partial.drift) == (1, 1, 0)
    assert (await _order(context)).status == "partially_filled"
    alpaca.fill(order.broker_order_id, Decimal(6), Decimal(94))

    full = await _run(context, seeded)
    assert (full.updated, full.fills_recorded, full.drift, full.errors) == (1, 1, 0, 0)
    synced = await _order(context)
    assert (synced.status, synced.filled_quantity) == ("filled", 10)
    assert [fill.quantity for fill in await all_rows(context.db, Fill)] == [4, 6]


async def test_ccxt_fill_is_synced_and_positions_agree(
    context: Services, seeded: Seeded, cryptocom: ccxt_emulator.CryptocomEmulator
) -> None:
    await bind_account(context, seeded, "ccxt:cryptocom", build=lambda _: make_ccxt(cryptocom))
    alert = {"ticker": "CRYPTOCOM:BTCUSDT", "quantity": "0.5", "price": "40000"}
    await execute(
        context,
        await ingest_alert(context, seeded, order_type="limit", limit_price="39000", **alert),
    )
    order = await _order(context)
    assert order.status == "accepted"
    assert order.broker_order_id is not None
    cryptocom.fill(order.broker_order_id, Decimal("0.5"), Decimal(39000))

    run = await _run(context, seeded)

    assert (run.updated, run.fills_recorded, run.errors) == (1, 1, 0), run.details
    assert (await _order(context)).status == "filled"
    assert run.drift == 0, run.details
