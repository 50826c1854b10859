"""Group commit for alerts: many concurrent webhooks share one transaction.

Each alert's signal row and its execution job are written in the same transaction, and the
webhook answers only after that transaction committed (the transactional outbox). Batching the
commits of concurrent requests keeps that promise cheap: one commit (and on SQLite FULL one
fsync) serves every alert that arrived while the previous batch was being written. On SQLite a
child process writes and commits the batches (`committer.CommitProcess`, by default), with the
same `store_batch`, so the event loop goes on serving meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

import structlog
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Dialect,
    Select,
    String,
    Table,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from pinelab.clock import now
from pinelab.db import Database
from pinelab.db.engine import json_dumps
from pinelab.jobs.models import Job
from pinelab.jobs.queue import job_values
from pinelab.signals.models import Signal

if TYPE_CHECKING:
    from pinelab.signals.committer import CommitProcess

log = structlog.get_logger(__name__)

ACCEPTED = "accepted"
REJECTED = "rejected"
DUPLICATE = "duplicate"
MAX_BATCH = 256

Outcome = tuple[int, str]  # a stored alert's signal id and final status

# Core statements (no ORM unit of work): the hot path of every webhook.
_SIGNAL_TABLE = cast(Table, Signal.__table__)
_INSERT_SIGNALS = insert(_SIGNAL_TABLE).returning(_SIGNAL_TABLE.c.id, sort_by_parameter_order=True)
_INSERT_JOBS = insert(cast(Table, Job.__table__))


@dataclass(eq=False)  # each alert is itself: equal column values are still two alerts
class PendingSignal:
    """A signal waiting for the next group commit."""

    values: dict[str, Any]
    job_kind: str | None = None
    job_max_attempts: int = 5
    duplicate_window_seconds: int = 0
    # Set by `SignalWriter.write`, from the loop it captured: `asyncio.get_running_loop()`
    # costs a getpid() system call, once per alert here.
    future: asyncio.Future[Outcome] = field(init=False, repr=False)
    # A repeat of an alert earlier in the same batch: its id becomes `duplicate_of_id` once the
    # batch's ids are known.
    repeat_of: PendingSignal | None = field(default=None, init=False, repr=False)


class SignalWriter:
    """Collects signals from concurrent requests and commits them in batches."""

    def __init__(
        self,
        db: Database,
        *,
        on_commit: Callable[[int], None] | None = None,
        process: CommitProcess | None = None,
    ) -> None:
        self._db = db
        self._on_commit = on_commit
        # On SQLite, the child process that writes and commits the batches (`committer`).
        self._process = process
        self._pending: list[PendingSignal] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start the background committer (and its commit process, if it has one)."""
        if self._process is not None:
            await self._process.start()
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="signal-writer")

    async def stop(self) -> None:
        """Commit what is pending, then stop (the commit process too, if it was started)."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._ready.set()
            await task
            self._loop = None
        if self._process is not None:
            await self._process.stop()

    def write(self, pending: PendingSignal) -> Awaitable[Outcome]:
        """Store a signal (and its job); await (signal id, final status), ready once committed.

        A plain function handing back the future (not a coroutine awaiting it): one frame less
        for every alert to pass through when its batch commits.
        """
        pending.future = (self._loop or asyncio.get_running_loop()).create_future()
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
            # One more turn of the loop: requests already read from their sockets reach the
            # batch too (measured at c=64: 18 → 39 alerts per commit, half the fsyncs).
            await asyncio.sleep(0)
            self._ready.clear()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._write_batch(batch)
            if self._stopping:
                return

    async def _write_batch(self, batch: list[PendingSignal]) -> None:
        outcomes: Sequence[Outcome | None]
        try:
            outcomes = await self._commit(batch)
        except IntegrityError:
            # Another process stored the same idempotency key meanwhile: redo one by one.
            one_by_one: list[Outcome | None] = []
            for item in batch:
                try:
                    one_by_one.extend(await self._commit([item]))
                except Exception as exc:  # the caller answers 503; nothing was acknowledged
                    item.future.set_exception(exc)
                    one_by_one.append(None)
            outcomes = one_by_one
        except Exception as exc:
            log.exception("signal_batch_failed", size=len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        jobs = _answer(batch, outcomes)
        if self._on_commit is not None and jobs:
            self._on_commit(jobs)

    async def _commit(self, batch: list[PendingSignal]) -> list[Outcome]:
        process = self._process
        if process is not None:
            return await self._db.run_serialised(lambda: process.commit(batch))
        return await self._db.run_transaction(lambda c: store_batch(c, batch), durable=True)


def _answer(batch: list[PendingSignal], outcomes: Sequence[Outcome | None]) -> int:
    """Answer each committed alert of a batch; return how many jobs were committed with them."""
    jobs = 0
    for item, outcome in zip(batch, outcomes, strict=True):
        if outcome is None:
            continue
        # By the stored status: the batch may have been written in another process.
        if _job_kind(item, outcome[1]) is not None:
            jobs += 1
        if not item.future.done():
            item.future.set_result(outcome)
    return jobs


def store_batch(
    connection: Connection, batch: list[PendingSignal], moment: datetime | None = None
) -> list[Outcome]:
    """Write a batch of signals and their jobs (one transaction, run by the caller).

    The jobs are created at `moment` (now by default): the commit process is given the API
    process's, so one clock dates everything.
    """
    moment = now() if moment is None else moment
    if connection.dialect.name == "sqlite":
        return _store_batch_sqlite(connection, batch, moment)
    _mark_duplicates(connection, batch)
    ids = list(connection.execute(_INSERT_SIGNALS, [item.values for item in batch]).scalars())
    repeats = _link_repeats(batch, ids)
    if repeats:  # rows written before their originals' ids were known
        connection.execute(
            update(_SIGNAL_TABLE)
            .where(_SIGNAL_TABLE.c.id == bindparam("repeat_id"))
            .values(duplicate_of_id=bindparam("original_id")),
            [{"repeat_id": repeat, "original_id": original} for repeat, original in repeats],
        )
    jobs = _new_jobs(batch, ids, moment)
    if jobs:
        connection.execute(_INSERT_JOBS, jobs)
    return [(signal_id, item.values["status"]) for item, signal_id in zip(batch, ids, strict=True)]


class _SQLiteStatements:
    """The batch's statements for the stdlib sqlite3 driver: the hot path on SQLite.

    A batch writes with two statements, whatever its size: one multi-row INSERT of its signals
    and one of their jobs (a statement per row cost a third of the batch). The signals get their
    ids here, counting on from the largest stored one: the batch holds SQLite's write lock, so
    nobody else inserts meanwhile, and these are the ids SQLite would have given them. Values
    are converted as Core converts them (`_converter`), so rows are stored exactly as through
    Core.
    """

    def __init__(self, dialect: Dialect) -> None:
        signal_columns = _sqlite_columns(_SIGNAL_TABLE, dialect)
        job_columns = _sqlite_columns(_JOB_TABLE, dialect, _JOB_FIELDS)
        self.signal_row = _RowLayout(signal_columns)
        self.job_row = _RowLayout(job_columns)
        self._dialect = dialect
        self._key_queries: dict[int, str] = {}
        self.signals = _MultiRowInsert(
            _SIGNAL_TABLE, [_SIGNAL_TABLE.c.id.name, *(name for name, _ in signal_columns)], dialect
        )
        self.jobs = _MultiRowInsert(_JOB_TABLE, [name for name, _ in job_columns], dialect)

    def key_query(self, count: int) -> str:
        """Return the query for the ids of a strategy's signals with any of `count` keys."""
        query = self._key_queries.get(count)
        if query is None:
            keys = [bindparam(f"k{index}", type_=String()) for index in range(count)]
            statement = select(Signal.idempotency_key, Signal.id).where(
                Signal.strategy_id == bindparam("strategy_id"), Signal.idempotency_key.in_(keys)
            )
            query = self._key_queries[count] = str(statement.compile(dialect=self._dialect))
        return query


class _MultiRowInsert:
    """An INSERT of one row with positional parameters, and the same for any number of rows."""

    def __init__(self, table: Table, names: list[str], dialect: Dialect) -> None:
        self._table = table
        self._names = names
        self._dialect = dialect
        self._by_count: dict[int, str] = {}

    def execute(self, cursor: sqlite3.Cursor, params: list[Any], variable_limit: int) -> None:
        """Insert the rows whose values are `params`, row after row, within SQLite's limit."""
        width = len(self._names)
        rows = len(params) // width
        per_statement = max(1, variable_limit // width)
        if rows <= per_statement:
            cursor.execute(self.sql(rows), params)
            return
        for first in range(0, rows, per_statement):
            count = min(per_statement, rows - first)
            cursor.execute(self.sql(count), params[first * width : (first + count) * width])

    def sql(self, count: int) -> str:
        """Return the INSERT of `count` rows."""
        statement = self._by_count.get(count)
        if statement is None:
            one_row = insert(self._table).values({name: bindparam(name) for name in self._names})
            compiled = one_row.compile(dialect=self._dialect)
            if list(compiled.positiontup or ()) != self._names:
                raise RuntimeError(f"unexpected parameter order in {compiled}")
            values = "(" + ", ".join("?" * len(self._names)) + ")"
            statement = str(compiled)
            if not statement.endswith(values):
                raise RuntimeError(f"unexpected INSERT form: {statement}")
            statement += (", " + values) * (count - 1)
            self._by_count[count] = statement
        return statement


_JOB_TABLE = cast(Table, Job.__table__)
_JOB_FIELDS = frozenset(job_values("kind", {}, max_attempts=1))
_Column = tuple[str, Callable[[Any], Any] | None]
_sqlite_statements: _SQLiteStatements | None = None
_LAST_SIGNAL_ID = "SELECT coalesce(max(id), 0) FROM signal"
BATCH_STATEMENTS = "signal batch: INSERT INTO signal …; INSERT INTO retry_queue …"  # for errors


def _sqlite_columns(
    table: Table, dialect: Dialect, only: frozenset[str] | None = None
) -> list[_Column]:
    """The columns a batch writes, each with the conversion Core applies to its values."""
    return [
        (column.name, _converter(column, dialect))
        for column in table.columns
        if not column.primary_key and (only is None or column.name in only)
    ]


def _converter(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    if isinstance(column.type, JSON):
        # What Core's JSON processor does to a value that is not None, without its wrappers.
        return json_dumps
    # The dialect's implementation of the type, as Core applies it (UTC text dates on SQLite).
    return column.type.dialect_impl(dialect).bind_processor(dialect)


class _RowLayout:
    """Turns a row's values into a multi-row INSERT's parameters, converted as Core would.

    The values are fetched in one call (`itemgetter`) and only the columns with a converter are
    touched. A timestamp that is the very object converted last reuses its text (a batch's jobs
    share one moment for their three dates); datetimes are immutable, so that text is right.
    """

    def __init__(self, columns: list[_Column]) -> None:
        self._get = itemgetter(*(name for name, _ in columns))
        self._converted = [
            (index, convert) for index, (_, convert) in enumerate(columns) if convert is not None
        ]
        self._last_moment: datetime | None = None
        self._last_text: Any = None

    def add(self, params: list[Any], values: dict[str, Any]) -> None:
        """Append the converted values of one row to `params`."""
        start = len(params)
        params.extend(self._get(values))
        for index, convert in self._converted:
            value = params[start + index]
            if value is None:
                continue
            if type(value) is not datetime:
                params[start + index] = convert(value)
            elif value is self._last_moment:
                params[start + index] = self._last_text
            else:
                params[start + index] = self._last_text = convert(value)
                self._last_moment = value


def _store_batch_sqlite(
    connection: Connection, batch: list[PendingSignal], moment: datetime
) -> list[Outcome]:
    global _sqlite_statements
    statements = _sqlite_statements
    if statements is None:
        statements = _sqlite_statements = _SQLiteStatements(connection.dialect)
    driver = connection.connection.driver_connection
    if driver is None:  # pragma: no cover - a live transaction always has its connection
        raise RuntimeError("no database connection")
    cursor = driver.cursor()
    try:
        existing: dict[tuple[int, str | None], int] = {}
        for strategy_id, keys in _keys_by_strategy(batch).items():
            query = statements.key_query(len(keys))
            for key, signal_id in cursor.execute(query, (strategy_id, *keys)):
                existing[(strategy_id, key)] = signal_id
        _mark_repeats(batch, existing)
        _mark_body_duplicates(connection, batch)
        (last_id,) = cursor.execute(_LAST_SIGNAL_ID).fetchone()
        ids = list(range(last_id + 1, last_id + 1 + len(batch)))
        _link_repeats(batch, ids)
        rows: list[Any] = []
        for item, signal_id in zip(batch, ids, strict=True):
            rows.append(signal_id)
            statements.signal_row.add(rows, item.values)
        jobs: list[Any] = []
        for job in _new_jobs(batch, ids, moment):
            statements.job_row.add(jobs, job)
        # Older SQLite builds allow 999 parameters a statement (newer ones 32,766): a batch
        # larger than that many parameters is written in as few statements as they allow.
        limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        statements.signals.execute(cursor, rows, limit)
        if jobs:
            statements.jobs.execute(cursor, jobs, limit)
    except sqlite3.Error as exc:  # raised as Core raises it (IntegrityError, OperationalError…)
        raise DBAPIError.instance(BATCH_STATEMENTS, None, exc, sqlite3.Error) from exc
    finally:
        cursor.close()
    return [(signal_id, item.values["status"]) for item, signal_id in zip(batch, ids, strict=True)]


def _new_jobs(batch: list[PendingSignal], ids: list[int], moment: datetime) -> list[dict[str, Any]]:
    """The column values of the jobs of the batch's accepted signals, created together."""
    return [
        job_values(
            kind,
            {"signal_id": signal_id},
            max_attempts=item.job_max_attempts,
            moment=moment,
            user_id=item.values["user_id"],
            strategy_id=item.values["strategy_id"],
        )
        for item, signal_id in zip(batch, ids, strict=True)
        if (kind := _job_kind(item)) is not None
    ]


def _job_kind(item: PendingSignal, status: str | None = None) -> str | None:
    """Return the kind of job a batch's signal is stored with: only an accepted one has one.

    `status` is the status it was stored with, when known; else the one its values hold.
    """
    stored = item.values["status"] if status is None else status
    return item.job_kind if stored == ACCEPTED else None


def _keys_by_strategy(batch: list[PendingSignal]) -> dict[int, list[str]]:
    """Group the idempotency keys of the batch's accepted alerts by strategy."""
    keys_by_strategy: dict[int, set[str]] = {}
    for item in batch:
        if item.values.get("idempotency_key") and item.values["status"] == ACCEPTED:
            keys_by_strategy.setdefault(item.values["strategy_id"], set()).add(
                item.values["idempotency_key"]
            )
    return {strategy_id: sorted(keys) for strategy_id, keys in keys_by_strategy.items()}


def _mark_repeats(batch: list[PendingSignal], existing: dict[tuple[int, str | None], int]) -> None:
    """Mark alerts whose (strategy, key) is stored already or came earlier in the batch."""
    first: dict[tuple[int, str | None], PendingSignal] = {}
    for item in batch:
        if not item.values.get("idempotency_key") or item.values["status"] != ACCEPTED:
            continue
        key = (item.values["strategy_id"], item.values["idempotency_key"])
        if key in existing or key in first:
            reason = "same strategy, id and time as an earlier alert"
            _as_duplicate(item, existing.get(key), reason, first.get(key))
        else:
            first[key] = item


def _link_repeats(batch: list[PendingSignal], ids: list[int]) -> list[tuple[int, int]]:
    """Point each repeat of an alert of this batch at that alert's id; return (repeat, original).

    A repeat marked in an earlier attempt at a batch that failed, and now written alone, keeps
    what that attempt gave it.
    """
    if not any(item.repeat_of is not None for item in batch):
        return []
    id_of = {id(item): signal_id for item, signal_id in zip(batch, ids, strict=True)}
    links = []
    for item, signal_id in zip(batch, ids, strict=True):
        original = None if item.repeat_of is None else id_of.get(id(item.repeat_of))
        if original is not None:
            item.values["duplicate_of_id"] = original
            links.append((signal_id, original))
    return links


def _mark_duplicates(session: Connection, batch: list[PendingSignal]) -> None:
    """Mark repeats: same strategy and idempotency key, or same body inside the window."""
    keys_by_strategy = _keys_by_strategy(batch)
    existing: dict[tuple[int, str | None], int] = {}
    if keys_by_strategy:
        # (strategy_id, idempotency_key) is the unique index: each clause is an index lookup.
        query = select(Signal.strategy_id, Signal.idempotency_key, Signal.id).where(
            or_(
                *(
                    and_(Signal.strategy_id == strategy_id, Signal.idempotency_key.in_(keys))
                    for strategy_id, keys in keys_by_strategy.items()
                )
            )
        )
        existing = {(row[0], row[1]): row[2] for row in session.execute(query)}
    _mark_repeats(batch, existing)
    _mark_body_duplicates(session, batch)


def _mark_body_duplicates(session: Connection, batch: list[PendingSignal]) -> None:
    """Mark repeats of the same body inside the strategy's duplicate window."""
    for position, item in enumerate(batch):
        if (
            item.values["status"] == ACCEPTED
            and not item.values.get("idempotency_key")
            and item.duplicate_window_seconds > 0
        ):
            _check_body_window(session, item, batch[:position])


def _check_body_window(
    session: Connection, item: PendingSignal, earlier: list[PendingSignal]
) -> None:
    values = item.values
    since = values["received_at"] - timedelta(seconds=item.duplicate_window_seconds)
    earlier_in_batch = next(
        (
            other
            for other in reversed(earlier)
            if other.values["status"] == ACCEPTED
            and other.values["strategy_id"] == values["strategy_id"]
            and other.values["body_hash"] == values["body_hash"]
        ),
        None,
    )
    stored = session.execute(window_query(values, since)).scalar_one_or_none()
    if stored is not None or earlier_in_batch is not None:
        reason = f"same alert body within {item.duplicate_window_seconds}s"
        _as_duplicate(item, stored, reason, earlier_in_batch)


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
    item: PendingSignal,
    original_id: int | None,
    reason: str,
    earlier_in_batch: PendingSignal | None = None,
) -> None:
    """Mark a repeat; the original is a stored signal, or the newest copy earlier in the batch."""
    item.repeat_of = earlier_in_batch
    item.values.update(
        status=DUPLICATE, reason=reason, duplicate_of_id=original_id, idempotency_key=None
    )
