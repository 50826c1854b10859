"""The worker: claims jobs, runs their handler, retries what failed temporarily, buries the rest.

It is woken at once when work is committed (`wake`), and polls only as a safety net for jobs
scheduled later, jobs enqueued by other processes and expired leases. A job kind with an inline
handler runs in the transaction that claims it and is completed there too (one commit). Every
attempt is recorded; a buried job leaves a dead letter and its strategy's owner gets an email.
The worker also runs the periodic scheduler. On SQLite only the process holding the worker lock
runs any of this.
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
from functools import partial
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.brokers.exceptions import PermanentBrokerError, RetryableBrokerError
from pinelab.clock import now
from pinelab.errors import BusinessLogicError
from pinelab.jobs import queue
from pinelab.jobs.dead_letters import ReplayHook, notify_owner
from pinelab.jobs.exceptions import PermanentJobError
from pinelab.jobs.lock import LOCK_FILE, WorkerLock
from pinelab.jobs.models import DeadLetter, Job
from pinelab.jobs.retry import RetryPolicy
from pinelab.jobs.scheduler import Scheduler

if TYPE_CHECKING:
    from typing import Any as AppContext  # bridged until the merge: api/context.py is gone

__all__ = ["JobType", "PermanentJobError", "Worker", "default_job_types", "register_periodic_jobs"]

log = structlog.get_logger(__name__)

POLL_SECONDS = 1.0
# Inline jobs claimed, run and completed in one transaction when that many are due: under a
# backlog, one commit and one trip to the SQLite thread serve several alerts.
CLAIM_BATCH = 8


@dataclass(frozen=True)
class JobType:
    """How to run one kind of job, how patiently to retry it, and what to do when given up.

    `run_inline`, when set, may run the job in the claiming transaction (see `queue.Inline`);
    when it declines, `run` runs it.
    """

    run: Callable[[AppContext, Job], Awaitable[None]]
    on_dead: Callable[[AppContext, Job, str], Awaitable[None]] | None = None
    policy: RetryPolicy | None = None
    on_replay: ReplayHook | None = None
    run_inline: Callable[[AppContext, Connection, Job], Callable[[], None] | None] | None = None


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, PermanentBrokerError | PermanentJobError | BusinessLogicError)


class Worker:
    """Runs jobs from the durable queue with `concurrency` parallel loops, and the scheduler."""

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
        self.job_types = job_types if job_types is not None else default_job_types()
        self.scheduler = Scheduler(
            context.db,
            owner=self.owner,
            max_attempts=settings.max_retry_attempts,
            on_enqueued=self.wake,
        )
        self.lock = WorkerLock(settings.data_dir / LOCK_FILE) if context.db.is_sqlite else None
        # Idle loops wait on their own future: a wake rouses one loop, not all of them (on
        # SQLite each needless claim is a trip through the one writer). `_missed` keeps a wake
        # that found every loop busy, so the next loop to run out of work looks again.
        self._idle: collections.deque[asyncio.Future[None]] = collections.deque()
        self._missed = False
        # How many more claims are known to find a job (`wake(jobs)`), or whether to claim
        # until one finds nothing (a wake without a count, a poll, the start): after the last
        # known job a loop goes idle instead of asking the database once more in vain.
        self._due = 0
        self._until_empty = True
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

    def policy_for(self, kind: str) -> RetryPolicy:
        """Return the retry policy of a job kind: its own, else the settings' default."""
        job_type = self.job_types.get(kind)
        return job_type.policy if job_type and job_type.policy else self.policy

    def wake(self, jobs: int | None = None) -> None:
        """Tell the loops that work was just committed: one idle loop looks for it.

        `jobs` is how many jobs were committed, when the caller knows: the loops then claim
        that many and stop, rather than claiming until a claim finds nothing.
        """
        if jobs is None:
            self._until_empty = True
        else:
            self._due += jobs
        self._rouse()

    def _rouse(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._missed = True

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
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"worker-{index}")
            for index in range(self.concurrency)
        ]
        self._tasks.append(
            asyncio.create_task(self.scheduler.run(self._stopping), name="worker-scheduler")
        )
        log.info("worker_started", owner=self.owner, concurrency=self.concurrency)
        return True

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop taking jobs and let running ones finish (their leases expire otherwise)."""
        if not self._tasks:
            return
        self._stopping.set()
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
        _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        if self.lock is not None:
            self.lock.release()
        log.info("worker_stopped", owner=self.owner)

    async def run_once(self, limit: int = 1) -> bool:
        """Claim and run due jobs (one, or up to `limit` inline ones); False when none was due."""
        if not self._until_empty:
            limit = max(1, min(limit, self._due))
        # The known jobs this claim takes are its own, not another loop's.
        self._due = max(0, self._due - limit)
        claims = await queue.claim_and_run(
            self.context.db,
            owner=self.owner,
            lease_seconds=self.lease_seconds,
            inline=self._inline,
            limit=limit,
        )
        if not claims:
            return False
        if claims[-1].finished is None:
            # Stopped at a job for the ordinary path: the rest of the reservation is still due.
            self._due += limit - len(claims)
        for claimed in claims:
            if claimed.finished is not None:
                claimed.finished()
            else:
                if self._more_due():
                    self._rouse()  # another loop takes the next one while this job runs
                await self._run(claimed.job)
        return True

    def _more_due(self) -> bool:
        return self._until_empty or self._due > 0

    def _inline(self, kind: str) -> queue.Inline | None:
        job_type = self.job_types.get(kind)
        if job_type is None or job_type.run_inline is None:
            return None
        return partial(job_type.run_inline, self.context)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            self._missed = False
            try:
                worked = await self.run_once(CLAIM_BATCH)
            except Exception:
                log.exception("worker_claim_failed")
                worked = False
            if not worked and not self._missed:
                self._due, self._until_empty = 0, False  # nothing due; no wake came meanwhile
            if (worked and self._more_due()) or self._missed or self._stopping.is_set():
                continue
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await asyncio.wait_for(waiter, timeout=POLL_SECONDS)
            except TimeoutError:
                self._until_empty = True  # the safety poll: take whatever is due by now
            finally:
                if waiter in self._idle:
                    self._idle.remove(waiter)

    async def _run(self, job: Job) -> None:
        started = now()
        job_type = self.job_types.get(job.kind)
        if job_type is None:
            error = f"unknown job kind {job.kind!r}"
            attempt = queue.Attempt(started, "UnknownJobKind", error)
            await self._bury(job, error, attempt)
            return
        heartbeat = asyncio.create_task(self._keep_lease(job))
        try:
            await job_type.run(self.context, job)
        except asyncio.CancelledError:
            await asyncio.shield(queue.release(self.context.db, job, owner=self.owner))
            raise
        except Exception as exc:
            heartbeat.cancel()
            await self._failed(job, job_type, exc, started)
            return
        finally:
            heartbeat.cancel()
        await queue.complete(self.context.db, job, owner=self.owner, attempt=queue.Attempt(started))

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
            if not permanent and not isinstance(exc, RetryableBrokerError):
                log.error("job_failed", job_id=job.id, kind=job.kind, exc_info=exc)
            if await self._bury(job, error, attempt) and job_type.on_dead is not None:
                await job_type.on_dead(self.context, job, error)
            return
        delay = policy.delay_after(job.attempts, exc)
        self.context.metrics.job_retried(job.kind)
        await queue.retry_later(
            self.context.db, job, owner=self.owner, delay=delay, error=error, attempt=attempt
        )

    async def _bury(self, job: Job, error: str, attempt: queue.Attempt) -> bool:
        buried = await queue.bury(
            self.context.db,
            job,
            owner=self.owner,
            error=error,
            attempt=attempt,
            on_buried=self._notify_owner,
        )
        if buried:
            log.warning("job_dead_lettered", job_id=job.id, kind=job.kind, attempts=job.attempts)
            self.context.metrics.job_dead(job.kind)
            self.wake()  # the owner's email was just queued
        return buried

    async def _notify_owner(self, session: AsyncSession, letter: DeadLetter) -> None:
        await notify_owner(session, letter, settings=self.context.settings)

    async def _keep_lease(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await queue.extend_lease(
                self.context.db, job, owner=self.owner, lease_seconds=self.lease_seconds
            )


def default_job_types() -> dict[str, JobType]:
    """Return every job kind PineLab runs, with its handlers."""
    from pinelab.jobs.maintenance import CLEANUP_JOBS, cleanup_jobs_job
    from pinelab.notify.email import SEND_EMAIL, send_email
    from pinelab.trading.execution import (
        EXECUTE_SIGNAL,
        execute_signal_inline,
        execute_signal_job,
        signal_job_dead,
        signal_job_replayed,
    )
    from pinelab.trading.reconciliation import RECONCILE, reconcile_job

    return {
        EXECUTE_SIGNAL: JobType(
            run=execute_signal_job,
            on_dead=signal_job_dead,
            on_replay=signal_job_replayed,
            run_inline=execute_signal_inline,
        ),
        SEND_EMAIL: JobType(run=lambda ctx, job: send_email(job.payload, settings=ctx.settings)),
        CLEANUP_JOBS: JobType(run=cleanup_jobs_job),
        RECONCILE: JobType(run=reconcile_job),
    }


def register_periodic_jobs(worker: Worker) -> None:
    """Register the periodic jobs every worker runs."""
    from pinelab.jobs.maintenance import CLEANUP_INTERVAL_SECONDS, CLEANUP_JOBS

    worker.scheduler.register(CLEANUP_JOBS, CLEANUP_INTERVAL_SECONDS, CLEANUP_JOBS)
    from pinelab.trading.reconciliation import RECONCILE

    minutes = worker.context.settings.reconciliation_interval_minutes
    worker.scheduler.register(RECONCILE, minutes * 60, RECONCILE)
