"""The group-commit writer: durable commits, duplicates within and across batches."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, event, func, insert, select

from pinelab.clock import now
from pinelab.db import Database
from pinelab.db import engine as engine_module
from pinelab.jobs.models import Job
from pinelab.signals import writer as writer_module
from pinelab.signals.models import Signal
from pinelab.signals.writer import ACCEPTED, PendingSignal, SignalWriter
from tests.factories import seed_strategy, signal_values


async def _write_concurrently(db: Database, items: list[PendingSignal]) -> list[tuple[int, str]]:
    """Hand every item to a running writer at once (so they share batches); return outcomes."""
    writer = SignalWriter(db)
    await writer.start()
    try:
        return list(await asyncio.gather(*(writer.write(item) for item in items)))
    finally:
        await writer.stop()


async def test_batch_of_concurrent_alerts_commits_signals_and_jobs_together(db: Database) -> None:
    seeded = await seed_strategy(db)
    pending = [
        PendingSignal(
            signal_values(seeded.strategy_id, seeded.user_id, f"k{i % 5}"),
            job_kind="execute_signal",
        )
        for i in range(20)
    ]
    outcomes = await _write_concurrently(db, pending)
    statuses = [status for _, status in outcomes]
    assert statuses.count("accepted") == 5
    assert statuses.count("duplicate") == 15
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Signal)) == 20
        assert await session.scalar(select(func.count()).select_from(Job)) == 5


async def test_a_repeat_within_a_batch_points_at_the_alert_of_the_batch_it_repeats(
    db: Database,
) -> None:
    seeded = await seed_strategy(db)
    keyed = [signal_values(seeded.strategy_id, seeded.user_id, "k") for _ in range(3)]
    unkeyed = [signal_values(seeded.strategy_id, seeded.user_id, None, "sell AAPL 2")] * 2
    batch = [
        PendingSignal(dict(values), job_kind="execute_signal", duplicate_window_seconds=60)
        for values in keyed + unkeyed
    ]
    outcomes = await db.run_transaction(lambda c: writer_module.store_batch(c, batch))
    ids = [signal_id for signal_id, _ in outcomes]
    assert [status for _, status in outcomes] == [
        "accepted",
        "duplicate",
        "duplicate",
        "accepted",
        "duplicate",
    ]
    async with db.session() as session:
        rows = {row.id: row for row in (await session.scalars(select(Signal))).all()}
    assert [rows[signal_id].duplicate_of_id for signal_id in ids] == [
        None,
        ids[0],
        ids[0],
        None,
        ids[3],
    ]


async def test_durable_sqlite_commit_is_full_and_everything_else_normal(
    durable_db: Database, durable_path: Path
) -> None:
    seeded = await seed_strategy(durable_db)
    writer = SignalWriter(durable_db)
    signal_id, status = await writer.write(
        PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "k"))
    )
    assert status == "accepted"

    def level_of(connection: Connection) -> object:
        return connection.exec_driver_sql("PRAGMA synchronous").scalar()

    durable_level = await durable_db.run_transaction(level_of, durable=True)
    level = await durable_db.run_transaction(level_of)
    assert (durable_level, level) == (2, 1)  # FULL for acknowledgements, NORMAL otherwise
    await durable_db.dispose()
    reopened = Database(f"sqlite+aiosqlite:///{durable_path}")
    try:
        async with reopened.session() as session:
            assert (await session.get(Signal, signal_id)) is not None
    finally:
        await reopened.dispose()


async def test_durable_statements_run_on_the_loop_and_only_the_commit_on_the_commit_thread(
    durable_db: Database,
) -> None:
    threads: dict[str, str] = {}
    event.listen(
        durable_db._inline_sqlite_engine(),
        "commit",
        lambda _connection: threads.setdefault("commit", threading.current_thread().name),
    )
    seeded = await seed_strategy(durable_db)

    def work(connection: Connection) -> None:
        threads["statements"] = threading.current_thread().name
        connection.execute(insert(Signal), signal_values(seeded.strategy_id, seeded.user_id, "k"))

    await durable_db.run_transaction(work, durable=True)
    assert threads == {
        "statements": threading.main_thread().name,  # the event loop's thread
        "commit": "pinelab-commit_0",
    }


async def test_a_durable_batch_cancelled_during_its_commit_lets_the_commit_finish_first(
    durable_db: Database,
) -> None:
    committing, release = threading.Event(), threading.Event()

    def slow_commit(_connection: Connection) -> None:
        committing.set()
        release.wait(5)

    seeded = await seed_strategy(durable_db)
    engine = durable_db._inline_sqlite_engine()
    event.listen(engine, "commit", slow_commit)

    def work(connection: Connection) -> None:
        connection.execute(insert(Signal), signal_values(seeded.strategy_id, seeded.user_id, "k"))

    batch = asyncio.ensure_future(durable_db.run_transaction(work, durable=True))
    try:
        assert await asyncio.to_thread(committing.wait, 5)
        batch.cancel()
        await asyncio.sleep(0.05)
        assert not batch.done()  # still waiting for the commit: the connection stays its own
    finally:
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await batch
    event.remove(engine, "commit", slow_commit)
    count = await durable_db.run_transaction(
        lambda c: c.execute(select(func.count()).select_from(Signal)).scalar_one(), durable=True
    )
    assert count == 1  # the commit went through; the next batch got the connection


async def test_stored_rows_read_back_exactly_as_written(db: Database) -> None:
    seeded = await seed_strategy(db)
    values = signal_values(seeded.strategy_id, seeded.user_id, "exact|key", body='{"é": "ü"}')
    values.update(
        received_at=datetime(2026, 3, 1, 14, 30, tzinfo=UTC),  # no microseconds: still .000000
        intent={"ticker": "AAPL", "quantity": "1.5", "take_profit": {"percent": "2"}, "n": None},
        source_ip="203.0.113.7",
        content_type="application/json",
    )
    writer = SignalWriter(db)
    signal_id, _ = await writer.write(PendingSignal(dict(values), job_kind="execute_signal"))
    async with db.session() as session:
        signal = await session.get(Signal, signal_id)
        job = await session.scalar(select(Job))
    assert signal is not None
    assert job is not None
    for name, value in values.items():
        assert getattr(signal, name) == value, name
    assert signal.received_at.tzinfo is not None
    assert (job.kind, job.payload, job.status, job.attempts) == (
        "execute_signal",
        {"signal_id": signal_id},
        "queued",
        0,
    )
    assert job.run_at.tzinfo is not None
    if db.is_sqlite:  # dates are text on SQLite: the same text as Core writes, so they sort right
        stored = await db.run_transaction(
            lambda c: c.exec_driver_sql(
                f"SELECT received_at, typeof(received_at) FROM signal WHERE id = {signal_id}"
            ).one()
        )
        assert tuple(stored) == ("2026-03-01 14:30:00.000000", "text")


async def test_a_batch_of_mixed_alerts_maps_each_id_to_its_own_row_and_job(db: Database) -> None:
    seeded = await seed_strategy(db)
    # A row stored another way first: the batch's ids continue after it.
    earlier = await db.run_transaction(
        lambda c: c.execute(
            insert(Signal).returning(Signal.id),
            signal_values(seeded.strategy_id, seeded.user_id, "x"),
        ).scalar_one()
    )
    items = []
    for index in range(12):
        values = signal_values(seeded.strategy_id, seeded.user_id, f"m{index % 9}", f"body {index}")
        if index % 4 == 3:
            values.update(status="rejected", reason="no", idempotency_key=None)
        items.append(PendingSignal(values, job_kind="execute_signal"))
    outcomes = await _write_concurrently(db, items)
    ids = [signal_id for signal_id, _ in outcomes]
    assert len(set(ids)) == 12
    assert min(ids) > earlier
    async with db.session() as session:
        rows = {s.id: s for s in (await session.scalars(select(Signal))).all()}
        jobs = (await session.scalars(select(Job))).all()
    for item, (signal_id, status) in zip(items, outcomes, strict=True):
        assert rows[signal_id].raw_body == item.values["raw_body"]
        assert rows[signal_id].status == status
    accepted = {signal_id for signal_id, status in outcomes if status == ACCEPTED}
    assert sorted(job.payload["signal_id"] for job in jobs) == sorted(accepted)
    # m0..m8 once each, minus the rejected ones; index 9..11 repeat m0..m2
    assert [status for _, status in outcomes].count("duplicate") == 2


async def test_a_batch_over_sqlites_parameter_limit_is_split_across_statements(
    durable_db: Database,
) -> None:
    # Older SQLite builds allow 999 parameters a statement; here, 50: three signal rows.
    engine = durable_db._inline_sqlite_engine()
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 50)
    seeded = await seed_strategy(durable_db)
    items = [
        PendingSignal(
            signal_values(seeded.strategy_id, seeded.user_id, f"s{i}", f"body {i}"),
            job_kind="execute_signal",
        )
        for i in range(20)
    ]
    outcomes = await _write_concurrently(durable_db, items)
    assert [status for _, status in outcomes] == [ACCEPTED] * 20
    async with durable_db.session() as session:
        rows = {s.id: s.raw_body for s in (await session.scalars(select(Signal))).all()}
        jobs = (await session.scalars(select(Job))).all()
    assert {rows[signal_id] for signal_id, _ in outcomes} == {f"body {i}" for i in range(20)}
    for item, (signal_id, _) in zip(items, outcomes, strict=True):
        assert rows[signal_id] == item.values["raw_body"]
    assert sorted(job.payload["signal_id"] for job in jobs) == sorted(rows)


async def test_the_window_check_finds_unkeyed_repeats_through_the_partial_index(
    db: Database,
) -> None:
    seeded = await seed_strategy(db)
    writer = SignalWriter(db)

    async def store(key: str | None) -> tuple[int, str]:
        values = signal_values(seeded.strategy_id, seeded.user_id, key, body="buy AAPL 1")
        return await writer.write(PendingSignal(values, duplicate_window_seconds=60))

    _, keyed = await store("id-1|t")
    first_id, first = await store(None)
    repeat_id, repeat = await store(None)
    assert (keyed, first, repeat) == (ACCEPTED, ACCEPTED, "duplicate")
    async with db.session() as session:
        duplicate_of = await session.scalar(
            select(Signal.duplicate_of_id).where(Signal.id == repeat_id)
        )
    assert duplicate_of == first_id  # the unkeyed original, not the keyed alert before it
    if db.is_sqlite:  # PostgreSQL plans by its statistics; SQLite by the query's shape
        since = now() - timedelta(seconds=60)
        query = writer_module.window_query(signal_values(seeded.strategy_id, 0, None), since)
        sql = str(query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))

        def plan(connection: Connection) -> str:
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            return " ".join(str(row[-1]) for row in rows)

        assert "USING INDEX ix_signal_unkeyed_body_hash" in await db.run_transaction(plan)


async def test_a_key_stored_by_another_process_meanwhile_is_a_duplicate_not_an_error(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await seed_strategy(db)
    writer = SignalWriter(db)
    first_id, _ = await writer.write(
        PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "k"))
    )
    real = writer_module._keys_by_strategy
    misses = iter([True])  # the first look misses the stored key, as if it landed just after

    def racing(batch: list[PendingSignal]) -> dict[int, list[str]]:
        return {} if next(misses, False) else real(batch)

    monkeypatch.setattr(writer_module, "_keys_by_strategy", racing)
    signal_id, status = await writer.write(
        PendingSignal(
            signal_values(seeded.strategy_id, seeded.user_id, "k"), job_kind="execute_signal"
        )
    )
    assert status == "duplicate"
    async with db.session() as session:
        signal = await session.get(Signal, signal_id)
        assert signal is not None
        assert signal.duplicate_of_id == first_id
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


async def test_acknowledged_alerts_reach_the_database_file_through_background_checkpoints(
    durable_db: Database, durable_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "CHECKPOINT_SECONDS", 0.0)
    seeded = await seed_strategy(durable_db)
    writer = SignalWriter(durable_db)
    signal_id, _ = await writer.write(
        PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "k"))
    )

    def autocheckpoint(connection: Connection) -> object:
        return connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()

    # The loop's connection never checkpoints; the thread's keeps SQLite's default.
    assert await durable_db.run_transaction(autocheckpoint, durable=True) == 0
    assert await durable_db.run_transaction(autocheckpoint) == 1000
    assert await _reaches_the_file(durable_path, signal_id)


async def test_an_alert_committed_just_after_a_checkpoint_reaches_the_file_without_more_alerts(
    durable_db: Database, durable_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "CHECKPOINT_SECONDS", 0.5)
    seeded = await seed_strategy(durable_db)
    writer = SignalWriter(durable_db)
    first, _ = await writer.write(
        PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "a"))
    )
    assert await _reaches_the_file(durable_path, first)  # that commit's checkpoint is done
    # Within the interval: no checkpoint now, and no later commit to trigger one; the timer
    # this commit set runs it.
    second, _ = await writer.write(
        PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "b"))
    )
    assert await _reaches_the_file(durable_path, second)


async def test_alerts_committed_during_a_checkpoint_are_folded_in_and_the_wal_starts_over(
    durable_db: Database, durable_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under a steady stream the WAL must not grow without end: what batches committed while the
    # checkpoint copied the bulk is copied too, before the next commit, which then writes the
    # WAL from its start.
    monkeypatch.setattr(engine_module, "CHECKPOINT_SECONDS", 60.0)  # no timer in this test
    real_checkpoint = engine_module._checkpoint
    first_pass_done, resume = threading.Event(), threading.Event()
    passes = 0

    def checkpoint(engine: Engine) -> None:
        nonlocal passes
        real_checkpoint(engine)
        passes += 1
        if passes == 1:  # hold the bulk pass open while another batch commits
            first_pass_done.set()
            resume.wait(10)

    monkeypatch.setattr(engine_module, "_checkpoint", checkpoint)
    seeded = await seed_strategy(durable_db)
    writer = SignalWriter(durable_db)
    loop = asyncio.get_running_loop()
    await writer.write(PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "a")))
    assert await loop.run_in_executor(None, first_pass_done.wait, 10)
    during, _ = await writer.write(
        PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "b"))
    )
    folding = durable_db._checkpointing
    assert folding is not None
    resume.set()
    await folding
    assert passes == 2
    assert _in_database_file(durable_path, during)  # copied by the pass under the write lock
    sequence = _wal_checkpoint_sequence(durable_path)
    await writer.write(PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "c")))
    assert _wal_checkpoint_sequence(durable_path) == sequence + 1  # the WAL started over


def _wal_checkpoint_sequence(database: Path) -> int:
    """Read the WAL header's checkpoint sequence number: SQLite adds one when it restarts."""
    header = database.with_name(database.name + "-wal").read_bytes()[:32]
    return int.from_bytes(header[12:16], "big")


async def _reaches_the_file(path: Path, signal_id: int) -> bool:
    for _ in range(150):  # checkpoints run on their own thread
        if _in_database_file(path, signal_id):
            return True
        await asyncio.sleep(0.02)
    return False


def _in_database_file(path: Path, signal_id: int) -> bool:
    """Read the main database file alone, ignoring the WAL (immutable=1)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as connection:
        row = connection.execute("SELECT 1 FROM signal WHERE id = ?", (signal_id,)).fetchone()
    return row is not None


async def test_a_write_lock_held_by_another_process_is_waited_for_off_the_event_loop(
    durable_db: Database, durable_path: Path
) -> None:
    other = sqlite3.connect(durable_path, isolation_level=None, check_same_thread=False)
    try:
        seeded = await seed_strategy(durable_db)
        writer = SignalWriter(durable_db)
        await writer.start()
        other.execute("BEGIN IMMEDIATE")  # a CLI command writing, say
        pending = asyncio.ensure_future(
            writer.write(PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "k")))
        )
        ticks = 0
        for _ in range(30):  # the loop keeps running while the alert waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done()
        other.execute("COMMIT")
        signal_id, status = await asyncio.wait_for(pending, timeout=5)
        await writer.stop()
        assert (ticks, status) == (30, "accepted")
        async with durable_db.session() as session:
            assert (await session.get(Signal, signal_id)) is not None
    finally:
        other.close()
