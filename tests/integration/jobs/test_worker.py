"""The worker: woken at once, drains what is due, retries the temporary, buries the permanent."""

from __future__ import annotations

import asyncio

import pytest

from pinelab.brokers.exceptions import BrokerUnavailable, InvalidOrder, RateLimited
from pinelab.clock import FrozenClock
from pinelab.db import Database
from pinelab.errors import BusinessLogicError, PermanentError, RetryableError
from pinelab.jobs import queue
from pinelab.jobs import worker as worker_module
from pinelab.jobs.models import Job
from pinelab.jobs.retry import RetryPolicy
from pinelab.jobs.worker import JobType, Worker
from tests.factories import enqueue_job, stored_job
from tests.integration.jobs.conftest import MakeWorker
from tests.integration.jobs.support import Recorder, drain
from tests.waiting import eventually


async def _idle(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start `worker` with no safety poll in reach and wait until every loop found nothing."""
    empty_claims = 0
    claim = queue.claim

    async def counted(*args: object, **kwargs: object) -> Job | None:
        nonlocal empty_claims
        job = await claim(*args, **kwargs)  # type: ignore[arg-type]
        empty_claims += job is None
        return job

    async def all_idle() -> bool:
        return empty_claims >= worker.concurrency

    monkeypatch.setattr(queue, "claim", counted)
    monkeypatch.setattr(worker_module, "POLL_SECONDS", 60.0)
    assert await worker.start()
    await eventually(all_idle)


async def test_woken_worker_runs_a_new_job_without_waiting_for_a_poll(
    db: Database, make_worker: MakeWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    worker = make_worker({"ok": recorder.job_type})
    await _idle(worker, monkeypatch)
    job_id = await enqueue_job(db, "ok")
    worker.wake()
    await asyncio.wait_for(recorder.ran.wait(), timeout=5)  # far below the 60 s poll

    async def done() -> bool:
        return (await stored_job(db, job_id)).status == queue.DONE

    await eventually(done)


async def test_one_wake_drains_every_due_job(
    db: Database, make_worker: MakeWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    worker = make_worker({"ok": recorder.job_type})
    await _idle(worker, monkeypatch)
    job_ids = [await enqueue_job(db, "ok") for _ in range(5)]
    worker.wake()

    async def all_ran() -> bool:
        return sorted(recorder.runs) == job_ids

    await eventually(all_ran)


async def test_temporary_failure_is_retried_until_it_succeeds(
    db: Database, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    recorder = Recorder(failures=2, error=BrokerUnavailable)
    worker = make_worker({"flaky": recorder.job_type})
    job_id = await enqueue_job(db, "flaky")
    await drain(worker, frozen_clock)
    job = await stored_job(db, job_id)
    assert (job.status, job.attempts) == (queue.DONE, 3)
    assert len(recorder.runs) == 3


async def test_retry_waits_as_long_as_the_error_asks(
    db: Database, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    recorder = Recorder(failures=1, error=lambda message: RateLimited(message, retry_after=30))
    patient = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=600)
    worker = make_worker({"throttled": JobType(run=recorder, policy=patient)})
    job_id = await enqueue_job(db, "throttled")
    assert await worker.run_once()
    frozen_clock.advance(29)
    assert not await worker.run_once()  # Retry-After is a floor under the jittered backoff
    frozen_clock.advance(2)
    assert await worker.run_once()
    assert (await stored_job(db, job_id)).status == queue.DONE


@pytest.mark.parametrize(
    "error",
    [
        InvalidOrder("quantity must be positive"),
        PermanentError("quantity must be positive"),
        BusinessLogicError("quantity must be positive"),
    ],
)
async def test_permanent_failure_is_buried_at_once_and_reported(
    db: Database, make_worker: MakeWorker, error: Exception
) -> None:
    buried: list[tuple[int, str]] = []

    async def refuse(job: Job) -> None:
        raise error

    async def on_dead(job: Job, reason: str) -> None:
        buried.append((job.id, reason))

    worker = make_worker({"refuse": JobType(run=refuse, on_dead=on_dead)})
    job_id = await enqueue_job(db, "refuse")
    assert await worker.run_once()
    job = await stored_job(db, job_id)
    assert (job.status, job.attempts) == (queue.DEAD, 1)
    assert buried == [(job_id, f"{type(error).__name__}: quantity must be positive")]


@pytest.mark.parametrize("error", [BrokerUnavailable, RetryableError, ValueError])
async def test_job_that_keeps_failing_is_buried_after_max_attempts(
    db: Database, make_worker: MakeWorker, frozen_clock: FrozenClock, error: type[Exception]
) -> None:
    recorder = Recorder(failures=100, error=error)
    worker = make_worker({"down": recorder.job_type})
    job_id = await enqueue_job(db, "down")
    await drain(worker, frozen_clock)
    job = await stored_job(db, job_id)
    assert (job.status, job.attempts) == (queue.DEAD, 3)
    assert "failure 3" in (job.last_error or "")


async def test_unknown_job_kind_is_buried(db: Database, make_worker: MakeWorker) -> None:
    worker = make_worker({})
    job_id = await enqueue_job(db, "mystery")
    assert await worker.run_once()
    job = await stored_job(db, job_id)
    assert job.status == queue.DEAD
    assert job.last_error == "unknown job kind 'mystery'"


async def test_no_due_job_means_run_once_finds_nothing(make_worker: MakeWorker) -> None:
    assert not await make_worker({}).run_once()
