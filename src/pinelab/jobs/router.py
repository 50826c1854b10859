"""Admin routes of the jobs package: list, inspect, replay and discard dead letters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from pinelab.accounts.dependencies import CurrentAdmin
from pinelab.api.deps import DatabaseDep, PageDep, SettingsDep
from pinelab.api.pagination import Page, next_cursor
from pinelab.jobs import dead_letters
from pinelab.jobs.dependencies import WorkerDep
from pinelab.jobs.schemas import DeadLetterDetail, DeadLetterFilters, DeadLetterRead, ReplayResult
from pinelab.signals.schemas import MAX_ID

router = APIRouter(prefix="/admin/dead-letters", tags=["admin: dead letters"])

DeadLetterId = Annotated[int, Path(ge=1, le=MAX_ID)]
Responses = dict[int | str, dict[str, Any]]

NOT_FOUND: Responses = {404: {"description": "No such dead letter"}}
RESOLVED: Responses = {409: {"description": "Already replayed or discarded"}}


@router.get("")
async def list_dead_letters(
    admin: CurrentAdmin,
    db: DatabaseDep,
    page: PageDep,
    filters: Annotated[DeadLetterFilters, Query()],
) -> Page[DeadLetterRead]:
    """List dead letters, newest first (unresolved only unless asked)."""
    async with db.session() as session:
        letters, next_id = await dead_letters.list_dead_letters(
            session,
            kind=filters.kind,
            unresolved_only=filters.unresolved_only,
            limit=page.limit,
            before_id=page.before_id,
        )
    return Page[DeadLetterRead](
        items=[DeadLetterRead.of(letter) for letter in letters],
        next_cursor=next_cursor(next_id),
    )


@router.get("/{dead_letter_id}", responses=NOT_FOUND)
async def get_dead_letter(
    dead_letter_id: DeadLetterId, admin: CurrentAdmin, db: DatabaseDep
) -> DeadLetterDetail:
    """Show one dead letter with every attempt of its job."""
    async with db.session() as session:
        record = await dead_letters.get_dead_letter(session, dead_letter_id=dead_letter_id)
    return DeadLetterDetail.of_record(record)


@router.post("/{dead_letter_id}/replay", responses={**NOT_FOUND, **RESOLVED})
async def replay_dead_letter(
    dead_letter_id: DeadLetterId,
    admin: CurrentAdmin,
    db: DatabaseDep,
    settings: SettingsDep,
    worker: WorkerDep,
) -> ReplayResult:
    """Queue the dead letter's job again with a fresh attempt budget."""
    async with db.transaction() as session:
        letter, job = await dead_letters.replay_dead_letter(
            session,
            dead_letter_id=dead_letter_id,
            resolved_by=admin.id,
            hooks=worker.replay_hooks,
            max_attempts=settings.max_retry_attempts,
        )
    worker.wake()
    return ReplayResult(dead_letter=DeadLetterRead.of(letter), job_id=job.id)


@router.post("/{dead_letter_id}/discard", responses={**NOT_FOUND, **RESOLVED})
async def discard_dead_letter(
    dead_letter_id: DeadLetterId, admin: CurrentAdmin, db: DatabaseDep
) -> DeadLetterRead:
    """Give the dead letter up for good; its job is never run again."""
    async with db.transaction() as session:
        letter = await dead_letters.discard_dead_letter(
            session, dead_letter_id=dead_letter_id, resolved_by=admin.id
        )
    return DeadLetterRead.of(letter)
