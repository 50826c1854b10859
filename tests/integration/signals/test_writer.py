"""The group-commit writer: durable commits, duplicates within and across batches."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.orm import Session

from pinelab.clock import now
from pinelab.db import Database
from pinelab.db import engine as engine_module
from pinelab.jobs.models import Job
from pinelab.signals import writer as writer_module
from pinelab.signals.models import Signal
from pinelab.signals.writer import ACCEPTED, PendingSignal, SignalWriter
from tests.factories import Seeded, seed_strategy, signal_values


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
    outcomes = await _write_concurrently(db, batch)  # one batch: handed over at once
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


async def test_sqlite_commits_at_the_configured_level_and_survive_a_reopen(
    durable_db: Database, durable_path: Path
) -> None:
    seeded = await seed_strategy(durable_db)
    writer = SignalWriter(durable_db)
    signal_id, status = await writer.write(
        PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "k"))
    )
    assert status == "accepted"
    await durable_db.dispose()
    reopened = Database(f"sqlite+aiosqlite:///{durable_path}")
    try:
        async with reopened.session() as session:
            assert (await session.get(Signal, signal_id)) is not None
    finally:
        await reopened.dispose()


async def test_an_alert_whose_caller_went_away_is_stored_and_the_others_answered(
    db: Database,
) -> None:
    seeded = await seed_strategy(db)
    writer = SignalWriter(db)
    await writer.start()
    try:
        gone = asyncio.ensure_future(
            writer.write(PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "a")))
        )
        staying = writer.write(
            PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "b"))
        )
        gone.cancel()  # the client closed its connection before the batch committed
        _, status = await asyncio.wait_for(staying, 10)
    finally:
        await writer.stop()
    assert status == ACCEPTED
    async with db.session() as session:
        keys = set((await session.scalars(select(Signal.idempotency_key))).all())
    assert keys == {"a", "b"}


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
        async with db.session() as session:
            stored = await session.execute(
                text("SELECT received_at, typeof(received_at) FROM signal WHERE id = :id"),
                {"id": signal_id},
            )
        assert tuple(stored.one()) == ("2026-03-01 14:30:00.000000", "text")


async def test_a_batch_of_mixed_alerts_maps_each_id_to_its_own_row_and_job(db: Database) -> None:
    seeded = await seed_strategy(db)
    # A row stored another way first: the batch's ids continue after it.
    async with db.transaction() as session:
        earlier = await session.scalar(
            insert(Signal).returning(Signal.id),
            signal_values(seeded.strategy_id, seeded.user_id, "x"),
        )
    assert earlier is not None
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
        values = signal_values(seeded.strategy_id, 0, None)
        query = writer_module.window_query({seeded.strategy_id: [values["body_hash"]]}, since)
        sql = str(query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
        async with db.session() as session:
            rows = await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX ix_signal_unkeyed_body_hash" in " ".join(str(r[-1]) for r in rows)


async def test_a_key_stored_by_another_process_meanwhile_is_a_duplicate_not_an_error(
    db: Database,
) -> None:
    seeded = await seed_strategy(db)
    stored_meanwhile: list[int] = []

    async def other_process_stores_the_key() -> None:
        other = Database(db.url, sqlite_synchronous="NORMAL")
        try:
            signal_id, _ = await SignalWriter(other).write(
                PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "k"))
            )
            stored_meanwhile.append(signal_id)
        finally:
            await other.dispose()

    raced = False

    def meanwhile(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        """Before our insert (its key lookup missed), another process commits the same key."""
        nonlocal raced
        if raced or not statement.startswith("INSERT INTO signal "):
            return
        raced = True
        other = threading.Thread(target=asyncio.run, args=(other_process_stores_the_key(),))
        other.start()
        other.join(timeout=30)

    event.listen(Engine, "before_cursor_execute", meanwhile)
    try:
        signal_id, status = await SignalWriter(db).write(
            PendingSignal(
                signal_values(seeded.strategy_id, seeded.user_id, "k"), job_kind="execute_signal"
            )
        )
    finally:
        event.remove(Engine, "before_cursor_execute", meanwhile)
    [first_id] = stored_meanwhile
    assert status == "duplicate"
    async with db.session() as session:
        signal = await session.get(Signal, signal_id)
        assert signal is not None
        assert signal.duplicate_of_id == first_id
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


BIG_BODY = "x" * 8000  # two pages of WAL an alert: a stream that would grow it fast


async def _stream(db: Database, seeded: Seeded, batches: int, batch_size: int = 20) -> list[int]:
    """Commit `batches` batches of distinct alerts one after the other; return their ids."""
    ids: list[int] = []
    for batch in range(batches):
        items = [
            PendingSignal(
                signal_values(
                    seeded.strategy_id, seeded.user_id, f"{batch}-{i}", f"{batch}-{i} {BIG_BODY}"
                ),
                job_kind="execute_signal",
            )
            for i in range(batch_size)
        ]
        ids.extend(signal_id for signal_id, _ in await _write_concurrently(db, items))
    return ids


async def test_the_wal_stays_bounded_under_a_steady_stream_of_alerts(
    durable_db: Database, durable_path: Path
) -> None:
    seeded = await seed_strategy(durable_db)
    wal = durable_path.with_name(durable_path.name + "-wal")
    reading = True

    async def reader() -> None:  # the worker and the API read meanwhile
        while reading:
            async with durable_db.session() as session:
                await session.scalar(select(func.count()).select_from(Job))
            await asyncio.sleep(0)  # a turn for the others, not a wait

    readers = [asyncio.ensure_future(reader()) for _ in range(2)]
    largest = 0
    try:
        for _ in range(30):
            await _stream(durable_db, seeded, batches=5)
            largest = max(largest, wal.stat().st_size)
    finally:
        reading = False
        await asyncio.gather(*readers)
    # Twice the checkpoint's threshold (4 MB of pages), where the stream wrote ~30 MB in all.
    bound = 2 * engine_module.WAL_AUTOCHECKPOINT_PAGES * 4096
    assert largest <= bound, f"WAL grew to {largest} bytes"
    async with durable_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Signal)) == 30 * 5 * 20


async def test_committed_alerts_are_in_the_database_file_once_sqlite_checkpointed(
    durable_db: Database, durable_path: Path
) -> None:
    seeded = await seed_strategy(durable_db)
    [first, *_] = await _stream(durable_db, seeded, batches=1)
    assert not _in_database_file(durable_path, first)  # in the WAL only, so far
    sequence = _wal_checkpoint_sequence(durable_path)
    for _ in range(100):  # until the WAL was copied into the database and started over
        await _stream(durable_db, seeded, batches=1)
        if _wal_checkpoint_sequence(durable_path) != sequence:
            break
    assert _wal_checkpoint_sequence(durable_path) != sequence
    assert _in_database_file(durable_path, first)


def _wal_checkpoint_sequence(database: Path) -> int:
    """Read the WAL header's checkpoint sequence number: SQLite adds one when it restarts."""
    header = database.with_name(database.name + "-wal").read_bytes()[:32]
    return int.from_bytes(header[12:16], "big")


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


async def test_only_durable_units_commit_at_the_configured_level(durable_db: Database) -> None:
    def level(session: Session) -> int:
        return int(session.execute(text("PRAGMA synchronous")).scalar_one())

    assert await durable_db.run(level, durable=True) == 2  # FULL, as configured
    assert await durable_db.run(level) == 1  # NORMAL: crash-safe in WAL mode, redone if lost


async def test_the_alerts_group_commit_is_durable(durable_db: Database) -> None:
    seeded = await seed_strategy(durable_db)
    levels: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("PRAGMA synchronous="):
            levels.append(statement)

    event.listen(Engine, "before_cursor_execute", on_execute)
    try:
        await SignalWriter(durable_db).write(
            PendingSignal(signal_values(seeded.strategy_id, seeded.user_id, "durable"))
        )
    finally:
        event.remove(Engine, "before_cursor_execute", on_execute)
    assert levels == ["PRAGMA synchronous=FULL"]
