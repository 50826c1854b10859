"""Query filters and response bodies of the dead-letter admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pinelab.api.schemas import QueryFilters
from pinelab.jobs.dead_letters import DeadLetterRecord, public_payload
from pinelab.jobs.models import DeadLetter


class DeadLetterFilters(QueryFilters):
    """Which dead letters to list."""

    kind: str | None = Field(None, max_length=48, description="Only jobs of this kind")
    unresolved_only: bool = Field(True, description="Hide replayed and discarded dead letters")


class JobAttemptRead(BaseModel):
    """One run of a job and how it ended."""

    model_config = ConfigDict(from_attributes=True)

    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: Literal["succeeded", "retrying", "dead"]
    error_class: str | None
    message: str | None


class DeadLetterRead(BaseModel):
    """A job that was given up, and what an admin decided about it."""

    id: int
    job_id: int | None
    kind: str
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    error_class: str | None
    user_id: int | None
    strategy_id: int | None
    created_at: datetime
    resolved_at: datetime | None
    resolution: Literal["replayed", "discarded"] | None
    resolved_by: int | None

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterRead:
        """Return the body of a dead letter, with email bodies hidden."""
        return cls(
            id=letter.id,
            job_id=letter.job_id,
            kind=letter.kind,
            payload=public_payload(letter.payload),
            attempts=letter.attempts,
            last_error=letter.last_error,
            error_class=letter.error_class,
            user_id=letter.user_id,
            strategy_id=letter.strategy_id,
            created_at=letter.created_at,
            resolved_at=letter.resolved_at,
            resolution=letter.resolution,
            resolved_by=letter.resolved_by,
        )


class DeadLetterDetail(DeadLetterRead):
    """A dead letter with every recorded attempt of its job, oldest first."""

    job_attempts: list[JobAttemptRead]

    @classmethod
    def of_record(cls, record: DeadLetterRecord) -> DeadLetterDetail:
        """Return the body of a dead letter and its attempts."""
        return cls(
            **DeadLetterRead.of(record.letter).model_dump(),
            job_attempts=[JobAttemptRead.model_validate(a) for a in record.attempts],
        )


class ReplayResult(BaseModel):
    """A replayed dead letter and the job now queued for it."""

    dead_letter: DeadLetterRead
    job_id: int
