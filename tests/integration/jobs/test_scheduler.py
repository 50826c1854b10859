"""Periodic jobs fire once per interval across racing schedulers; SQLite runs one worker."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from pinelab.clock import FrozenClock
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.models import Job, PeriodicTask
from pinelab.jobs.worker import JobType, Worker
from pinelab.main import create_app
from tests.integration.jobs.conftest import MakeWorker

INTERVAL = 60.0


def _ticking_worker(make_worker: MakeWorker, runs: list[str]) -> Worker:
    async def tick(job: Job) -> None:
        runs.append(worker.owner)

    worker = make_worker({"tick": JobType(run=tick)})
    worker.scheduler.register("tick", INTERVAL, "tick", {"scope": "all"})
    return worker


async def _jobs(db: Database) -> list[Job]:
    async with db.session() as session:
        return list((await session.scalars(select(Job).where(Job.kind == "tick"))).all())


async def test_periodic_task_fires_once_per_interval_across_racing_workers(
    db: Database, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    runs: list[str] = []
    workers = [_ticking_worker(make_worker, runs) for _ in range(3)]
    fired = await asyncio.gather(*(w.scheduler.run_due() for w in workers))
    assert fired == [[], [], []]  # the first run is one interval after registration
    for interval in range(1, 6):
        frozen_clock.advance(INTERVAL)
        for _ in range(3):  # racing again within the same interval fires nothing more
            fired = await asyncio.gather(*(w.scheduler.run_due() for w in workers))
            assert sum(len(names) for names in fired) <= 1
        while await workers[interval % 3].run_once():
            pass
        assert len(await _jobs(db)) == interval
    assert len(runs) == 5
    jobs = await _jobs(db)
    assert all(job.payload == {"scope": "all"} and job.status == "done" for job in jobs)
    async with db.session() as session:
        task = await session.get(PeriodicTask, "tick")
    assert task is not None
    assert task.last_run_at == frozen_clock.now()
    assert task.last_owner in {w.owner for w in workers}


async def test_periodic_job_still_queued_is_not_enqueued_again(
    db: Database, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    worker = _ticking_worker(make_worker, [])
    await worker.scheduler.run_due()
    frozen_clock.advance(INTERVAL)
    assert await worker.scheduler.run_due() == ["tick"]
    frozen_clock.advance(INTERVAL)
    assert await worker.scheduler.run_due() == []  # the first one has not run yet
    assert len(await _jobs(db)) == 1


async def test_shorter_interval_takes_effect_without_waiting_out_the_old_one(
    db: Database, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    slow = make_worker({})
    slow.scheduler.register("tick", 3600, "tick")
    await slow.scheduler.run_due()
    fast = _ticking_worker(make_worker, [])
    await fast.scheduler.run_due()
    frozen_clock.advance(INTERVAL)
    assert await fast.scheduler.run_due() == ["tick"]
    async with db.session() as session:
        task = await session.get(PeriodicTask, "tick")
    assert task is not None
    assert task.interval_seconds == INTERVAL


async def test_started_worker_fires_a_task_registered_to_start_now(
    make_worker: MakeWorker,
) -> None:
    ran = asyncio.Event()

    async def tick(job: Job) -> None:
        ran.set()

    worker = make_worker({"tick": JobType(run=tick)})
    worker.scheduler.register("tick", 3600, "tick", start_now=True)
    assert await worker.start()
    try:
        await asyncio.wait_for(ran.wait(), timeout=5)
    finally:
        await worker.stop()


async def test_sqlite_runs_one_worker_and_a_second_one_is_refused(
    db: Database, make_worker: MakeWorker
) -> None:
    first, second = make_worker({}), make_worker({})
    assert await first.start()
    try:
        started = await second.start()
        if db.is_sqlite:
            assert not started
            assert not second.running
            assert first.lock is not None
            assert first.owner in first.lock.holder()
        else:
            assert started  # PostgreSQL: any number of workers share the queue
            await second.stop()
    finally:
        await first.stop()
    assert await second.start()  # the lock died with the first worker
    await second.stop()


async def test_api_whose_worker_is_refused_still_serves(
    settings: Settings, db: Database, make_worker: MakeWorker
) -> None:
    if not db.is_sqlite:
        pytest.skip("the single-worker lock exists only on SQLite")
    holder = make_worker({})
    assert await holder.start()
    try:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            assert not app.state.worker.running
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                response = await http.get("/health/live")
            assert response.status_code == 200
    finally:
        await holder.stop()
