"""Workers for the jobs tests: built on the test's database with explicit job types."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.queue import OnBuried
from pinelab.jobs.worker import JobType, Worker
from pinelab.ops.metrics import Metrics

MakeWorker = Callable[..., Worker]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test's settings, with quick retries and a budget of three attempts."""
    settings.retry_base_delay_seconds = 0.01
    settings.retry_max_delay_seconds = 0.02
    settings.max_retry_attempts = 3
    return settings


@pytest.fixture
async def make_worker(settings: Settings) -> AsyncIterator[MakeWorker]:
    """Build workers running the given job types, each on its own engine; stop them after."""
    built: list[tuple[Worker, Database]] = []

    def make(job_types: dict[str, JobType], *, on_dead_letter: OnBuried | None = None) -> Worker:
        db = Database(settings.resolved_database_url, sqlite_synchronous="NORMAL")
        worker = Worker(
            db, job_types, settings=settings, metrics=Metrics(), on_dead_letter=on_dead_letter
        )
        built.append((worker, db))
        return worker

    yield make
    for worker, db in built:
        await worker.stop()
        await db.dispose()
