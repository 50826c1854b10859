"""The async engine, sessions and transactions; SQLite gets WAL and sane pragmas."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
import structlog
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

T = TypeVar("T")
log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 10_000  # how long a write waits for another process's lock
INLINE_BUSY_TIMEOUT_MS = 50  # ... on the event loop, before the batch moves to the thread
_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
CHECKPOINT_SECONDS = 0.5  # the longest the WAL grows unchecked while alerts are committed
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024  # the WAL is truncated back to this after a checkpoint


def json_dumps(value: Any) -> str:
    """Serialize a JSON column's value (orjson: several times faster than the stdlib).

    Non-string keys become strings, as with json.
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (alert intents, job payloads, reports) are written and read with orjson.
JSON_CODEC: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": orjson.loads}


class Database:
    """One engine and its session factory; the only way code reaches the database."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            kwargs = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(url, **JSON_CODEC, **kwargs)
        # SQLite: commits that acknowledge something to a client (an alert's 202) are made
        # durable at `sqlite_synchronous`; the rest run at NORMAL (WAL: safe against a process
        # crash; work lost to a power cut is redone idempotently by the worker).
        self.durable_synchronous = sqlite_synchronous
        self._thread_engine: Engine | None = None
        self._inline_engine: Engine | None = None
        self._inline_connection: Connection | None = None
        self._durable_engine: Engine | None = None
        self._checkpoint_engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._checkpointer: ThreadPoolExecutor | None = None
        self._committer: ThreadPoolExecutor | None = None
        self._checkpointing: asyncio.Task[None] | None = None
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._last_checkpoint = 0.0
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer: serialising our own writes avoids its sleep-based busy waits.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Yield a session for reading; nothing is committed."""
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Yield a session whose work is committed on success and rolled back on error."""
        if self._write_lock is None:
            async with self.sessionmaker() as session, session.begin():
                yield session
            return
        async with self._write_lock, self.sessionmaker() as session, session.begin():
            yield session

    async def run_transaction(self, work: Callable[[Connection], T], *, durable: bool = False) -> T:
        """Run a synchronous unit of work in one transaction and return its result.

        On SQLite the whole transaction runs in a single hop to one dedicated thread (the stdlib
        driver), instead of one hop per statement through aiosqlite; elsewhere it runs through
        the async driver (`run_sync`).

        A `durable` transaction on SQLite (the group commit that acknowledges alerts) runs its
        statements on the event loop itself, at the durable synchronous level, and only its
        commit (the WAL write and its fsync, during which SQLite lets go of the GIL) on the
        commit thread: two GIL handoffs per batch, where running every statement in a thread
        made each win the GIL back from the busy loop (measured: p99 95 ms at 64 connections);
        and the loop reads the next requests while the disk syncs (c=64: 9.9k → 12.5k
        alerts/s). The one long step of a commit, the WAL checkpoint, is never taken by that
        connection: `_checkpoint_soon` has another thread do it. Nor does it wait long for a
        write lock another process holds (a CLI command): after `INLINE_BUSY_TIMEOUT_MS` the
        batch is rolled back and run again on the SQLite thread, which waits as long as any
        other write.
        """
        if self._write_lock is None:
            async with self.engine.begin() as connection:
                return await connection.run_sync(work)
        async with self._write_lock:
            loop = asyncio.get_running_loop()
            if durable:
                try:
                    return await self._run_durable_inline(work)
                except OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                    # Another process holds SQLite's write lock: wait for it off the loop.
                    log.info("sqlite_busy_commit_moved_to_thread")
                    engine = self._durable_thread_engine()
                    return await loop.run_in_executor(
                        self._thread(), _run_in_transaction, engine, work
                    )
                finally:
                    self._checkpoint_soon()
            engine = self._sqlite_engine()
            return await loop.run_in_executor(self._thread(), _run_in_transaction, engine, work)

    async def run_serialised(self, write: Callable[[], Awaitable[T]]) -> T:
        """Await a write that another connection makes as if it were one of this process's.

        On SQLite it runs under the write lock that serialises every write of this process
        (none of them then waits on SQLite's own lock for it), and is followed, like every
        durable commit, by a checkpoint soon. The commit process's batches come this way.
        """
        if self._write_lock is None:
            return await write()
        async with self._write_lock:
            try:
                return await write()
            finally:
                self._checkpoint_soon()

    async def _run_durable_inline(self, work: Callable[[Connection], T]) -> T:
        """Run the statements on the loop and the commit (its fsync) on the commit thread.

        The connection stays checked out between batches (a pool checkout and the reset on
        return cost a third of a one-alert batch); one whose transaction failed is let go, and
        the next batch takes a fresh one.
        """
        if self._inline_connection is None:
            self._inline_connection = self._inline_sqlite_engine().connect()
        connection = self._inline_connection
        try:
            transaction = connection.begin()
            result = work(connection)
            loop = asyncio.get_running_loop()
            await _until_done(loop.run_in_executor(self._commit_thread(), transaction.commit))
        except BaseException:
            self._inline_connection = None
            connection.close()  # rolls back what is left of the transaction
            raise
        return result

    def _commit_thread(self) -> ThreadPoolExecutor:
        if self._committer is None:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix="pinelab-commit")
        return self._committer

    async def run_session(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run a synchronous ORM unit of work in one transaction and return its result.

        The work gets a `Session` (objects stay usable after it closes) and is committed at the
        end when `write`, else rolled back: a read, which on SQLite skips the write lock. On
        SQLite it runs in a single hop to the dedicated thread (the stdlib driver), instead of
        one hop per statement through aiosqlite; elsewhere through `AsyncSession.run_sync`.
        """
        if self._write_lock is None:
            async with self.sessionmaker() as session:
                if not write:
                    return await session.run_sync(work)
                async with session.begin():
                    return await session.run_sync(work)
        engine = self._sqlite_engine()
        loop = asyncio.get_running_loop()
        if not write:
            return await loop.run_in_executor(self._thread(), _run_in_session, engine, work, False)
        async with self._write_lock:
            return await loop.run_in_executor(self._thread(), _run_in_session, engine, work, True)

    def _sqlite_engine(self) -> Engine:
        """The stdlib-driver engine whose one connection lives on the SQLite thread."""
        if self._thread_engine is None:
            self._thread_engine = self._sync_sqlite_engine("NORMAL")
        return self._thread_engine

    def _inline_sqlite_engine(self) -> Engine:
        """The engine of durable batches on the loop: it never checkpoints, waits briefly.

        Its connection runs statements on the loop and commits on the commit thread, one after
        the other, never at once (hence `check_same_thread` off).
        """
        if self._inline_engine is None:
            self._inline_engine = self._sync_sqlite_engine(
                self.durable_synchronous,
                autocheckpoint=False,
                busy_timeout_ms=INLINE_BUSY_TIMEOUT_MS,
                check_same_thread=False,
            )
        return self._inline_engine

    def _durable_thread_engine(self) -> Engine:
        """The engine of durable commits that had to wait for another process's write lock."""
        if self._durable_engine is None:
            self._durable_engine = self._sync_sqlite_engine(self.durable_synchronous)
        return self._durable_engine

    def _sync_sqlite_engine(
        self,
        synchronous: str,
        *,
        autocheckpoint: bool = True,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        check_same_thread: bool = True,
    ) -> Engine:
        return sqlite_engine(
            self.url,
            synchronous,
            autocheckpoint=autocheckpoint,
            busy_timeout_ms=busy_timeout_ms,
            check_same_thread=check_same_thread,
        )

    def _checkpoint_soon(self) -> None:
        """Copy the WAL into the database on the checkpoint thread, at most once per interval.

        A commit that comes too soon after the last checkpoint sets a timer for the end of the
        interval instead, so what a burst of alerts left in the WAL is copied shortly after it
        ends, not by the next burst (whose first commits then waited behind that checkpoint's
        writes and sync: 60-190 ms at the start of a c=64 run after a c=16 one).
        """
        loop = asyncio.get_running_loop()
        moment = time.monotonic()
        wait = self._last_checkpoint + CHECKPOINT_SECONDS - moment
        if self._checkpointing is not None or wait > 0:
            if self._checkpoint_timer is None:
                self._checkpoint_timer = loop.call_later(
                    max(wait, CHECKPOINT_SECONDS / 10), self._checkpoint_timer_fired
                )
            return
        self._last_checkpoint = moment
        if self._checkpointer is None:
            self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="pinelab-checkpoint")
        engine = self._sqlite_engine_for_checkpoints()
        self._checkpointing = loop.create_task(self._fold_wal(engine), name="sqlite-checkpoint")
        self._checkpointing.add_done_callback(self._checkpoint_done)

    async def _fold_wal(self, engine: Engine) -> None:
        """Copy the WAL into the database: the bulk beside the commits, the rest between two.

        A PASSIVE checkpoint copies the frames committed before it began. Under a steady stream
        of alerts newer ones are always there when it ends, so SQLite never starts the WAL over
        and the file grows for as long as the stream lasts (400-700 MB in a 10 s run at 64
        connections), with a slow commit now and then and a 120 ms one when the file is cut
        back after the burst. So the bulk is copied while batches commit, and what they added
        meanwhile (a few batches) with the write lock held: then every frame is in the database
        and the next commit writes the WAL from its start (it stays at tens of MB).
        """
        if self._checkpointer is None or self._write_lock is None:  # pragma: no cover
            raise RuntimeError("checkpoints are for SQLite, from _checkpoint_soon")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._checkpointer, _checkpoint, engine)
        async with self._write_lock:
            await loop.run_in_executor(self._checkpointer, _checkpoint, engine)

    def _checkpoint_timer_fired(self) -> None:
        self._checkpoint_timer = None
        self._checkpoint_soon()

    def _sqlite_engine_for_checkpoints(self) -> Engine:
        if self._checkpoint_engine is None:
            self._checkpoint_engine = self._sync_sqlite_engine("NORMAL")
        return self._checkpoint_engine

    def _checkpoint_done(self, future: asyncio.Task[None]) -> None:
        self._checkpointing = None
        if not future.cancelled() and future.exception() is not None:
            log.warning("sqlite_checkpoint_failed", error_type=type(future.exception()).__name__)

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pinelab-sqlite")
        return self._executor

    async def dispose(self) -> None:
        """Close every pooled connection (after the checkpoint in progress, if any)."""
        await self.engine.dispose()
        loop = asyncio.get_running_loop()
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        for executor, engines in (
            (self._executor, (self._thread_engine, self._durable_engine)),
            (self._checkpointer, (self._checkpoint_engine,)),
        ):
            if executor is not None:
                for engine in engines:
                    if engine is not None:
                        await loop.run_in_executor(executor, engine.dispose)
                executor.shutdown(wait=True)
        self._executor = self._checkpointer = None
        self._thread_engine = self._durable_engine = self._checkpoint_engine = None
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None
        if self._inline_connection is not None:
            self._inline_connection.close()
            self._inline_connection = None
        if self._inline_engine is not None:
            self._inline_engine.dispose()
            self._inline_engine = None


async def _until_done(future: asyncio.Future[None]) -> None:
    """Await a commit running in a thread; if cancelled meanwhile, first let it finish.

    The connection and the write lock must not be let go under a commit in progress.
    """
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    future.result()


def _run_in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return work(connection)


def _run_in_session(engine: Engine, work: Callable[[Session], T], commit: bool) -> T:
    with Session(engine, expire_on_commit=False) as session:
        if not commit:
            return work(session)
        with session.begin():
            return work(session)


def sqlite_engine(
    url: str,
    synchronous: str,
    *,
    autocheckpoint: bool = True,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    check_same_thread: bool = True,
) -> Engine:
    """A one-connection engine on the stdlib sqlite3 driver, with PineLab's pragmas."""
    engine = create_engine(
        make_url(url).set(drivername="sqlite"),
        pool_size=1,
        max_overflow=0,
        connect_args={"check_same_thread": check_same_thread},
        **JSON_CODEC,
    )
    _configure_sqlite(
        engine,
        synchronous=synchronous,
        autocheckpoint=autocheckpoint,
        busy_timeout_ms=busy_timeout_ms,
    )
    return engine


def _checkpoint(engine: Engine) -> None:
    # PASSIVE: copies what it can without waiting for or blocking readers and writers.
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _is_busy(exc: OperationalError) -> bool:
    """Tell whether SQLite refused because another connection holds the write lock."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _SQLITE_BUSY_CODES  # primary of extended


def _configure_sqlite(
    engine: AsyncEngine | Engine,
    *,
    synchronous: str = "NORMAL",
    autocheckpoint: bool = True,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> None:
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(target, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()
