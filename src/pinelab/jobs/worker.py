"""The worker: claims jobs, runs their handler, retries what failed temporarily, buries the rest.

Handlers are registered by kind (`JobType`); each takes the claimed `Job` and nothing else, its
dependencies bound by whoever registered it. The worker is woken when work is committed (`wake`)
and polls once a second only as a safety net for jobs scheduled later, jobs enqueued by other
processes and expired leases. Every attempt is recorded; a buried job leaves a dead letter
(`on_dead_letter` runs in that transaction). The worker also runs the periodic scheduler. On
SQLite only the process holding the worker lock runs any of this.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.clock import now
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.errors import BusinessLogicError, PermanentError, RetryableError
from pinelab.jobs import queue
from pinelab.jobs.dead_letters import ReplayHook
from pinelab.jobs.lock import LOCK_FILE, WorkerLock
from pinelab.jobs.models import DeadLetter, Job
from pinelab.jobs.retry import RetryPolicy
from pinelab.jobs.scheduler import Scheduler
from pinelab.ops.metrics import Metrics

__all__ = ["JobType", "Worker"]

log = structlog.get_logger(__name__)

POLL_SECONDS = 1.0

OnDeadLetter = Callable[[AsyncSession, DeadLetter], Awaitable[object]]


@dataclass(frozen=True)
class JobType:
    """How to run one kind of job, what to do when it is given up or replayed, how to retry it.

    `run` raises to fail the attempt: a `RetryableError` (or any unexpected error) is retried
    with backoff, a `PermanentError` or `BusinessLogicError` is given up at once. `on_dead` runs
    after the burial, in its own transaction; `on_replay` runs inside the replay's transaction.
    """

    run: Callable[[Job], Awaitable[None]]
    on_dead: Callable[[Job, str], Awaitable[None]] | None = None
    on_replay: ReplayHook | None = None
    policy: RetryPolicy | None = None


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, PermanentError | BusinessLogicError)


class Worker:
    """Runs jobs from the durable queue with `worker_concurrency` loops, and the scheduler."""

    def __init__(
        self,
        db: Database,
        job_types: dict[str, JobType],
        *,
        settings: Settings,
        metrics: Metrics,
        on_dead_letter: OnDeadLetter | None = None,
    ) -> None:
        self.db = db
        self.job_types = dict(job_types)
        self.metrics = metrics
        self.on_dead_letter = on_dead_letter
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.policy = RetryPolicy(
            max_attempts=settings.max_retry_attempts,
            base_delay=settings.retry_base_delay_seconds,
            max_delay=settings.retry_max_delay_seconds,
        )
        self.lease_seconds = float(settings.job_lease_seconds)
        self.concurrency = settings.worker_concurrency
        self.scheduler = Scheduler(
            db, owner=self.owner, max_attempts=settings.max_retry_attempts, on_enqueued=self.wake
        )
        self.lock = WorkerLock(settings.data_dir / LOCK_FILE) if db.is_sqlite else None
        # Idle loops wait on their own future, so a wake rouses one loop, not all of them.
        # `_missed` keeps a wake that found every loop busy: the next loop to find nothing due
        # looks once more instead of going idle.
        self._idle: collections.deque[asyncio.Future[None]] = collections.deque()
        self._missed = False
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        """Tell whether the loops are running in this process."""
        return bool(self._tasks)

    @property
    def replay_hooks(self) -> dict[str, ReplayHook]:
        """Return each job kind's hook for replaying its dead letters."""
        return {kind: t.on_replay for kind, t in self.job_types.items() if t.on_replay}

    def wake(self) -> None:
        """Tell the loops that work was just committed: one idle loop looks for it now."""
        if not self._rouse_one():
            self._missed = True

    def _rouse_one(self) -> bool:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False

    async def start(self) -> bool:
        """Start the loops and the scheduler; False when another process runs SQLite's worker."""
        if self.lock is not None and not self.lock.acquire(self.owner):
            log.warning(
                "worker_not_started",
                reason="SQLite allows one worker; another process holds the worker lock",
                lock=str(self.lock.path),
                holder=self.lock.holder(),
            )
            return False
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(self.concurrency)]
        self._tasks.append(asyncio.create_task(self.scheduler.run(self._stopping)))
        log.info("worker_started", owner=self.owner, concurrency=self.concurrency)
        return True

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop taking jobs and let running ones finish (their leases expire otherwise)."""
        if not self._tasks:
            return
        self._stopping.set()
        while self._rouse_one():
            pass
        _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        if self.lock is not None:
            self.lock.release()
        log.info("worker_stopped", owner=self.owner)

    async def run_once(self) -> bool:
        """Claim and run one due job; False when none was due."""
        job = await queue.claim(self.db, owner=self.owner, lease_seconds=self.lease_seconds)
        if job is None:
            return False
        self._rouse_one()  # there may be more: an idle loop takes the next while this one runs
        await self._run(job)
        return True

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            self._missed = False
            try:
                worked = await self.run_once()
            except Exception:
                log.exception("worker_claim_failed")
                worked = False
            if worked or self._missed or self._stopping.is_set():
                continue
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await asyncio.wait_for(waiter, timeout=POLL_SECONDS)
            except TimeoutError:
                pass  # the safety poll
            finally:
                if waiter in self._idle:
                    self._idle.remove(waiter)

    async def _run(self, job: Job) -> None:
        started = now()
        job_type = self.job_types.get(job.kind)
        if job_type is None:
            error = f"unknown job kind {job.kind!r}"
            await self._bury(job, error, queue.Attempt(started, "UnknownJobKind", error))
            return
        heartbeat = asyncio.create_task(self._keep_lease(job))
        try:
            await job_type.run(job)
        except asyncio.CancelledError:
            await asyncio.shield(queue.release(self.db, job, owner=self.owner))
            raise
        except Exception as exc:
            heartbeat.cancel()
            await self._failed(job, job_type, exc, started)
            return
        finally:
            heartbeat.cancel()
        await queue.complete(self.db, job, owner=self.owner, attempt=queue.Attempt(started))

    async def _failed(self, job: Job, job_type: JobType, exc: Exception, started: datetime) -> None:
        error = f"{type(exc).__name__}: {exc}"
        attempt = queue.Attempt(started, type(exc).__name__, str(exc))
        permanent = _permanent(exc)
        # A kind's own policy sets its budget; otherwise the budget stored when it was enqueued.
        policy = job_type.policy or self.policy
        budget = policy.max_attempts if job_type.policy else job.max_attempts
        if not permanent:
            log.warning(
                "job_attempt_failed",
                job_id=job.id,
                kind=job.kind,
                attempt=job.attempts,
                error=error,
            )
        if permanent or job.attempts >= budget:
            if not permanent and not isinstance(exc, RetryableError):
                log.error("job_failed", job_id=job.id, kind=job.kind, exc_info=exc)
            if await self._bury(job, error, attempt) and job_type.on_dead is not None:
                await job_type.on_dead(job, error)
            return
        self.metrics.job_retried(job.kind)
        await queue.retry_later(
            self.db,
            job,
            owner=self.owner,
            delay=policy.delay_after(job.attempts, exc),
            error=error,
            attempt=attempt,
        )

    async def _bury(self, job: Job, error: str, attempt: queue.Attempt) -> bool:
        buried = await queue.bury(
            self.db,
            job,
            owner=self.owner,
            error=error,
            attempt=attempt,
            on_buried=self.on_dead_letter,
        )
        if buried:
            log.warning("job_dead_lettered", job_id=job.id, kind=job.kind, attempts=job.attempts)
            self.metrics.job_dead(job.kind)
            if self.on_dead_letter is not None:
                self.wake()  # the hook may have queued work (the owner's email)
        return buried

    async def _keep_lease(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await queue.extend_lease(
                self.db, job, owner=self.owner, lease_seconds=self.lease_seconds
            )
