"""Jobs run inline, in the transaction that claims them: one commit, all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from sqlalchemy import Connection, Table, func, insert, select

from pinelab.jobs import queue
from pinelab.jobs.models import Job, JobAttempt, PeriodicTask
from pinelab.jobs.worker import JobType, Worker
from pinelab.main import Services as AppContext  # bridged until the merge
from tests.factories import enqueue_job, stored_job

_PERIODIC = cast(Table, PeriodicTask.__table__)


class _ProcessDied(BaseException):
    """Stands for the process going away in the middle of a transaction."""


async def _attempts(context: AppContext, job_id: int) -> list[tuple[int, str, str | None]]:
    async with context.db.session() as session:
        rows = await session.execute(
            select(JobAttempt.attempt, JobAttempt.outcome, JobAttempt.error_class)
            .where(JobAttempt.job_id == job_id)
            .order_by(JobAttempt.id)
        )
    return [(row[0], row[1], row[2]) for row in rows]


async def _marks(context: AppContext) -> int:
    async with context.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(PeriodicTask)) or 0)


def _mark(connection: Connection, name: str) -> None:
    """Write a row in the caller's transaction: evidence of what an inline run committed."""
    values = {"name": name, "interval_seconds": 1.0, "next_run_at": func.now()}
    connection.execute(insert(_PERIODIC).values(values))


async def _never(_: AppContext, job: Job) -> None:
    raise AssertionError("the ordinary path must not run a job finished inline")


InlineRun = Callable[[AppContext, Connection, Job], Callable[[], None] | None]


def _worker(context: AppContext, inline: InlineRun, run: Any = _never) -> Worker:
    return Worker(context, {"inline": JobType(run=run, run_inline=inline)})


def _marking(after_commit: list[int]) -> InlineRun:
    """An inline run that writes a mark and, once committed, records its job's id."""

    def inline(_: AppContext, connection: Connection, job: Job) -> Callable[[], None]:
        _mark(connection, f"done-{job.id}")
        return lambda: after_commit.append(job.id)

    return inline


async def test_inline_job_is_claimed_run_and_completed_in_one_commit(
    context: AppContext, commits: list[str]
) -> None:
    after_commit: list[int] = []
    inline = _marking(after_commit)

    job_id = await enqueue_job(context.db, "inline")
    commits.clear()
    assert await _worker(context, inline).run_once()
    assert len(commits) == 1
    assert after_commit == [job_id]
    job = await stored_job(context.db, job_id)
    assert (job.status, job.attempts, job.lease_owner) == (queue.DONE, 1, None)
    assert await _attempts(context, job_id) == [(1, queue.SUCCEEDED, None)]
    assert await _marks(context) == 1


async def test_declined_inline_job_takes_the_ordinary_path(context: AppContext) -> None:
    ran: list[int] = []

    def decline(_: AppContext, connection: Connection, job: Job) -> None:
        return None

    async def run(_: AppContext, job: Job) -> None:
        ran.append(job.id)

    job_id = await enqueue_job(context.db, "inline")
    assert await _worker(context, decline, run).run_once()
    assert ran == [job_id]
    assert (await stored_job(context.db, job_id)).status == queue.DONE
    assert await _attempts(context, job_id) == [(1, queue.SUCCEEDED, None)]


async def test_inline_failure_rolls_back_its_writes_and_the_ordinary_path_records_it(
    context: AppContext,
) -> None:
    def crash(_: AppContext, connection: Connection, job: Job) -> None:
        _mark(connection, f"half-done-{job.id}")
        raise RuntimeError("died half way")

    async def fail(_: AppContext, job: Job) -> None:
        raise RuntimeError("died half way")

    job_id = await enqueue_job(context.db, "inline")
    assert await _worker(context, crash, fail).run_once()
    assert await _marks(context) == 0  # nothing of the inline attempt was committed
    job = await stored_job(context.db, job_id)
    # One attempt, counted once: the rolled-back claim did not count.
    assert (job.status, job.attempts) == (queue.QUEUED, 1)
    assert await _attempts(context, job_id) == [(1, queue.RETRYING, "RuntimeError")]


async def test_a_job_whose_inline_run_never_committed_is_claimed_again(
    context: AppContext,
) -> None:
    def interrupted(_: AppContext, connection: Connection, job: Job) -> None:
        _mark(connection, f"lost-{job.id}")
        raise _ProcessDied

    job_id = await enqueue_job(context.db, "inline")
    with pytest.raises(_ProcessDied):
        await _worker(context, interrupted).run_once()
    assert await _marks(context) == 0
    assert (await stored_job(context.db, job_id)).status == queue.QUEUED

    def finish(_: AppContext, connection: Connection, job: Job) -> Callable[[], None]:
        _mark(connection, f"done-{job.id}")
        return lambda: None

    assert await _worker(context, finish).run_once()
    assert (await stored_job(context.db, job_id)).status == queue.DONE
    assert await _marks(context) == 1


async def test_due_inline_jobs_run_together_in_one_commit_up_to_the_limit(
    context: AppContext, commits: list[str]
) -> None:
    after_commit: list[int] = []
    inline = _marking(after_commit)

    job_ids = [await enqueue_job(context.db, "inline") for _ in range(5)]
    worker = _worker(context, inline)
    commits.clear()
    assert await worker.run_once(limit=3)
    assert (len(commits), after_commit) == (1, job_ids[:3])
    assert await worker.run_once(limit=3)
    assert (len(commits), after_commit) == (2, job_ids)
    assert not await worker.run_once(limit=3)
    for job_id in job_ids:
        assert (await stored_job(context.db, job_id)).status == queue.DONE
        assert await _attempts(context, job_id) == [(1, queue.SUCCEEDED, None)]
    assert await _marks(context) == 5


async def test_a_job_failing_inline_in_a_batch_alone_takes_the_ordinary_path(
    context: AppContext,
) -> None:
    job_ids = [await enqueue_job(context.db, "inline") for _ in range(3)]
    failing = job_ids[1]

    def inline(_: AppContext, connection: Connection, job: Job) -> Callable[[], None]:
        _mark(connection, f"done-{job.id}")
        if job.id == failing:
            raise RuntimeError("died half way")
        return lambda: None

    ran: list[int] = []

    async def run(_: AppContext, job: Job) -> None:
        ran.append(job.id)

    worker = _worker(context, inline, run)
    assert await worker.run_once(limit=8)  # the batch is rolled back, then taken one by one
    assert ran == [failing]
    statuses = [(await stored_job(context.db, job_id)).status for job_id in job_ids]
    assert statuses == [queue.DONE, queue.DONE, queue.QUEUED]
    assert await worker.run_once(limit=8)
    assert (await stored_job(context.db, job_ids[2])).status == queue.DONE
    assert ran == [failing]
    assert await _marks(context) == 2  # the failing job's inline write was rolled back
    assert [len(await _attempts(context, job_id)) for job_id in job_ids] == [1, 1, 1]
