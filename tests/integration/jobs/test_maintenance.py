"""Housekeeping: the hourly cleanup prunes finished jobs and old reconciliation runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from pinelab.clock import FrozenClock
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.maintenance import FINISHED_JOB_RETENTION, cleanup_finished_jobs
from pinelab.jobs.models import Job, JobAttempt
from pinelab.main import PRUNE_RECONCILIATION_RUNS, Services, build_services
from pinelab.trading.models import ReconciliationRun
from tests.factories import enqueue_job
from tests.integration.jobs.conftest import MakeWorker
from tests.integration.jobs.support import Recorder, drain


@pytest.fixture
async def context(settings: Settings, frozen_clock: FrozenClock) -> AsyncIterator[Services]:
    built = build_services(settings.model_copy(update={"reconciliation_retention_days": 30}))
    yield built
    await built.close()


async def _job_ids(db: Database) -> set[int]:
    async with db.session() as session:
        return set((await session.scalars(select(Job.id))).all())


async def _attempted_job_ids(db: Database) -> list[int]:
    async with db.session() as session:
        return list((await session.scalars(select(JobAttempt.job_id))).all())


async def test_cleanup_deletes_old_done_jobs_but_keeps_dead_ones(
    db: Database, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    ok, down = Recorder(), Recorder(failures=100)
    worker = make_worker({"ok": ok.job_type, "down": down.job_type})
    done_id = await enqueue_job(db, "ok")
    await drain(worker, frozen_clock)
    dead_id = await enqueue_job(db, "down")
    await drain(worker, frozen_clock)
    frozen_clock.advance(FINISHED_JOB_RETENTION.total_seconds() + 86400)
    fresh_id = await enqueue_job(db, "ok")
    await drain(worker, frozen_clock)
    assert await cleanup_finished_jobs(db) == 1
    assert await _job_ids(db) == {dead_id, fresh_id}
    attempted = await _attempted_job_ids(db)
    assert done_id not in attempted
    assert attempted.count(dead_id) == 3


async def test_finished_runs_past_the_retention_are_deleted_and_the_rest_kept(
    context: Services, frozen_clock: FrozenClock
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
    prune = context.worker.job_types[PRUNE_RECONCILIATION_RUNS]
    await prune.run(Job(kind=PRUNE_RECONCILIATION_RUNS, payload={}))
    async with context.db.session() as session:
        kept = set((await session.scalars(select(ReconciliationRun.trigger))).all())
    assert kept == {"recent", "stuck"}
