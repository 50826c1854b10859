"""The cost of executing an alert: commits per market alert on the paper broker stay bounded,
and the shortcut that saves a commit (the order carries the alert's price to the paper venue,
instead of a separate price update) still gives the venue every alert's price."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, event, select

from pinelab.api.app import build_context
from pinelab.api.context import AppContext
from pinelab.config import Settings
from pinelab.signals.models import Signal
from pinelab.trading.execution import execute_signal
from pinelab.trading.models import Fill, Order
from tests.factories import Seeded, seed_strategy

# claim, store the order, the venue's submission, book its report (and finish the signal),
# complete the job: 5 today; one spare so a deliberate addition does not need this test changed.
MAX_COMMITS_PER_ALERT = 6
ALERTS = 3


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[AppContext]:
    built = build_context(settings)
    yield built
    await built.brokers.close()
    await built.db.dispose()


@pytest.fixture
def commits() -> Iterator[list[str]]:
    """Record every commit on any engine (the async one and the dedicated SQLite ones)."""
    seen: list[str] = []

    def on_commit(connection: Any) -> None:
        seen.append(connection.engine.url.drivername)

    event.listen(Engine, "commit", on_commit)
    yield seen
    event.remove(Engine, "commit", on_commit)


async def _ingest(context: AppContext, seeded: Seeded, number: int, **fields: Any) -> int:
    assert context.ingestor is not None
    alert = {
        "ticker": "AAPL",
        "action": "buy",
        "quantity": "1",
        "price": "100",
        "id": f"c{number}",
    } | fields
    result = await context.ingestor.ingest(
        token=seeded.token,
        body=orjson.dumps(alert),
        content_type="application/json",
        source_ip=None,
    )
    return result.signal_id


async def _run_one_job(context: AppContext) -> None:
    assert context.worker is not None
    assert await context.worker.run_once()


async def test_a_market_alert_on_the_paper_broker_costs_few_commits(
    context: AppContext, commits: list[str]
) -> None:
    seeded = await seed_strategy(context.db)
    await _ingest(context, seeded, 0)
    await _run_one_job(context)  # the first fill creates the venue's account and our position
    signal_ids = [await _ingest(context, seeded, number) for number in range(1, ALERTS + 1)]
    commits.clear()
    for _ in signal_ids:
        await _run_one_job(context)
    executed = len(commits)
    async with context.db.session() as session:
        statuses = (
            await session.scalars(select(Signal.status).where(Signal.id.in_(signal_ids)))
        ).all()
        filled = (
            await session.scalars(select(Order.status).where(Order.signal_id.in_(signal_ids)))
        ).all()
    assert statuses == ["executed"] * ALERTS
    assert filled == ["filled"] * ALERTS
    assert executed <= MAX_COMMITS_PER_ALERT * ALERTS, f"{executed / ALERTS:.1f} commits per alert"


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        ({"action": "exit", "quantity": None}, "nothing to do"),
        ({"quantity": "10"}, "beyond the strategy's maximum"),
    ],
)
async def test_an_alert_that_places_no_order_still_gives_its_price_to_the_paper_venue(
    context: AppContext, first: dict[str, Any], reason: str
) -> None:
    seeded = await seed_strategy(context.db, max_position_quantity=Decimal(5))
    first_id = await _ingest(context, seeded, 1, price="105", **first)
    await execute_signal(context, first_id)
    # A market order without a price fills at the venue's last quote: the first alert's.
    second_id = await _ingest(context, seeded, 2, price=None)
    await execute_signal(context, second_id)
    async with context.db.session() as session:
        first_signal = await session.get(Signal, first_id)
        fills = (await session.scalars(select(Fill))).all()
    assert first_signal is not None
    assert reason in (first_signal.reason or "")
    assert [(fill.quantity, fill.price) for fill in fills] == [(1, 105)]
