"""The async engine, and the two ways in: a session to read, a transaction to write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, event
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
    """One async engine; the only way code reaches the database.

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
        if self.is_sqlite:
            _configure_sqlite(self.engine, synchronous=sqlite_synchronous)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
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

    async def run_transaction(self, work: Callable[[Connection], T]) -> T:
        """Run synchronous Core work in one transaction (deprecated: use `transaction()`)."""
        async with self.transaction() as session:
            return await session.run_sync(lambda sync: work(sync.connection()))

    async def run_session(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run synchronous ORM work, committed when `write` (deprecated: use the two above)."""
        if write:
            async with self.transaction() as session:
                return await session.run_sync(work)
        async with self.session() as session:
            return await session.run_sync(work)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine, *, synchronous: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
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
