"""Housekeeping jobs: keep the queue table small."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from pinelab.clock import now
from pinelab.jobs import queue
from pinelab.jobs.models import Job

if TYPE_CHECKING:
    from pinelab.api.context import AppContext

log = structlog.get_logger(__name__)

CLEANUP_JOBS = "cleanup_jobs"
CLEANUP_INTERVAL_SECONDS = 3600.0
FINISHED_JOB_RETENTION = timedelta(days=7)


async def cleanup_jobs_job(context: AppContext, job: Job) -> None:
    """Delete done jobs older than the retention; dead jobs and their attempts stay."""
    async with context.db.transaction() as session:
        deleted = await queue.delete_finished(
            session, finished_before=now() - FINISHED_JOB_RETENTION
        )
    log.info("finished_jobs_deleted", count=deleted)
