"""Group commit for alerts: many concurrent webhooks share one transaction.

Each alert's signal row and its execution job are written in the same transaction, and the
webhook answers only after that transaction committed (the transactional outbox). Batching the
commits of concurrent requests keeps that promise cheap: one commit (and on SQLite FULL one
fsync) serves every alert that arrived while the previous batch was being written. A batch is a
few Core statements, the same on SQLite and PostgreSQL: the key lookup, a window lookup per
unkeyed alert, one multi-row INSERT … RETURNING of the signals and one INSERT of their jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Connection, Select, Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs.models import Job
from pinelab.jobs.queue import job_values
from pinelab.signals.models import Signal

log = structlog.get_logger(__name__)

ACCEPTED = "accepted"
REJECTED = "rejected"
DUPLICATE = "duplicate"
MAX_BATCH = 256
KEY_REPEAT = "same strategy and idempotency_key as an earlier alert"

Outcome = tuple[int, str]  # a stored alert's signal id and final status

_SIGNAL_TABLE = cast(Table, Signal.__table__)
_INSERT_SIGNALS = insert(_SIGNAL_TABLE).returning(_SIGNAL_TABLE.c.id)
_INSERT_SIGNALS_IN_ORDER = insert(_SIGNAL_TABLE).returning(
    _SIGNAL_TABLE.c.id, sort_by_parameter_order=True
)
_INSERT_JOBS = insert(cast(Table, Job.__table__))
_LINK_REPEATS = (
    update(_SIGNAL_TABLE)
    .where(_SIGNAL_TABLE.c.id == bindparam("repeat_id"))
    .values(duplicate_of_id=bindparam("original_id"))
)


@dataclass(eq=False)  # each alert is itself: equal column values are still two alerts
class PendingSignal:
    """A signal waiting for the next group commit."""

    values: dict[str, Any]
    job_kind: str | None = None
    job_max_attempts: int = 5
    duplicate_window_seconds: int = 0
    future: asyncio.Future[Outcome] = field(init=False, repr=False)


class SignalWriter:
    """Collects signals from concurrent requests and commits them in batches."""

    def __init__(self, db: Database, *, on_commit: Callable[[], None] | None = None) -> None:
        self._db = db
        self._on_commit = on_commit
        self._pending: list[PendingSignal] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start the background committer."""
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="signal-writer")

    async def stop(self) -> None:
        """Commit what is pending, then stop."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._ready.set()
            await task

    def write(self, pending: PendingSignal) -> Awaitable[Outcome]:
        """Store a signal (and its job); await (signal id, final status), ready once committed."""
        pending.future = asyncio.get_running_loop().create_future()
        if self._task is None:
            return self._write_alone(pending)
        self._pending.append(pending)
        self._ready.set()
        return pending.future

    async def _write_alone(self, pending: PendingSignal) -> Outcome:
        await self._write_batch([pending])
        return await pending.future

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            # One more turn of the loop: requests already read from their sockets join the batch.
            await asyncio.sleep(0)
            self._ready.clear()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._write_batch(batch)
            if self._stopping:
                return

    async def _write_batch(self, batch: list[PendingSignal]) -> None:
        try:
            committed = await self._commit(batch)
        except IntegrityError:
            # Another process stored the same idempotency key meanwhile: redo one by one, so
            # each alert sees the stored one (and any other error is that alert's own).
            committed = [item for item in batch if await self._commit_alone(item)]
        except Exception as exc:  # the callers answer 503: nothing was acknowledged
            log.exception("signal_batch_failed", size=len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        if self._on_commit is not None and any(_job_kind(item) for item in committed):
            self._on_commit()

    async def _commit_alone(self, item: PendingSignal) -> bool:
        try:
            await self._commit([item])
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return False
        return True

    async def _commit(self, batch: list[PendingSignal]) -> list[PendingSignal]:
        """Store the batch in one transaction; answer each alert once it committed."""
        rows = await self._db.run(lambda sync: store_batch(sync.connection(), batch), durable=True)
        for item, (signal_id, values) in zip(batch, rows, strict=True):
            item.values = values
            if not item.future.done():  # else its caller went away (a closed connection)
                item.future.set_result((signal_id, values["status"]))
        return batch


def store_batch(
    connection: Connection, batch: list[PendingSignal]
) -> list[tuple[int, dict[str, Any]]]:
    """Write a batch of signals and the jobs of the accepted ones; return each id and row.

    The caller's transaction commits it. The rows are this attempt's own copies of the values:
    a batch retried alert by alert is checked for duplicates afresh.
    """
    rows = [dict(item.values) for item in batch]
    originals = _mark_duplicates(connection, batch, rows)
    ids = _insert_signals(connection, rows)
    links = []
    for position, original in enumerate(originals):
        if original is not None:  # a repeat of an alert of this batch points at it
            rows[position]["duplicate_of_id"] = ids[original]
            links.append({"repeat_id": ids[position], "original_id": ids[original]})
    if links:
        connection.execute(_LINK_REPEATS, links)
    moment = now()
    jobs = [
        job_values(
            kind,
            {"signal_id": signal_id},
            max_attempts=item.job_max_attempts,
            moment=moment,
            user_id=item.values["user_id"],
            strategy_id=item.values["strategy_id"],
        )
        for item, row, signal_id in zip(batch, rows, ids, strict=True)
        if (kind := _job_kind(item, row)) is not None
    ]
    if jobs:
        connection.execute(_INSERT_JOBS, jobs)
    return list(zip(ids, rows, strict=True))


def _insert_signals(connection: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the rows in one statement (insertmanyvalues); return their ids in their order."""
    if connection.dialect.name != "sqlite":
        return list(connection.execute(_INSERT_SIGNALS_IN_ORDER, rows).scalars())
    # SQLite has no INSERT form that ties RETURNING rows to parameter sets, so SQLAlchemy would
    # insert an ordered batch row by row. A multi-row INSERT gives its rows ascending rowids
    # in the order of its VALUES (each the largest one stored + 1), so sorting them is enough.
    return sorted(connection.execute(_INSERT_SIGNALS, rows).scalars())


def _job_kind(item: PendingSignal, row: dict[str, Any] | None = None) -> str | None:
    """Return the kind of job the signal is stored with: only an accepted one has one."""
    status = (item.values if row is None else row)["status"]
    return item.job_kind if status == ACCEPTED else None


def _mark_duplicates(
    connection: Connection, batch: list[PendingSignal], rows: list[dict[str, Any]]
) -> list[int | None]:
    """Mark repeats: same strategy and idempotency key, or same body inside the window.

    The key is only the sender's explicit `idempotency_key`; an unkeyed alert is a repeat only
    when its whole body (as stored) arrived before within the strategy's duplicate window, as
    TradingView resends it after a 5xx. Return, for each row, the position of the alert of this
    batch it repeats, if any.
    """
    stored = _stored_keys(connection, _keys_by_strategy(rows))
    originals: list[int | None] = [None] * len(rows)
    first_by_key: dict[tuple[int, str], int] = {}
    for position, (item, row) in enumerate(zip(batch, rows, strict=True)):
        if row["status"] != ACCEPTED:
            continue
        if row.get("idempotency_key"):
            key = (row["strategy_id"], row["idempotency_key"])
            if key in stored:
                _as_duplicate(row, stored[key], KEY_REPEAT, None)
            elif key in first_by_key:
                originals[position] = _as_duplicate(row, None, KEY_REPEAT, first_by_key[key])
            else:
                first_by_key[key] = position
        elif item.duplicate_window_seconds > 0:
            originals[position] = _check_body_window(connection, item, rows, position)
    return originals


def _keys_by_strategy(rows: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Group the idempotency keys of the batch's accepted alerts by strategy."""
    keys_by_strategy: dict[int, set[str]] = {}
    for row in rows:
        if row.get("idempotency_key") and row["status"] == ACCEPTED:
            keys_by_strategy.setdefault(row["strategy_id"], set()).add(row["idempotency_key"])
    return {strategy_id: sorted(keys) for strategy_id, keys in keys_by_strategy.items()}


def _stored_keys(
    connection: Connection, keys_by_strategy: dict[int, list[str]]
) -> dict[tuple[int, str], int]:
    """Return the ids of stored signals with any of the keys, by (strategy, key)."""
    if not keys_by_strategy:
        return {}
    # (strategy_id, idempotency_key) is the unique index: each clause is an index lookup.
    query = select(Signal.strategy_id, Signal.idempotency_key, Signal.id).where(
        or_(
            *(
                and_(Signal.strategy_id == strategy_id, Signal.idempotency_key.in_(keys))
                for strategy_id, keys in keys_by_strategy.items()
            )
        )
    )
    return {(strategy_id, key or ""): id_ for strategy_id, key, id_ in connection.execute(query)}


def _check_body_window(
    connection: Connection, item: PendingSignal, rows: list[dict[str, Any]], position: int
) -> int | None:
    """Mark a repeat of an unkeyed body inside the window; return its original's position."""
    row = rows[position]
    earlier = next(
        (
            index
            for index in range(position - 1, -1, -1)
            if rows[index]["status"] == ACCEPTED
            and rows[index]["strategy_id"] == row["strategy_id"]
            and rows[index]["body_hash"] == row["body_hash"]
        ),
        None,
    )
    since = row["received_at"] - timedelta(seconds=item.duplicate_window_seconds)
    stored = connection.execute(window_query(row, since)).scalar_one_or_none()
    if stored is None and earlier is None:
        return None
    reason = f"same alert body within {item.duplicate_window_seconds}s"
    return _as_duplicate(row, stored, reason, earlier)


def window_query(values: dict[str, Any], since: datetime) -> Select[int]:
    """The newest stored copy of an unkeyed alert's body for its strategy since `since`."""
    return (
        select(Signal.id)
        .where(
            Signal.strategy_id == values["strategy_id"],
            # The same body carries the same key, so an earlier copy is unkeyed too; saying so
            # lets the planner use the partial index of unkeyed alerts.
            Signal.idempotency_key.is_(None),
            Signal.body_hash == values["body_hash"],
            Signal.received_at >= since,
            Signal.status.in_([ACCEPTED, "executed", "failed"]),
        )
        .order_by(Signal.id.desc())
        .limit(1)
    )


def _as_duplicate(
    row: dict[str, Any], original_id: int | None, reason: str, in_batch: int | None
) -> int | None:
    """Mark a row as a repeat of a stored signal or of an alert earlier in the batch.

    The newer original wins: the one in this batch, whose id the caller links once known.
    """
    row.update(status=DUPLICATE, reason=reason, duplicate_of_id=original_id, idempotency_key=None)
    return in_batch
