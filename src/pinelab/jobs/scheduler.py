"""Periodic jobs, run once per interval across the whole cluster.

Each registered task has a `periodic_task` row. A scheduler fires a task by moving its
`next_run_at` forward with one conditional UPDATE (`... WHERE next_run_at <= now`): exactly one
scheduler in the cluster wins, and it enqueues the task's job in that same transaction.
A task whose previous job is still queued or running is not enqueued again (no pile-up).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs import queue
from pinelab.jobs.models import Job, PeriodicTask

log = structlog.get_logger(__name__)

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class PeriodicJob:
    """A job kind to enqueue every `interval_seconds`."""

    name: str
    interval_seconds: float
    job_kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    start_now: bool = False


class Scheduler:
    """Fires registered periodic jobs when due; safe to run in every worker process."""

    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        max_attempts: int,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.owner = owner
        self.max_attempts = max_attempts
        self.on_enqueued = on_enqueued
        self.tasks: dict[str, PeriodicJob] = {}
        self._stored: set[str] = set()

    def register(
        self,
        name: str,
        interval_seconds: float,
        job_kind: str,
        payload: dict[str, Any] | None = None,
        *,
        start_now: bool = False,
    ) -> None:
        """Run a job of `job_kind` every `interval_seconds` (first now, or after one interval)."""
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.tasks[name] = PeriodicJob(
            name, float(interval_seconds), job_kind, payload or {}, start_now=start_now
        )
        self._stored.discard(name)

    async def run_due(self) -> list[str]:
        """Fire every task that is due and this scheduler wins; return their names."""
        await self._store_new_tasks()
        fired = [task.name for task in self.tasks.values() if await self._fire(task)]
        if fired and self.on_enqueued is not None:
            self.on_enqueued()
        return fired

    async def run(self, stopping: asyncio.Event, *, poll_seconds: float = POLL_SECONDS) -> None:
        """Fire due tasks until `stopping` is set."""
        while not stopping.is_set():
            try:
                await self.run_due()
            except Exception:
                log.exception("scheduler_failed", owner=self.owner)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=poll_seconds)

    async def _fire(self, task: PeriodicJob) -> bool:
        moment = now()
        claim = (
            update(PeriodicTask)
            .where(PeriodicTask.name == task.name, PeriodicTask.next_run_at <= moment)
            .values(
                next_run_at=moment + timedelta(seconds=task.interval_seconds),
                last_run_at=moment,
                last_owner=self.owner[:64],
            )
            .execution_options(synchronize_session=False)
        )
        async with self.db.transaction() as session:
            if not (await session.execute(claim)).rowcount:  # type: ignore[attr-defined]
                return False
            if await _pending(session, task.job_kind):
                log.info("periodic_job_still_pending", task=task.name, kind=task.job_kind)
                return False
            await queue.enqueue(
                session, task.job_kind, task.payload, max_attempts=self.max_attempts
            )
        log.info("periodic_job_enqueued", task=task.name, kind=task.job_kind)
        return True

    async def _store_new_tasks(self) -> None:
        new = [task for name, task in self.tasks.items() if name not in self._stored]
        if not new:
            return
        moment = now()
        insert = sqlite_insert if self.db.is_sqlite else postgresql_insert
        async with self.db.transaction() as session:
            for task in new:
                first = (
                    moment if task.start_now else moment + timedelta(seconds=task.interval_seconds)
                )
                values = {
                    "name": task.name,
                    "interval_seconds": task.interval_seconds,
                    "next_run_at": first,
                }
                await session.execute(insert(PeriodicTask).values(values).on_conflict_do_nothing())
                await _apply_interval(
                    session, task, moment + timedelta(seconds=task.interval_seconds)
                )
        self._stored.update(task.name for task in new)


async def _apply_interval(session: AsyncSession, task: PeriodicJob, latest: datetime) -> None:
    """Adopt a changed interval: store it, and never wait longer than one new interval."""
    named = PeriodicTask.name == task.name
    await session.execute(
        update(PeriodicTask)
        .where(named, PeriodicTask.interval_seconds != task.interval_seconds)
        .values(interval_seconds=task.interval_seconds)
    )
    await session.execute(
        update(PeriodicTask)
        .where(named, PeriodicTask.next_run_at > latest)
        .values(next_run_at=latest)
    )


async def _pending(session: AsyncSession, kind: str) -> bool:
    query = select(exists().where(Job.kind == kind, Job.status.in_([queue.QUEUED, queue.RUNNING])))
    return bool(await session.scalar(query))
