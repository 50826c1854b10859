"""The group-commit writer: durable commits, duplicates within and across batches."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from sqlalchemy import Connection, func, select

from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs.models import Job
from pinelab.signals.models import Signal
from pinelab.signals.writer import ACCEPTED, PendingSignal, SignalWriter
from tests.factories import seed_strategy


def _values(
    strategy_id: int, user_id: int, key: str | None, body: str = "buy AAPL 1"
) -> dict[str, object]:
    return {
        "user_id": user_id,
        "strategy_id": strategy_id,
        "received_at": now(),
        "source_ip": None,
        "content_type": "text/plain",
        "raw_body": body,
        "body_hash": hashlib.sha256(body.encode()).hexdigest(),
        "intent": None,
        "ticker": "AAPL",
        "action": "buy",
        "status": ACCEPTED,
        "reason": None,
        "idempotency_key": key,
        "duplicate_of_id": None,
        "executed_at": None,
    }


async def test_batch_of_concurrent_alerts_commits_signals_and_jobs_together(db: Database) -> None:
    seeded = await seed_strategy(db)
    writer = SignalWriter(db)
    await writer.start()
    try:
        pending = [
            PendingSignal(
                _values(seeded.strategy_id, seeded.user_id, f"k{i % 5}"), job_kind="execute_signal"
            )
            for i in range(20)
        ]
        outcomes = await asyncio.gather(*(writer.write(item) for item in pending))
    finally:
        await writer.stop()
    statuses = [status for _, status in outcomes]
    assert statuses.count("accepted") == 5
    assert statuses.count("duplicate") == 15
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Signal)) == 20
        assert await session.scalar(select(func.count()).select_from(Job)) == 5


async def test_durable_sqlite_commit_is_full_and_everything_else_normal(
    tmp_path: Path, sqlite_template: Path
) -> None:
    target = tmp_path / "durable.db"
    target.write_bytes(sqlite_template.read_bytes())
    db = Database(f"sqlite+aiosqlite:///{target}", sqlite_synchronous="FULL")
    try:
        seeded = await seed_strategy(db)
        writer = SignalWriter(db)
        signal_id, status = await writer.write(
            PendingSignal(_values(seeded.strategy_id, seeded.user_id, "k"))
        )
        assert status == "accepted"

        def level_of(connection: Connection) -> object:
            return connection.exec_driver_sql("PRAGMA synchronous").scalar()

        durable_level = await db.run_transaction(level_of, durable=True)
        level = await db.run_transaction(level_of)
        assert (durable_level, level) == (2, 1)  # FULL for acknowledgements, NORMAL otherwise
    finally:
        await db.dispose()
    reopened = Database(f"sqlite+aiosqlite:///{target}")
    try:
        async with reopened.session() as session:
            assert (await session.get(Signal, signal_id)) is not None
    finally:
        await reopened.dispose()
