"""The commit process: SQLite's group commits written and committed by a child process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from pinelab.clock import FrozenClock
from pinelab.db import Database
from pinelab.jobs.models import Job
from pinelab.signals.committer import CommitProcess, runs_beside
from pinelab.signals.models import Signal
from pinelab.signals.writer import ACCEPTED, PendingSignal, SignalWriter
from tests.factories import Seeded, seed_strategy, signal_values


@pytest.fixture
async def seeded(durable_db: Database) -> Seeded:
    return await seed_strategy(durable_db)


@pytest.fixture
async def process(durable_db: Database) -> AsyncIterator[CommitProcess]:
    committer = CommitProcess(durable_db.url, durable_db.durable_synchronous)
    yield committer
    await committer.stop()


def _alert(seeded: Seeded, key: str | None) -> PendingSignal:
    values = signal_values(seeded.strategy_id, seeded.user_id, key)
    values["intent"] = {"ticker": "AAPL", "action": "buy", "quantity": "1"}
    return PendingSignal(values, job_kind="execute_signal")


async def _started(process: CommitProcess) -> int:
    """Start the child; return its process id."""
    await process.start()
    assert process.pid is not None
    return process.pid


async def _count(db: Database, model: type[Signal] | type[Job]) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_batch_is_written_and_committed_by_the_child_and_the_worker_told_its_jobs(
    durable_db: Database, seeded: Seeded, process: CommitProcess
) -> None:
    woken: list[int] = []
    writer = SignalWriter(durable_db, on_commit=woken.append, process=process)
    await writer.start()
    assert process.pid is not None
    assert process.pid != os.getpid()
    try:
        keys = ["a", "b", "a", None]  # the second "a" is a duplicate found in the child
        outcomes = await asyncio.gather(*(writer.write(_alert(seeded, key)) for key in keys))
    finally:
        await writer.stop()
    assert [status for _, status in outcomes] == [ACCEPTED, ACCEPTED, "duplicate", ACCEPTED]
    assert len({signal_id for signal_id, _ in outcomes}) == 4
    assert sum(woken) == 3  # by the stored statuses: the duplicate has no job
    assert await _count(durable_db, Signal) == 4
    assert await _count(durable_db, Job) == 3
    async with durable_db.session() as session:
        duplicate = await session.get(Signal, outcomes[2][0])
        assert duplicate is not None
        assert duplicate.reason == "same strategy, id and time as an earlier alert"
        assert duplicate.duplicate_of_id == outcomes[0][0]
        assert duplicate.intent == {"ticker": "AAPL", "action": "buy", "quantity": "1"}
    assert process.pid is None  # stopped with the writer


async def test_repeats_of_a_body_within_the_window_are_found_by_the_child(
    durable_db: Database, seeded: Seeded, process: CommitProcess
) -> None:
    alerts = [_alert(seeded, None) for _ in range(3)]  # the same unkeyed body, three times
    for alert in alerts:
        alert.duplicate_window_seconds = 60
    outcomes = await process.commit(alerts)
    assert [status for _, status in outcomes] == [ACCEPTED, "duplicate", "duplicate"]
    async with durable_db.session() as session:
        repeats = [await session.get(Signal, signal_id) for signal_id, _ in outcomes[1:]]
    original = outcomes[0][0]  # a repeat points at the alert it repeats, never at a repeat
    assert [signal.duplicate_of_id for signal in repeats if signal is not None] == [original] * 2


async def test_the_child_exits_when_its_parent_closes_the_socket(
    durable_db: Database, seeded: Seeded, process: CommitProcess
) -> None:
    pid = await _started(process)
    await process.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_stop_signals_for_the_group_leave_the_child_to_commit_the_last_batches(
    durable_db: Database, seeded: Seeded, process: CommitProcess
) -> None:
    pid = await _started(process)
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or killpg(SIGTERM)
        os.kill(pid, signum)
    await asyncio.sleep(0.2)
    [(_, status)] = await process.commit([_alert(seeded, "k")])
    assert status == ACCEPTED
    assert process.pid == pid


async def test_a_child_that_dies_mid_batch_fails_it_and_the_next_batch_starts_another(
    durable_db: Database, seeded: Seeded, process: CommitProcess, durable_path: Path
) -> None:
    writer = SignalWriter(durable_db, process=process)
    first, _ = await writer.write(_alert(seeded, "before"))
    dead = process.pid
    assert dead is not None
    other = sqlite3.connect(durable_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the child inside the next batch
        lost = asyncio.ensure_future(writer.write(_alert(seeded, "lost")))
        await asyncio.sleep(0.2)
        os.kill(dead, signal.SIGKILL)
        with pytest.raises(OperationalError):  # the webhook answers 503: nothing acknowledged
            await asyncio.wait_for(lost, 10)
    finally:
        other.execute("ROLLBACK")
        other.close()
    after, status = await writer.write(_alert(seeded, "after"))
    assert status == ACCEPTED
    assert process.pid not in (None, dead)
    async with durable_db.session() as session:
        keys = set((await session.scalars(select(Signal.idempotency_key))).all())
    assert keys == {"before", "after"}
    assert after > first


async def test_a_child_that_died_while_idle_is_replaced_before_the_next_batch(
    durable_db: Database, seeded: Seeded, process: CommitProcess
) -> None:
    dead = await _started(process)
    os.kill(dead, signal.SIGKILL)
    for _ in range(250):
        if not process.running:
            break
        await asyncio.sleep(0.02)
    assert not process.running
    [(_, status)] = await process.commit([_alert(seeded, "k")])
    assert status == ACCEPTED
    assert process.pid not in (None, dead)


async def test_a_database_error_in_the_child_is_raised_for_the_batchs_alerts(
    durable_db: Database, seeded: Seeded, process: CommitProcess, durable_path: Path
) -> None:
    with contextlib.closing(sqlite3.connect(durable_path)) as other:
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON signal"
            " BEGIN SELECT RAISE(ABORT, 'no room'); END"
        )
        other.commit()
    writer = SignalWriter(durable_db, process=process)
    await writer.start()
    try:
        results = await asyncio.gather(
            *(writer.write(_alert(seeded, key)) for key in ("x", "y")), return_exceptions=True
        )
        # An integrity error is retried alert by alert; each alert gets its own error.
        assert all(isinstance(result, IntegrityError) for result in results)
        assert all("no room" in str(result) for result in results)
        with contextlib.closing(sqlite3.connect(durable_path)) as other:
            other.execute("DROP TRIGGER refuse")
            other.commit()
        _, status = await writer.write(_alert(seeded, "z"))
    finally:
        await writer.stop()
    assert status == ACCEPTED
    assert await _count(durable_db, Signal) == 1


async def test_a_write_lock_held_by_another_process_is_waited_for_in_the_child(
    durable_db: Database, seeded: Seeded, process: CommitProcess, durable_path: Path
) -> None:
    writer = SignalWriter(durable_db, process=process)
    await writer.start()
    other = sqlite3.connect(durable_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a CLI command writing, say
        pending = asyncio.ensure_future(writer.write(_alert(seeded, "k")))
        ticks = 0
        while ticks < 20:  # the loop keeps running meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done()
        other.execute("COMMIT")
        _, status = await asyncio.wait_for(pending, 10)
    finally:
        other.close()
        await writer.stop()
    assert status == ACCEPTED


async def test_a_batch_whose_caller_is_cancelled_is_still_committed_before_it_returns(
    durable_db: Database, seeded: Seeded, process: CommitProcess, durable_path: Path
) -> None:
    await process.start()
    other = sqlite3.connect(durable_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the child at its first write
        committing = asyncio.ensure_future(process.commit([_alert(seeded, "k")]))
        await asyncio.sleep(0.1)
        committing.cancel()
        await asyncio.sleep(0.1)
        assert not committing.done()  # waits for the child's answer before letting go
        other.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(committing, 10)
    finally:
        other.close()
    assert await _count(durable_db, Signal) == 1
    [(_, status)] = await process.commit([_alert(seeded, "next")])  # still in step
    assert status == ACCEPTED


async def test_jobs_are_dated_by_the_api_process_clock(
    durable_db: Database, seeded: Seeded, process: CommitProcess, frozen_clock: FrozenClock
) -> None:
    assert abs((frozen_clock.now() - datetime.now(UTC)).days) > 1  # far from the child's clock
    writer = SignalWriter(durable_db, process=process)
    await writer.write(_alert(seeded, "k"))
    async with durable_db.session() as session:
        job = (await session.scalars(select(Job))).one()
    assert job.created_at == job.run_at == frozen_clock.now()


async def test_a_value_sqlite_cannot_store_fails_the_batch_and_the_child_goes_on(
    durable_db: Database, seeded: Seeded, process: CommitProcess
) -> None:
    alert = _alert(seeded, "k")
    alert.values["raw_body"] = {"not", "text"}  # crosses to the child, binds to no SQLite type
    with pytest.raises(DBAPIError, match="binding parameter"):
        await process.commit([alert])
    [(_, status)] = await process.commit([_alert(seeded, "k")])
    assert status == ACCEPTED


@pytest.mark.parametrize(
    ("url", "beside"),
    [
        ("sqlite+aiosqlite:///data/pinelab.db", True),
        ("sqlite+aiosqlite:///:memory:", False),
        ("sqlite+aiosqlite://", False),
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/test", False),
    ],
)
def test_only_a_sqlite_file_is_committed_by_a_child(url: str, beside: bool) -> None:
    assert runs_beside(url) is beside
