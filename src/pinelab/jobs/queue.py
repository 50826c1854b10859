"""The durable job queue: enqueue in the caller's transaction, claim with a lease, finish or retry.

On PostgreSQL jobs are claimed with `FOR UPDATE SKIP LOCKED`, so any number of workers on any
machines share the queue; on SQLite the single writer makes the claim atomic. A job whose lease
expires (its worker died) is claimed again. Finishing an attempt records it (`job_attempt`) in
the same transaction, and burying a job writes its dead letter in that transaction too.

`claim_and_run` lets a job kind run inside the claiming transaction (an `Inline` handler): the
claim, the work and the completion then commit together, in one hop to the database, and a crash
rolls all three back, so the job is simply claimed again. A kind that cannot run that way, or
an inline run that raises, gets the job claimed (and leased) for the ordinary path instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

import structlog
from sqlalchemy import (
    Connection,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.accounts.models import User
from pinelab.clock import now
from pinelab.db import Database
from pinelab.db.base import UTCDateTime
from pinelab.jobs.models import DeadLetter, Job, JobAttempt
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
DEAD = "dead"

SUCCEEDED = "succeeded"
RETRYING = "retrying"

MAX_ERROR_CHARS = 2000

_OWNER_KEYS = ("signal_id", "strategy_id", "user_id")

OnBuried = Callable[[AsyncSession, DeadLetter], Awaitable[None]]
# Runs a claimed job in the claiming transaction; returns what to do after the commit, or None
# (having written nothing) when the job must take the ordinary path.
Inline = Callable[[Connection, Job], Callable[[], None] | None]

log = structlog.get_logger(__name__)

_JOB = cast(Table, Job.__table__)
_ATTEMPT = cast(Table, JobAttempt.__table__)
_INSERT_ATTEMPT = insert(_ATTEMPT)
# Completion is conditional on still holding the lease (SET columns from the parameters' keys).
_FINISH_OWNED = update(_JOB).where(
    _JOB.c.id == bindparam("b_id"),
    _JOB.c.lease_owner == bindparam("b_owner"),
    _JOB.c.status == RUNNING,
)


@cache
def _claim_statement(*, skip_locked: bool, by_id: bool) -> Update:
    """Build the claim: lease the next due job (or a given one) to an owner, returning it."""
    moment = bindparam("moment", type_=UTCDateTime())
    due = or_(
        and_(_JOB.c.status == QUEUED, _JOB.c.run_at <= moment),
        and_(_JOB.c.status == RUNNING, _JOB.c.lease_expires_at < moment),
    )
    candidate = select(_JOB.c.id).where(due)
    if by_id:
        candidate = candidate.where(_JOB.c.id == bindparam("job_id"))
    candidate = candidate.order_by(_JOB.c.run_at, _JOB.c.id).limit(1)
    if skip_locked:
        candidate = candidate.with_for_update(skip_locked=True)
    return (
        update(_JOB)
        .where(_JOB.c.id == candidate.scalar_subquery())
        .values(
            status=RUNNING,
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("lease_until", type_=UTCDateTime()),
            attempts=_JOB.c.attempts + 1,
            updated_at=moment,
        )
        .returning(*_JOB.c)
    )


@dataclass(frozen=True)
class Claimed:
    """A claimed job; `finished` is set when it ran and completed in the claiming transaction."""

    job: Job
    finished: Callable[[], None] | None = None


@dataclass(frozen=True)
class Attempt:
    """One run of a job as the worker saw it: when it started and the error that ended it."""

    started_at: datetime
    error_class: str | None = None
    message: str | None = None


def job_values(
    kind: str, payload: dict[str, Any], *, max_attempts: int, moment: datetime | None = None
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


async def claim(
    db: Database, *, owner: str, lease_seconds: float, job_id: int | None = None
) -> Job | None:
    """Take the next due job (or one whose lease expired) and lease it to `owner`.

    With `job_id`, take that job only, if it is due.
    """
    moment = now()

    def take(connection: Connection) -> Job | None:
        return _claim_in(connection, owner, lease_seconds, moment, job_id=job_id)

    return await db.run_transaction(take)


async def claim_and_run(
    db: Database,
    *,
    owner: str,
    lease_seconds: float,
    inline: Callable[[str], Inline | None],
    limit: int = 1,
) -> list[Claimed]:
    """Claim due jobs, up to `limit`, running and completing those with an inline handler.

    All of it is one transaction, so a backlog of inline jobs costs one commit per `limit`
    jobs. Claiming stops at the first job that has no inline handler or whose handler declines
    (it is returned for the ordinary path) and when no job is due. An inline run that raises is
    rolled back with the whole transaction: alone, its job is then claimed for the ordinary
    path, which runs it and records the attempt; in a batch, the batch's jobs are taken again
    one at a time, so that only the failing one leaves the inline path.
    """
    started = now()
    claimed: list[Job] = []

    def take_and_run(connection: Connection) -> list[Claimed]:
        done: list[Claimed] = []
        while len(done) < limit:
            job = _claim_in(connection, owner, lease_seconds, started)
            if job is None:
                break
            run = inline(job.kind)
            finished = None
            if run is not None:
                claimed.append(job)
                finished = run(connection, job)
            if finished is None:
                done.append(Claimed(job))
                break
            _finish_in(connection, job, owner, started)
            done.append(Claimed(job, finished))
        return done

    try:
        return await db.run_transaction(take_and_run)
    except Exception:
        if not claimed:
            raise
        log.warning(
            "inline_job_failed", job_id=claimed[-1].id, kind=claimed[-1].kind, exc_info=True
        )
    return await _after_inline_failure(db, claimed, owner, lease_seconds, inline)


async def _after_inline_failure(
    db: Database,
    claimed: list[Job],
    owner: str,
    lease_seconds: float,
    inline: Callable[[str], Inline | None],
) -> list[Claimed]:
    """Go on after a rolled-back inline run, so that only its job leaves the inline path."""
    if len(claimed) > 1:
        retried: list[Claimed] = []
        for _ in claimed:
            retried += await claim_and_run(
                db, owner=owner, lease_seconds=lease_seconds, inline=inline
            )
        return retried
    job = await claim(db, owner=owner, lease_seconds=lease_seconds, job_id=claimed[0].id)
    return [] if job is None else [Claimed(job)]


def _claim_in(
    connection: Connection,
    owner: str,
    lease_seconds: float,
    moment: datetime,
    *,
    job_id: int | None = None,
) -> Job | None:
    statement = _claim_statement(
        skip_locked=connection.dialect.name != "sqlite", by_id=job_id is not None
    )
    params = {
        "moment": moment,
        "owner": owner,
        "lease_until": moment + timedelta(seconds=lease_seconds),
        "job_id": job_id,
    }
    row = connection.execute(statement, params).mappings().first()
    return None if row is None else Job(**row)


def _finish_in(connection: Connection, job: Job, owner: str, started: datetime | None) -> bool:
    """Mark a job done and record its attempt (when it started); False when the lease was lost."""
    moment = now()
    values = {
        "b_id": job.id,
        "b_owner": owner,
        "status": DONE,
        "finished_at": moment,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": moment,
    }
    if not connection.execute(_FINISH_OWNED, values).rowcount:
        return False
    if started is None:
        return True
    attempt = {
        "job_id": job.id,
        "attempt": job.attempts,
        "started_at": started,
        "finished_at": moment,
        "outcome": SUCCEEDED,
        "error_class": None,
        "message": None,
    }
    connection.execute(_INSERT_ATTEMPT, attempt)
    return True


async def extend_lease(db: Database, job: Job, *, owner: str, lease_seconds: float) -> bool:
    """Push the lease of a running job further out; False when it is no longer ours."""
    async with db.transaction() as session:
        return await _update_owned(
            session, job, owner, lease_expires_at=now() + timedelta(seconds=lease_seconds)
        )


async def complete(db: Database, job: Job, *, owner: str, attempt: Attempt | None = None) -> bool:
    """Mark a job done; False when the lease was lost to another worker."""

    started = attempt.started_at if attempt is not None else None
    return await db.run_transaction(lambda connection: _finish_in(connection, job, owner, started))


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


def _record_attempt(session: AsyncSession, job: Job, attempt: Attempt, outcome: str) -> None:
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
    user_id, strategy_id = await _owner_of(session, job.payload)
    letter = DeadLetter(
        job_id=job.id,
        kind=job.kind,
        payload=job.payload,
        attempts=job.attempts,
        last_error=error[:MAX_ERROR_CHARS],
        error_class=error_class,
        user_id=user_id,
        strategy_id=strategy_id,
        created_at=now(),
    )
    session.add(letter)
    await session.flush()
    return letter


async def _owner_of(
    session: AsyncSession, payload: dict[str, Any]
) -> tuple[int | None, int | None]:
    """Return (user id, strategy id) of a job: from its signal, its strategy or its user."""
    signal_id, strategy_id, user_id = (payload.get(key) for key in _OWNER_KEYS)
    if _is_id(signal_id):
        query = select(Signal.user_id, Signal.strategy_id).where(Signal.id == signal_id)
    elif _is_id(strategy_id):
        query = select(Strategy.user_id, Strategy.id).where(Strategy.id == strategy_id)
    elif _is_id(user_id):
        user = await session.scalar(select(User.id).where(User.id == user_id))
        return user, None
    else:
        return None, None
    row = (await session.execute(query)).one_or_none()
    return (row[0], row[1]) if row is not None else (None, None)


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


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
