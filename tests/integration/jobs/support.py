"""Helpers the jobs tests share: recording handlers and draining a worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from pinelab.clock import FrozenClock
from pinelab.jobs.models import Job
from pinelab.jobs.worker import JobType, Worker


@dataclass
class Recorder:
    """A job handler that records the ids it ran and fails its first `failures` runs."""

    failures: int = 0
    error: Callable[[str], Exception] = RuntimeError
    runs: list[int] = field(default_factory=list)
    ran: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, job: Job) -> None:
        self.runs.append(job.id)
        if len(self.runs) <= self.failures:
            raise self.error(f"503 (failure {len(self.runs)})")
        self.ran.set()

    @property
    def job_type(self) -> JobType:
        """This handler as a job type with the default policy."""
        return JobType(run=self)


async def drain(worker: Worker, clock: FrozenClock) -> None:
    """Run jobs until none is due, moving the clock past every backoff."""
    idle = 0
    while idle < 2:
        if await worker.run_once():
            idle = 0
        else:
            idle += 1
            clock.advance(60)
