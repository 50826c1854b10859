"""Scale-out on PostgreSQL: two workers drain one queue and every job runs exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, insert, select

from pinelab.config import Settings
from pinelab.jobs.models import Job
from pinelab.jobs.queue import DONE, job_values
from pinelab.jobs.worker import JobType, Worker
from pinelab.main import Services as AppContext  # bridged until the merge
from pinelab.main import build_services as build_context  # bridged until the merge

JOBS = 1000


@pytest.fixture
async def contexts(settings: Settings) -> AsyncIterator[list[AppContext]]:
    if settings.is_sqlite:
        pytest.skip("scale-out is PostgreSQL's: SQLite runs a single worker")
    settings.worker_concurrency = 8
    built = [build_context(settings) for _ in range(2)]
    yield built
    for context in built:
        await context.close()


async def _done(context: AppContext) -> int:
    async with context.db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Job).where(Job.status == DONE)
        )
    return int(count or 0)


@pytest.mark.slow
async def test_two_workers_drain_a_thousand_jobs_running_each_exactly_once(
    contexts: list[AppContext],
) -> None:
    executions: Counter[int] = Counter()
    by_worker: Counter[str] = Counter()

    def trivial(name: str) -> JobType:
        async def run(_: AppContext, job: Job) -> None:
            executions[job.id] += 1
            by_worker[name] += 1
            await asyncio.sleep(0)

        return JobType(run=run)

    workers = [Worker(context, {"trivial": trivial(f"w{n}")}) for n, context in enumerate(contexts)]
    for worker in workers:
        assert await worker.start()
    try:
        async with contexts[0].db.transaction() as session:
            rows = [job_values("trivial", {"n": n}, max_attempts=3) for n in range(JOBS)]
            await session.execute(insert(Job), rows)
        for worker in workers:
            worker.wake()
        deadline = time.monotonic() + 50
        while await _done(contexts[0]) < JOBS and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        for worker in workers:
            await worker.stop()
    assert await _done(contexts[0]) == JOBS
    assert len(executions) == JOBS
    assert set(executions.values()) == {1}
    assert by_worker["w0"] > 0
    assert by_worker["w1"] > 0
