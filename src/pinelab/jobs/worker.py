"""The worker: claims jobs, runs their handler, retries what failed temporarily, buries the rest.

It is woken at once when work is committed (`wake`), and polls only as a safety net for jobs
scheduled later, jobs enqueued by other processes and expired leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from pinelab.brokers.exceptions import RetryableBrokerError
from pinelab.errors import BusinessLogicError
from pinelab.jobs import queue
from pinelab.jobs.models import Job
from pinelab.jobs.retry import RetryPolicy

if TYPE_CHECKING:
    from pinelab.api.context import AppContext

log = structlog.get_logger(__name__)

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class JobType:
    """How to run one kind of job, and what to do when it is given up."""

    run: Callable[[AppContext, Job], Awaitable[None]]
    on_dead: Callable[[AppContext, Job, str], Awaitable[None]] | None = None


class PermanentJobError(Exception):
    """A job that can never succeed; it is not retried."""


def _permanent(exc: BaseException) -> bool:
    from pinelab.brokers.exceptions import PermanentBrokerError

    return isinstance(exc, PermanentBrokerError | PermanentJobError | BusinessLogicError)


class Worker:
    """Runs jobs from the durable queue with `concurrency` parallel loops."""

    def __init__(self, context: AppContext, job_types: dict[str, JobType] | None = None) -> None:
        self.context = context
        settings = context.settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.policy = RetryPolicy(
            max_attempts=settings.max_retry_attempts,
            base_delay=settings.retry_base_delay_seconds,
            max_delay=settings.retry_max_delay_seconds,
        )
        self.lease_seconds = float(settings.job_lease_seconds)
        self.concurrency = settings.worker_concurrency
        self.job_types = job_types if job_types is not None else _default_job_types()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        """Tell the loops that work was just committed."""
        self._wake.set()

    async def start(self) -> None:
        """Start the loops."""
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"worker-{index}")
            for index in range(self.concurrency)
        ]
        log.info("worker_started", owner=self.owner, concurrency=self.concurrency)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop taking jobs and let running ones finish (their leases expire otherwise)."""
        if not self._tasks:
            return
        self._stopping.set()
        self._wake.set()
        _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        log.info("worker_stopped", owner=self.owner)

    async def run_once(self) -> bool:
        """Claim and run one due job; False when none was due."""
        job = await queue.claim(self.context.db, owner=self.owner, lease_seconds=self.lease_seconds)
        if job is None:
            return False
        await self._run(job)
        return True

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                worked = await self.run_once()
            except Exception:
                log.exception("worker_claim_failed")
                worked = False
            if not worked and not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=POLL_SECONDS)

    async def _run(self, job: Job) -> None:
        job_type = self.job_types.get(job.kind)
        db, owner = self.context.db, self.owner
        if job_type is None:
            await queue.bury(db, job, owner=owner, error=f"unknown job kind {job.kind!r}")
            return
        heartbeat = asyncio.create_task(self._keep_lease(job))
        try:
            await job_type.run(self.context, job)
        except Exception as exc:
            heartbeat.cancel()
            await self._failed(job, job_type, exc)
            return
        finally:
            heartbeat.cancel()
        await queue.complete(db, job, owner=owner)

    async def _failed(self, job: Job, job_type: JobType, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if not _permanent(exc):
            log.warning(
                "job_attempt_failed",
                job_id=job.id,
                kind=job.kind,
                attempt=job.attempts,
                error=error,
            )
        if _permanent(exc) or self.policy.exhausted(job.attempts):
            if not _permanent(exc) and not isinstance(exc, RetryableBrokerError):
                log.error("job_failed", job_id=job.id, kind=job.kind, exc_info=exc)
            buried = await queue.bury(self.context.db, job, owner=self.owner, error=error)
            if buried and job_type.on_dead is not None:
                await job_type.on_dead(self.context, job, error)
            return
        retry_after = exc.retry_after if isinstance(exc, RetryableBrokerError) else None
        delay = self.policy.delay(job.attempts, retry_after=retry_after)
        await queue.retry_later(self.context.db, job, owner=self.owner, delay=delay, error=error)

    async def _keep_lease(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await queue.extend_lease(
                self.context.db, job, owner=self.owner, lease_seconds=self.lease_seconds
            )


def _default_job_types() -> dict[str, JobType]:
    from pinelab.trading.execution import EXECUTE_SIGNAL, execute_signal_job, signal_job_dead

    return {EXECUTE_SIGNAL: JobType(run=execute_signal_job, on_dead=signal_job_dead)}
