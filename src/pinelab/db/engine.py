"""The database: an async session to read, one to write, and synchronous units of work.

`session()` and `transaction()` serve async code (routes, services). `run(work)` runs a
synchronous unit of work (ORM `Session`; Core through `session.connection()`) in one
transaction: the hot paths (the alerts' group commit, execution, the paper venue, the job
queue) are written that way, so each of their transactions crosses to the database once. On
PostgreSQL that is `AsyncSession.run_sync` on asyncpg. On SQLite it is one hop to the database
thread, which runs the whole unit on the stdlib driver: through aiosqlite every driver call
(cursor, execute, fetch, close) is a hop of its own to its thread, about 0.25 ms of CPU per
statement, which made a paper order cost ~11 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000  # how long a write waits for another process's lock (a CLI command)
# SQLite copies the WAL into the database when a commit leaves it this long (its default, ~4 MB)
# and, once every frame is copied, the next commit writes the WAL from its start; the file is
# then cut back to this size.
WAL_AUTOCHECKPOINT_PAGES = 1000
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


def json_dumps(value: Any) -> str:
    """Serialize a JSON column's value (orjson: several times faster than the stdlib).

    Non-string keys become strings, as with json.
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (alert intents, job payloads, reports) are written and read with orjson.
JSON_CODEC: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": orjson.loads}


class Database:
    """The only way code reaches the database.

    On SQLite every write of this process is serialised by one asyncio lock: our own
    connections never wait on SQLite's lock for each other, and the WAL checkpoint a commit
    runs sees no other writer, so it copies every frame and the WAL starts over (bounded).
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            kwargs = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(url, **JSON_CODEC, **kwargs)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        # SQLite: a durable unit (one that acknowledges something to a client: the alerts'
        # group commit) commits at `sqlite_synchronous`; every other commit at NORMAL, which in
        # WAL mode survives a crash of the process, and what a power cut could take back is
        # redone by the worker (its job is still queued) or was never acknowledged.
        self.durable_synchronous = sqlite_synchronous
        # SQLite's synchronous units of work: one stdlib connection on one thread.
        self._sync_engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            self._sync_engine = create_engine(
                make_url(url).set(drivername="sqlite"), pool_size=1, max_overflow=0, **JSON_CODEC
            )
            _configure_sqlite(self._sync_engine)

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

    async def run(
        self, work: Callable[[Session], T], *, write: bool = True, durable: bool = False
    ) -> T:
        """Run a synchronous unit of work in one transaction, committed when `write`.

        A `durable` unit's commit is made as durable as `PINELAB_SQLITE_SYNCHRONOUS` says
        (PostgreSQL's commits always are).
        """
        if self._sync_engine is None or self._write_lock is None:
            async with self.transaction() if write else self.session() as session:
                return await session.run_sync(work)
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="pinelab-sqlite")
        loop = asyncio.get_running_loop()
        if not write:
            return await loop.run_in_executor(self._thread, _unit, self._sync_engine, work, None)
        level = self.durable_synchronous if durable else "NORMAL"
        async with self._write_lock:
            done = loop.run_in_executor(self._thread, _unit, self._sync_engine, work, level)
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:
                await asyncio.wait([done])  # the write lock covers the whole write
                raise

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        thread, self._thread = self._thread, None
        if self._sync_engine is not None and thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._sync_engine.dispose)
            thread.shutdown()


def _unit(engine: Engine, work: Callable[[Session], T], synchronous: str | None) -> T:
    """Run `work` in a session; commit it at the `synchronous` level, or roll back when None."""
    with Session(engine, expire_on_commit=False) as session:
        if synchronous is None:
            return work(session)
        # Before SQLite's transaction begins (the driver begins it at the first write).
        session.connection().exec_driver_sql(f"PRAGMA synchronous={synchronous}")
        result = work(session)
        session.commit()
        return result


def _configure_sqlite(engine: AsyncEngine | Engine, *, synchronous: str = "NORMAL") -> None:
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(target, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        cursor.close()
