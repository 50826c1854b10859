"""Housekeeping: keep the queue from growing without bound."""

from __future__ import annotations

from datetime import timedelta

import structlog

from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs import queue

log = structlog.get_logger(__name__)

CLEANUP_JOBS = "cleanup_jobs"
CLEANUP_INTERVAL_SECONDS = 3600.0
FINISHED_JOB_RETENTION = timedelta(days=7)


async def cleanup_finished_jobs(
    db: Database, *, older_than: timedelta = FINISHED_JOB_RETENTION
) -> int:
    """Delete done jobs finished longer ago than `older_than`; return how many.

    Dead jobs and their attempts stay: they are the dead-letter record.
    """
    async with db.transaction() as session:
        deleted = await queue.delete_finished(session, finished_before=now() - older_than)
    log.info("finished_jobs_deleted", count=deleted)
    return deleted
