"""`pinelab dead-letters`: inspect, replay and discard dead letters from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, TypeVar

import structlog
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.errors import BusinessLogicError
from pinelab.jobs import dead_letters
from pinelab.jobs.models import Job
from pinelab.jobs.schemas import DeadLetterDetail, DeadLetterRead

log = structlog.get_logger(__name__)

T = TypeVar("T")

dead_letters_app = typer.Typer(
    help="Inspect, replay and discard dead letters.", no_args_is_help=True
)

LetterId = Annotated[int, typer.Argument(help="Dead letter id", min=1)]


@dataclass(frozen=True)
class DeadLetterSetup:
    """What the commands need from the caller: the settings and each job kind's replay hook."""

    settings: Settings
    replay_hooks: Mapping[str, Callable[[AsyncSession, Job], Awaitable[None]]]


def _run(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database(settings.resolved_database_url)
        try:
            return await action(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except BusinessLogicError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None


def _setup(ctx: typer.Context) -> DeadLetterSetup:
    setup = ctx.obj
    if not isinstance(setup, DeadLetterSetup):
        raise RuntimeError("the dead-letters commands need their setup in the typer context")
    return setup


@dead_letters_app.command("list")
def list_command(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include resolved ones")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first")] = 50,
) -> None:
    """List dead letters, newest first."""

    async def fetch(db: Database) -> list[DeadLetterRead]:
        async with db.session() as session:
            letters, _ = await dead_letters.list_dead_letters(
                session, kind=kind, unresolved_only=not show_all, limit=limit
            )
        return [DeadLetterRead.of(letter) for letter in letters]

    for letter in _run(_setup(ctx).settings, fetch):
        state = letter.resolution or "unresolved"
        typer.echo(
            f"{letter.id}\t{letter.kind}\t{letter.created_at:%Y-%m-%d %H:%M:%S}\t"
            f"attempts={letter.attempts}\tstrategy={letter.strategy_id}\t{state}\t"
            f"{letter.last_error or ''}"
        )


@dead_letters_app.command("show")
def show_command(ctx: typer.Context, dead_letter_id: LetterId) -> None:
    """Show one dead letter with every attempt of its job, as JSON."""

    async def fetch(db: Database) -> DeadLetterDetail:
        async with db.session() as session:
            record = await dead_letters.get_dead_letter(session, dead_letter_id=dead_letter_id)
        return DeadLetterDetail.of_record(record)

    typer.echo(_run(_setup(ctx).settings, fetch).model_dump_json(indent=2))


@dead_letters_app.command("replay")
def replay_command(ctx: typer.Context, dead_letter_id: LetterId) -> None:
    """Queue a dead letter's job again with a fresh attempt budget."""
    setup = _setup(ctx)

    async def replay(db: Database) -> int:
        async with db.transaction() as session:
            _, job = await dead_letters.replay_dead_letter(
                session,
                dead_letter_id=dead_letter_id,
                resolved_by=None,
                hooks=setup.replay_hooks,
                max_attempts=setup.settings.max_retry_attempts,
            )
        return job.id

    job_id = _run(setup.settings, replay)
    log.info("dead_letter_replayed", dead_letter_id=dead_letter_id, job_id=job_id, via="cli")
    typer.echo(f"dead letter {dead_letter_id} replayed: job {job_id} queued")


@dead_letters_app.command("discard")
def discard_command(ctx: typer.Context, dead_letter_id: LetterId) -> None:
    """Give a dead letter up for good."""

    async def discard(db: Database) -> None:
        async with db.transaction() as session:
            await dead_letters.discard_dead_letter(
                session, dead_letter_id=dead_letter_id, resolved_by=None
            )

    _run(_setup(ctx).settings, discard)
    log.info("dead_letter_discarded", dead_letter_id=dead_letter_id, via="cli")
    typer.echo(f"dead letter {dead_letter_id} discarded")
