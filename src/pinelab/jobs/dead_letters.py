"""Dead letters: jobs given up, for admins to inspect, replay or discard.

A dead letter is written by `queue.bury` in the transaction that buries its job. Replaying puts
the same job row back in the queue with a fresh attempt budget (its kind's `on_replay` hook
resets whatever the burial changed, in the same transaction); discarding only records the
decision. Idempotency of the work itself (client_order_id for orders) makes a replay safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.clock import now
from pinelab.errors import ConflictError
from pinelab.jobs import queue
from pinelab.jobs.exceptions import DeadLetterNotFound, DeadLetterResolved
from pinelab.jobs.models import DeadLetter, Job, JobAttempt

REPLAYED = "replayed"
DISCARDED = "discarded"
REDACTED = "[redacted]"
HIDDEN_KEYS = frozenset({"text", "html"})

ReplayHook = Callable[[AsyncSession, Job], Awaitable[None]]


@dataclass(frozen=True)
class DeadLetterRecord:
    """A dead letter with every recorded attempt of its job (oldest first)."""

    letter: DeadLetter
    attempts: list[JobAttempt]


def public_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Return a payload fit to show an admin: message bodies (which may hold links) are hidden."""
    return {key: REDACTED if key in HIDDEN_KEYS else value for key, value in payload.items()}


async def list_dead_letters(
    session: AsyncSession,
    *,
    kind: str | None = None,
    unresolved_only: bool = True,
    limit: int = 50,
    before_id: int | None = None,
) -> tuple[list[DeadLetter], int | None]:
    """Return a page of dead letters, newest first, and the id the next page follows."""
    query = select(DeadLetter)
    if kind is not None:
        query = query.where(DeadLetter.kind == kind)
    if unresolved_only:
        query = query.where(DeadLetter.resolved_at.is_(None))
    if before_id is not None:
        query = query.where(DeadLetter.id < before_id)
    query = query.order_by(DeadLetter.id.desc()).limit(limit + 1)
    letters = list((await session.scalars(query)).all())
    if len(letters) > limit:
        return letters[:limit], letters[limit - 1].id
    return letters, None


async def get_dead_letter(session: AsyncSession, *, dead_letter_id: int) -> DeadLetterRecord:
    """Return a dead letter with its job's attempts, or raise DeadLetterNotFound."""
    letter = await session.get(DeadLetter, dead_letter_id)
    if letter is None:
        raise DeadLetterNotFound(dead_letter_id)
    attempts: list[JobAttempt] = []
    if letter.job_id is not None:
        query = (
            select(JobAttempt)
            .where(JobAttempt.job_id == letter.job_id)
            .order_by(JobAttempt.started_at, JobAttempt.id)
        )
        attempts = list((await session.scalars(query)).all())
    return DeadLetterRecord(letter, attempts)


async def replay_dead_letter(
    session: AsyncSession,
    *,
    dead_letter_id: int,
    resolved_by: int | None,
    hooks: Mapping[str, ReplayHook],
    max_attempts: int,
) -> tuple[DeadLetter, Job]:
    """Queue a dead letter's job again with a fresh attempt budget; return the letter and job."""
    letter = await _unresolved(session, dead_letter_id)
    job = await queue.requeue(session, letter.job_id) if letter.job_id is not None else None
    if job is None:
        existing = await session.get(Job, letter.job_id) if letter.job_id is not None else None
        if existing is not None:
            raise ConflictError(f"Job {existing.id} is {existing.status}, not dead")
        job = await queue.enqueue(
            session,
            letter.kind,
            letter.payload,
            max_attempts=max_attempts,
            user_id=letter.user_id,
            strategy_id=letter.strategy_id,
        )
        letter.job_id = job.id
    hook = hooks.get(letter.kind)
    if hook is not None:
        await hook(session, job)
    _resolve(letter, REPLAYED, resolved_by)
    await session.flush()
    return letter, job


async def discard_dead_letter(
    session: AsyncSession, *, dead_letter_id: int, resolved_by: int | None
) -> DeadLetter:
    """Record that a dead letter will not be retried."""
    letter = await _unresolved(session, dead_letter_id)
    _resolve(letter, DISCARDED, resolved_by)
    await session.flush()
    return letter


async def _unresolved(session: AsyncSession, dead_letter_id: int) -> DeadLetter:
    query = select(DeadLetter).where(DeadLetter.id == dead_letter_id).with_for_update()
    letter = (await session.scalars(query)).one_or_none()
    if letter is None:
        raise DeadLetterNotFound(dead_letter_id)
    if letter.resolved_at is not None:
        raise DeadLetterResolved(dead_letter_id, letter.resolution)
    return letter


def _resolve(letter: DeadLetter, resolution: str, resolved_by: int | None) -> None:
    letter.resolution = resolution
    letter.resolved_at = now()
    letter.resolved_by = resolved_by
