"""Scale-out on PostgreSQL: two workers drain one queue and every job runs exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, insert, select

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.models import Job
from pinelab.jobs.queue import DONE, job_values
from pinelab.jobs.worker import JobType
from tests.integration.jobs.conftest import MakeWorker
from tests.waiting import eventually

JOBS = 1000


@pytest.mark.slow
async def test_two_workers_drain_a_thousand_jobs_running_each_exactly_once(
    settings: Settings, db: Database, make_worker: MakeWorker
) -> None:
    if settings.is_sqlite:
        pytest.skip("scale-out is PostgreSQL's: SQLite runs a single worker")
    settings.worker_concurrency = 8
    executions: Counter[int] = Counter()
    by_worker: Counter[str] = Counter()

    def trivial(name: str) -> JobType:
        async def run(job: Job) -> None:
            executions[job.id] += 1
            by_worker[name] += 1
            await asyncio.sleep(0)  # let the other loops in, as real work would

        return JobType(run=run)

    workers = [make_worker({"trivial": trivial(f"w{n}")}) for n in range(2)]
    for worker in workers:
        assert await worker.start()
    async with db.transaction() as session:
        rows = [job_values("trivial", {"n": n}, max_attempts=3) for n in range(JOBS)]
        await session.execute(insert(Job), rows)
    for worker in workers:
        worker.wake()

    async def drained() -> bool:
        async with db.session() as session:
            done = await session.scalar(
                select(func.count()).select_from(Job).where(Job.status == DONE)
            )
        return done == JOBS

    await eventually(drained, timeout=50)
    assert len(executions) == JOBS
    assert set(executions.values()) == {1}
    assert by_worker["w0"] > 0
    assert by_worker["w1"] > 0
