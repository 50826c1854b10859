"""`pinelab worker` and `pinelab dead-letters` through the real command, in subprocesses."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs import queue
from pinelab.jobs.models import DeadLetter, Job
from pinelab.notify.email import SEND_EMAIL, Email
from tests.cli_support import cli_database_url, cli_environment, run_pinelab
from tests.waiting import eventually_blocking

LOGGED = {
    "PINELAB_LOG_FORMAT": "json",
    "PINELAB_SECRET_KEY": "cli-test-secret-key-that-is-long-enough-0123456789abcdef",
}


def pinelab(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_pinelab(data_dir, *args, **LOGGED)


def start_worker(data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pinelab", "worker"],
        cwd=data_dir,
        env=cli_environment(data_dir, **LOGGED),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def data_dir(cli_data_dir: Path) -> Path:
    return cli_data_dir


def _database(data_dir: Path) -> Database:
    return Database(cli_database_url(data_dir))


async def _bury_email(data_dir: Path, to: str) -> int:
    db = _database(data_dir)
    try:
        moment = now()
        async with db.transaction() as session:
            job = Job(
                **queue.job_values(SEND_EMAIL, Email(to, "Hi", "Body").as_payload(), max_attempts=1)
                | {
                    "status": queue.RUNNING,
                    "attempts": 1,
                    "lease_owner": "gone",
                    "lease_expires_at": moment + timedelta(hours=1),
                }
            )
            session.add(job)
        attempt = queue.Attempt(moment, "SMTPConnectError", "refused")
        await queue.bury(db, job, owner="gone", error="SMTPConnectError: refused", attempt=attempt)
        async with db.session() as session:
            letter = await session.get(DeadLetter, 1)
            assert letter is not None
            return letter.id
    finally:
        await db.dispose()


async def _job_status(data_dir: Path, job_id: int) -> str:
    db = _database(data_dir)
    try:
        async with db.session() as session:
            job = await session.get(Job, job_id)
            assert job is not None
            return job.status
    finally:
        await db.dispose()


@pytest.mark.slow
def test_dead_letters_are_listed_shown_replayed_and_discarded_from_the_cli(data_dir: Path) -> None:
    letter_id = asyncio.run(_bury_email(data_dir, "someone@example.com"))
    listed = pinelab(data_dir, "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(f"{letter_id}\tsend_email\t")
    assert "SMTPConnectError: refused" in listed.stdout

    shown = pinelab(data_dir, "dead-letters", "show", str(letter_id))
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["payload"]["text"] == "[redacted]"
    assert [a["outcome"] for a in detail["job_attempts"]] == ["dead"]

    replayed = pinelab(data_dir, "dead-letters", "replay", str(letter_id))
    assert replayed.returncode == 0, replayed.stderr
    assert f"dead letter {letter_id} replayed" in replayed.stdout
    assert asyncio.run(_job_status(data_dir, detail["job_id"])) == "queued"
    assert pinelab(data_dir, "dead-letters", "list").stdout == ""

    again = pinelab(data_dir, "dead-letters", "discard", str(letter_id))
    assert again.returncode == 2
    assert "already replayed" in again.stderr
    missing = pinelab(data_dir, "dead-letters", "show", "424242")
    assert missing.returncode == 2
    assert "not found" in missing.stderr


@pytest.mark.slow
def test_worker_command_runs_jobs_refuses_a_second_worker_and_stops_on_sigterm(
    data_dir: Path,
) -> None:
    letter_id = asyncio.run(_bury_email(data_dir, "someone@example.com"))
    assert pinelab(data_dir, "dead-letters", "replay", str(letter_id)).returncode == 0
    outbox = data_dir / "outbox"
    worker = start_worker(data_dir)
    try:
        eventually_blocking(
            lambda: outbox.exists() and any(outbox.glob("*.eml")),
            timeout=20,
            what="the worker to send the replayed email",
        )
        second = pinelab(data_dir, "worker")
        assert second.returncode == 1
        assert "worker_not_started" in second.stderr
        assert "another process runs the worker" in second.stderr
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, stderr
    assert "worker_started" in stderr
    assert "worker_stopped" in stderr
