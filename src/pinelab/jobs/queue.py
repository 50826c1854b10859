"""The durable job queue: enqueue in the caller's transaction, claim with a lease, finish or retry.

On PostgreSQL jobs are claimed with `FOR UPDATE SKIP LOCKED`, so any number of workers on any
machines share the queue; on SQLite the single writer makes the claim atomic. A job whose lease
expires (its worker died) is claimed again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs.models import Job

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
DEAD = "dead"


def job_values(kind: str, payload: dict[str, Any], *, max_attempts: int) -> dict[str, Any]:
    """Return the column values of a new job, for bulk inserts."""
    moment = now()
    return {
        "kind": kind,
        "payload": payload,
        "status": QUEUED,
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_at": moment,
        "created_at": moment,
        "updated_at": moment,
    }


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    max_attempts: int,
    delay: float = 0,
) -> Job:
    """Add a job in the caller's transaction, so it commits with the work that needs it."""
    job = Job(**job_values(kind, payload, max_attempts=max_attempts))
    if delay:
        job.run_at = job.run_at + timedelta(seconds=delay)
    session.add(job)
    await session.flush()
    return job


async def claim(db: Database, *, owner: str, lease_seconds: float) -> Job | None:
    """Take the next due job (or one whose lease expired) and lease it to `owner`."""
    moment = now()
    due = or_(
        and_(Job.status == QUEUED, Job.run_at <= moment),
        and_(Job.status == RUNNING, Job.lease_expires_at < moment),
    )
    candidate = select(Job.id).where(due).order_by(Job.run_at, Job.id).limit(1)
    if not db.is_sqlite:
        candidate = candidate.with_for_update(skip_locked=True)
    statement = (
        update(Job)
        .where(Job.id == candidate.scalar_subquery())
        .values(
            status=RUNNING,
            lease_owner=owner,
            lease_expires_at=moment + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
            updated_at=moment,
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    async with db.transaction() as session:
        return (await session.execute(statement)).scalar_one_or_none()


async def extend_lease(db: Database, job: Job, *, owner: str, lease_seconds: float) -> bool:
    """Push the lease of a running job further out; False when it is no longer ours."""
    return await _update_owned(
        db, job, owner, lease_expires_at=now() + timedelta(seconds=lease_seconds)
    )


async def complete(db: Database, job: Job, *, owner: str) -> bool:
    """Mark a job done; False when the lease was lost to another worker."""
    moment = now()
    return await _update_owned(
        db, job, owner, status=DONE, finished_at=moment, lease_owner=None, lease_expires_at=None
    )


async def retry_later(db: Database, job: Job, *, owner: str, delay: float, error: str) -> bool:
    """Put a failed job back in the queue to run after `delay` seconds."""
    return await _update_owned(
        db,
        job,
        owner,
        status=QUEUED,
        run_at=now() + timedelta(seconds=delay),
        last_error=error[:2000],
        lease_owner=None,
        lease_expires_at=None,
    )


async def bury(db: Database, job: Job, *, owner: str, error: str) -> bool:
    """Stop trying a job: it failed permanently or ran out of attempts."""
    return await _update_owned(
        db,
        job,
        owner,
        status=DEAD,
        last_error=error[:2000],
        finished_at=now(),
        lease_owner=None,
        lease_expires_at=None,
    )


async def _update_owned(db: Database, job: Job, owner: str, **values: Any) -> bool:
    statement = (
        update(Job)
        .where(Job.id == job.id, Job.lease_owner == owner, Job.status == RUNNING)
        .values(updated_at=now(), **values)
        .execution_options(synchronize_session=False)
    )
    async with db.transaction() as session:
        result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]
