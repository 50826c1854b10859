"""Dead letters: jobs given up, for admins to inspect, replay or discard; their owners are told.

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

from pinelab.accounts.models import User
from pinelab.clock import now
from pinelab.config import Settings
from pinelab.errors import ConflictError
from pinelab.jobs import queue
from pinelab.jobs.exceptions import DeadLetterNotFound, DeadLetterResolved
from pinelab.jobs.models import DeadLetter, Job, JobAttempt
from pinelab.notify.email import SEND_EMAIL, enqueue_email, render_email
from pinelab.signals.queries import fetch_page
from pinelab.strategies.models import Strategy

REPLAYED = "replayed"
DISCARDED = "discarded"
REDACTED = "[redacted]"

ReplayHook = Callable[[AsyncSession, Job], Awaitable[None]]


@dataclass(frozen=True)
class DeadLetterRecord:
    """A dead letter with every recorded attempt of its job (oldest first)."""

    letter: DeadLetter
    attempts: list[JobAttempt]


def public_payload(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Return a payload fit to show an admin: email bodies (which may hold links) are hidden."""
    if kind != SEND_EMAIL:
        return payload
    return {key: REDACTED if key in ("text", "html") else value for key, value in payload.items()}


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
    return await fetch_page(session, query, DeadLetter.id, limit=limit, before_id=before_id)


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
        job = await queue.enqueue(session, letter.kind, letter.payload, max_attempts=max_attempts)
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


async def notify_owner(session: AsyncSession, letter: DeadLetter, *, settings: Settings) -> bool:
    """Queue an email telling the strategy's owner that its work was given up."""
    if letter.kind == SEND_EMAIL or letter.strategy_id is None:
        return False  # a failed email must not beget another email
    strategy = await session.get(Strategy, letter.strategy_id)
    owner = await session.get(User, strategy.user_id) if strategy is not None else None
    if strategy is None or owner is None or not owner.is_active:
        return False
    email = render_email(
        "dead_letter",
        to=owner.email,
        subject=f"PineLab gave up on work for strategy {strategy.name}",
        strategy_name=strategy.name,
        strategy_id=strategy.id,
        kind=letter.kind,
        signal_id=letter.payload.get("signal_id"),
        attempts=letter.attempts,
        error=letter.last_error or "",
        created_at=letter.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        dead_letter_id=letter.id,
        base_url=settings.base_url,
    )
    await enqueue_email(session, email, max_attempts=settings.max_retry_attempts)
    return True


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
