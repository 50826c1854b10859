"""The worker: woken at once, retries the temporary, buries the permanent."""

from __future__ import annotations

import asyncio
import time

import pytest

from pinelab.brokers.exceptions import BrokerUnavailable, InvalidOrder
from pinelab.config import Settings
from pinelab.jobs import queue
from pinelab.jobs import worker as worker_module
from pinelab.jobs.models import Job
from pinelab.jobs.worker import JobType, Worker
from pinelab.main import Services as AppContext  # bridged until the merge
from pinelab.main import build_services as build_context  # bridged until the merge
from tests.factories import enqueue_job, stored_job


@pytest.fixture
async def context(settings: Settings) -> AppContext:
    settings.retry_base_delay_seconds = 0.01
    settings.retry_max_delay_seconds = 0.02
    settings.max_retry_attempts = 3
    built = build_context(settings)
    yield built
    await built.close()


async def test_woken_worker_runs_a_new_job_without_waiting_for_a_poll(context: AppContext) -> None:
    ran = asyncio.Event()

    async def run(_: AppContext, job: Job) -> None:
        ran.set()

    worker = Worker(context, {"ok": JobType(run=run)})
    await worker.start()
    try:
        await asyncio.sleep(0.05)  # the loop is now idle, waiting on its wake event
        started = time.perf_counter()
        job_id = await enqueue_job(context.db, "ok")
        worker.wake()
        await asyncio.wait_for(ran.wait(), timeout=2)
        assert time.perf_counter() - started < 0.5  # far below the 1 s safety poll
    finally:
        await worker.stop()
    assert (await stored_job(context.db, job_id)).status == queue.DONE


async def test_temporary_failure_is_retried_until_it_succeeds(context: AppContext) -> None:
    calls = 0

    async def flaky(_: AppContext, job: Job) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise BrokerUnavailable("connection refused")

    worker = Worker(context, {"flaky": JobType(run=flaky)})
    job_id = await enqueue_job(context.db, "flaky")
    for _ in range(200):
        await worker.run_once()
        if (await stored_job(context.db, job_id)).status == queue.DONE:
            break
        await asyncio.sleep(0.01)
    job = await stored_job(context.db, job_id)
    assert job.status == queue.DONE
    assert job.attempts == 3
    assert calls == 3


async def test_permanent_failure_is_buried_at_once_and_reported(context: AppContext) -> None:
    buried: list[str] = []

    async def refuse(_: AppContext, job: Job) -> None:
        raise InvalidOrder("quantity must be positive")

    async def on_dead(_: AppContext, job: Job, error: str) -> None:
        buried.append(error)

    worker = Worker(context, {"refuse": JobType(run=refuse, on_dead=on_dead)})
    job_id = await enqueue_job(context.db, "refuse")
    assert await worker.run_once()
    job = await stored_job(context.db, job_id)
    assert job.status == queue.DEAD
    assert job.attempts == 1
    assert buried == ["InvalidOrder: quantity must be positive"]


async def test_job_that_keeps_failing_is_buried_after_max_attempts(context: AppContext) -> None:
    async def down(_: AppContext, job: Job) -> None:
        raise BrokerUnavailable("503")

    worker = Worker(context, {"down": JobType(run=down)})
    job_id = await enqueue_job(context.db, "down")
    for _ in range(300):
        await worker.run_once()
        if (await stored_job(context.db, job_id)).status == queue.DEAD:
            break
        await asyncio.sleep(0.01)
    job = await stored_job(context.db, job_id)
    assert job.status == queue.DEAD
    assert job.attempts == 3
    assert "503" in (job.last_error or "")


async def test_unknown_job_kind_is_buried(context: AppContext) -> None:
    worker = Worker(context, {})
    job_id = await enqueue_job(context.db, "mystery")
    assert await worker.run_once()
    assert (await stored_job(context.db, job_id)).status == queue.DEAD


async def _idle_worker_counting_claims(
    context: AppContext, monkeypatch: pytest.MonkeyPatch, ran: list[int]
) -> tuple[Worker, list[bool], list[int]]:
    """Start a worker whose loops are idle, then queue three jobs it has not been told of."""
    claims: list[bool] = []  # one entry per claim: whether it found a job
    claim_and_run = queue.claim_and_run

    async def counted(*args: object, **kwargs: object) -> list[queue.Claimed]:
        claimed = await claim_and_run(*args, **kwargs)  # type: ignore[arg-type]
        claims.append(bool(claimed))
        return claimed

    async def run(_: AppContext, job: Job) -> None:
        ran.append(job.id)

    monkeypatch.setattr(queue, "claim_and_run", counted)
    monkeypatch.setattr(worker_module, "POLL_SECONDS", 30.0)  # no safety poll in the test
    worker = Worker(context, {"ok": JobType(run=run)})
    await worker.start()
    await asyncio.sleep(0.1)  # the start's claims found nothing: every loop is idle
    claims.clear()
    job_ids = [await enqueue_job(context.db, "ok") for _ in range(3)]
    return worker, claims, job_ids


async def test_a_wake_with_a_count_claims_that_many_jobs_and_no_more(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []
    worker, claims, job_ids = await _idle_worker_counting_claims(context, monkeypatch, ran)
    try:
        worker.wake(3)
        await asyncio.sleep(0.3)
    finally:
        await worker.stop()
    assert sorted(ran) == job_ids
    assert claims == [True, True, True]  # no claim in vain after the third job


async def test_a_wake_without_a_count_claims_until_a_claim_finds_nothing(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []
    worker, claims, job_ids = await _idle_worker_counting_claims(context, monkeypatch, ran)
    try:
        worker.wake(1)  # an undercount: the other two wait for a wake or the poll
        await asyncio.sleep(0.3)
        assert len(ran) == 1
        worker.wake()
        await asyncio.sleep(0.3)
    finally:
        await worker.stop()
    assert sorted(ran) == job_ids
    assert claims.count(True) == 3
    assert claims[-1] is False
