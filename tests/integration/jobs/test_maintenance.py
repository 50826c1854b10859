"""Housekeeping: the hourly cleanup prunes finished jobs and old reconciliation runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from pinelab.clock import FrozenClock
from pinelab.config import Settings
from pinelab.jobs.maintenance import cleanup_jobs_job
from pinelab.jobs.models import Job
from pinelab.main import Services as AppContext  # bridged until the merge
from pinelab.main import build_services as build_context  # bridged until the merge
from pinelab.trading.models import ReconciliationRun


@pytest.fixture
async def context(settings: Settings, frozen_clock: FrozenClock) -> AsyncIterator[AppContext]:
    built = build_context(settings.model_copy(update={"reconciliation_retention_days": 30}))
    yield built
    await built.close()


async def test_finished_runs_past_the_retention_are_deleted_and_the_rest_kept(
    context: AppContext, frozen_clock: FrozenClock
) -> None:
    moment = frozen_clock.now()

    def run(label: str, started_days_ago: float, finished: bool) -> ReconciliationRun:
        started = moment - timedelta(days=started_days_ago)
        return ReconciliationRun(
            trigger=label,
            status="finished" if finished else "running",
            scope="all",
            window_hours=24,
            started_at=started,
            finished_at=started + timedelta(minutes=1) if finished else None,
        )

    async with context.db.transaction() as session:
        session.add_all(
            [
                run("old", 31, finished=True),
                run("recent", 29, finished=True),
                run("stuck", 90, finished=False),  # still marked running: never deleted
            ]
        )
    await cleanup_jobs_job(context, Job(kind="cleanup_jobs", payload={}))
    async with context.db.session() as session:
        kept = set((await session.scalars(select(ReconciliationRun.trigger))).all())
    assert kept == {"recent", "stuck"}
