"""Housekeeping: keep the queue and the reconciliation history from growing without bound."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete

from pinelab.clock import now
from pinelab.jobs import queue
from pinelab.jobs.models import Job
from pinelab.trading.models import ReconciliationRun

if TYPE_CHECKING:
    from typing import Any as AppContext  # bridged until the merge: api/context.py is gone

log = structlog.get_logger(__name__)

CLEANUP_JOBS = "cleanup_jobs"
CLEANUP_INTERVAL_SECONDS = 3600.0
FINISHED_JOB_RETENTION = timedelta(days=7)


async def cleanup_jobs_job(context: AppContext, job: Job) -> None:
    """Delete done jobs and finished reconciliation runs older than their retention.

    Dead jobs and their attempts stay (they are the dead-letter record); so does a run still
    marked running, whatever its age.
    """
    moment = now()
    retention = timedelta(days=context.settings.reconciliation_retention_days)
    async with context.db.transaction() as session:
        deleted = await queue.delete_finished(
            session, finished_before=moment - FINISHED_JOB_RETENTION
        )
        runs = await session.execute(
            delete(ReconciliationRun).where(
                ReconciliationRun.finished_at.is_not(None),
                ReconciliationRun.finished_at < moment - retention,
            )
        )
    pruned = int(runs.rowcount)
    log.info("finished_jobs_deleted", count=deleted, reconciliation_runs=pruned)
