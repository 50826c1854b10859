"""The durable job queue: enqueue in the caller's transaction, claim with a lease, finish or retry.

On PostgreSQL jobs are claimed with `FOR UPDATE SKIP LOCKED`, so any number of workers on any
machines share the queue; on SQLite the single writer makes the claim atomic. A job whose lease
expires (its worker died) is claimed again. Finishing an attempt records it (`job_attempt`) in
the same transaction, and burying a job writes its dead letter in that transaction too; the
dead letter's owner is the one the job row carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, Update, and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs.models import DeadLetter, Job, JobAttempt

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
DEAD = "dead"

SUCCEEDED = "succeeded"
RETRYING = "retrying"

MAX_ERROR_CHARS = 2000

OnBuried = Callable[[AsyncSession, DeadLetter], Awaitable[object]]

_COMPLETE = (
    update(Job)
    .where(Job.id == bindparam("job_id"), Job.lease_owner == bindparam("owner"))
    .where(Job.status == RUNNING)
    .values(status=DONE, lease_owner=None, lease_expires_at=None)
    .values(finished_at=bindparam("b_finished_at"), updated_at=bindparam("b_updated_at"))
    .execution_options(synchronize_session=False)
)


@dataclass(frozen=True)
class Attempt:
    """One run of a job as the worker saw it: when it started and the error that ended it."""

    started_at: datetime
    error_class: str | None = None
    message: str | None = None


def job_values(
    kind: str,
    payload: dict[str, Any],
    *,
    max_attempts: int,
    moment: datetime | None = None,
    user_id: int | None = None,
    strategy_id: int | None = None,
) -> dict[str, Any]:
    """Return the column values of a new job, for bulk inserts (created `moment`, default now)."""
    moment = moment or now()
    return {
        "kind": kind,
        "payload": payload,
        "status": QUEUED,
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_at": moment,
        "created_at": moment,
        "updated_at": moment,
        "user_id": user_id,
        "strategy_id": strategy_id,
    }


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    max_attempts: int,
    delay: float = 0,
    user_id: int | None = None,
    strategy_id: int | None = None,
) -> Job:
    """Add a job in the caller's transaction, so it commits with the work that needs it."""
    values = job_values(
        kind, payload, max_attempts=max_attempts, user_id=user_id, strategy_id=strategy_id
    )
    job = Job(**values)
    if delay:
        job.run_at = job.run_at + timedelta(seconds=delay)
    session.add(job)
    await session.flush()
    return job


@cache
def _claim_statement(*, skip_locked: bool) -> Update:
    """Return the claim (built once per dialect): lease the next due job, or an expired lease."""
    moment: BindParameter[datetime] = bindparam("moment")
    due = or_(
        and_(Job.status == QUEUED, Job.run_at <= moment),
        and_(Job.status == RUNNING, Job.lease_expires_at < moment),
    )
    candidate = select(Job.id).where(due).order_by(Job.run_at, Job.id).limit(1)
    if skip_locked:
        candidate = candidate.with_for_update(skip_locked=True)
    return (
        update(Job)
        .where(Job.id == candidate.scalar_subquery())
        .values(
            status=RUNNING,
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("expires"),
            attempts=Job.attempts + 1,
            updated_at=moment,
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    )


async def claim(db: Database, *, owner: str, lease_seconds: float) -> Job | None:
    """Take the next due job (or one whose lease expired) and lease it to `owner`."""
    moment = now()
    statement = _claim_statement(skip_locked=not db.is_sqlite)
    lease = {"moment": moment, "owner": owner, "expires": moment + timedelta(seconds=lease_seconds)}
    return await db.run(lambda session: session.execute(statement, lease).scalar_one_or_none())


async def extend_lease(db: Database, job: Job, *, owner: str, lease_seconds: float) -> bool:
    """Push the lease of a running job further out; False when it is no longer ours."""
    async with db.transaction() as session:
        return await _update_owned(
            session, job, owner, lease_expires_at=now() + timedelta(seconds=lease_seconds)
        )


async def complete(db: Database, job: Job, *, owner: str, attempt: Attempt | None = None) -> bool:
    """Mark a job done and record its attempt; False when the lease was lost to another worker."""
    moment = now()
    finished = {"job_id": job.id, "owner": owner, "b_finished_at": moment, "b_updated_at": moment}

    def finish(session: Session) -> bool:
        done = bool(session.execute(_COMPLETE, finished).rowcount)  # type: ignore[attr-defined]
        if done and attempt is not None:
            _record_attempt(session, job, attempt, SUCCEEDED)
        return done

    return await db.run(finish)


async def retry_later(
    db: Database,
    job: Job,
    *,
    owner: str,
    delay: float,
    error: str,
    attempt: Attempt | None = None,
) -> bool:
    """Put a failed job back in the queue to run after `delay` seconds."""
    async with db.transaction() as session:
        queued = await _update_owned(
            session,
            job,
            owner,
            status=QUEUED,
            run_at=now() + timedelta(seconds=delay),
            last_error=error[:MAX_ERROR_CHARS],
            lease_owner=None,
            lease_expires_at=None,
        )
        if queued and attempt is not None:
            _record_attempt(session, job, attempt, RETRYING)
    return queued


async def release(db: Database, job: Job, *, owner: str) -> bool:
    """Give a running job back to the queue at once without counting the attempt (shutdown)."""
    async with db.transaction() as session:
        return await _update_owned(
            session,
            job,
            owner,
            status=QUEUED,
            run_at=now(),
            attempts=Job.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
        )


async def bury(
    db: Database,
    job: Job,
    *,
    owner: str,
    error: str,
    attempt: Attempt | None = None,
    on_buried: OnBuried | None = None,
) -> bool:
    """Stop trying a job and write its dead letter; `on_buried` runs in the same transaction."""
    async with db.transaction() as session:
        buried = await _update_owned(
            session,
            job,
            owner,
            status=DEAD,
            last_error=error[:MAX_ERROR_CHARS],
            finished_at=now(),
            lease_owner=None,
            lease_expires_at=None,
        )
        if not buried:
            return False
        if attempt is not None:
            _record_attempt(session, job, attempt, DEAD)
        letter = await _dead_letter(session, job, error, attempt.error_class if attempt else None)
        if on_buried is not None:
            await on_buried(session, letter)
    return True


async def requeue(session: AsyncSession, job_id: int) -> Job | None:
    """Put a dead job back in the queue with a fresh attempt budget; None when it is not dead."""
    moment = now()
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status == DEAD)
        .values(status=QUEUED, attempts=0, run_at=moment, finished_at=None, updated_at=moment)
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def delete_finished(session: AsyncSession, *, finished_before: datetime) -> int:
    """Delete done jobs (and their attempts) finished before a time; keep dead-lettered ones."""
    lettered = select(DeadLetter.job_id).where(DeadLetter.job_id.is_not(None))
    old = select(Job.id).where(
        Job.status == DONE, Job.finished_at < finished_before, Job.id.not_in(lettered)
    )
    await session.execute(delete(JobAttempt).where(JobAttempt.job_id.in_(old)))
    result = await session.execute(delete(Job).where(Job.id.in_(old)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _record_attempt(
    session: Session | AsyncSession, job: Job, attempt: Attempt, outcome: str
) -> None:
    session.add(
        JobAttempt(
            job_id=job.id,
            attempt=job.attempts,
            started_at=attempt.started_at,
            finished_at=now(),
            outcome=outcome,
            error_class=attempt.error_class,
            message=attempt.message[:MAX_ERROR_CHARS] if attempt.message else None,
        )
    )


async def _dead_letter(
    session: AsyncSession, job: Job, error: str, error_class: str | None
) -> DeadLetter:
    letter = DeadLetter(
        job_id=job.id,
        kind=job.kind,
        payload=job.payload,
        attempts=job.attempts,
        last_error=error[:MAX_ERROR_CHARS],
        error_class=error_class,
        user_id=job.user_id,
        strategy_id=job.strategy_id,
        created_at=now(),
    )
    session.add(letter)
    await session.flush()
    return letter


async def _update_owned(session: AsyncSession, job: Job, owner: str, **values: Any) -> bool:
    result = await session.execute(_owned_update(job, owner, values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _owned_update(job: Job, owner: str, values: dict[str, Any]) -> Update:
    return (
        update(Job)
        .where(Job.id == job.id, Job.lease_owner == owner, Job.status == RUNNING)
        .values(updated_at=now(), **values)
        .execution_options(synchronize_session=False)
    )
