"""The async engine, sessions and transactions; SQLite gets WAL and sane pragmas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

T = TypeVar("T")


class Database:
    """One engine and its session factory; the only way code reaches the database."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            kwargs = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # SQLite: commits that acknowledge something to a client (an alert's 202) are made
        # durable at `sqlite_synchronous`; the rest run at NORMAL (WAL: safe against a process
        # crash; work lost to a power cut is redone idempotently by the worker).
        self.durable_synchronous = sqlite_synchronous
        self._sync_engines: dict[str, Engine] = {}
        self._executor: ThreadPoolExecutor | None = None
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
        driver, at the durable level when `durable`), instead of one hop per statement through
        aiosqlite; elsewhere it runs through the async driver (`run_sync`).
        """
        if self._write_lock is None:
            async with self.engine.begin() as connection:
                return await connection.run_sync(work)
        engine = self._sqlite_engine(durable=durable)
        async with self._write_lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread(), _run_in_transaction, engine, work)

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
        engine = self._sqlite_engine(durable=False)
        loop = asyncio.get_running_loop()
        if not write:
            return await loop.run_in_executor(self._thread(), _run_in_session, engine, work, False)
        async with self._write_lock:
            return await loop.run_in_executor(self._thread(), _run_in_session, engine, work, True)

    def _sqlite_engine(self, *, durable: bool) -> Engine:
        key = "durable" if durable else "normal"
        engine = self._sync_engines.get(key)
        if engine is None:
            url = make_url(self.url).set(drivername="sqlite")
            engine = create_engine(url, pool_size=1, max_overflow=0)
            _configure_sqlite(engine, synchronous=self.durable_synchronous if durable else "NORMAL")
            self._sync_engines[key] = engine
        return engine

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pinelab-sqlite")
        return self._executor

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        if self._executor is not None:
            engines, self._sync_engines = list(self._sync_engines.values()), {}
            await asyncio.get_running_loop().run_in_executor(self._executor, _dispose_all, engines)
            self._executor.shutdown(wait=True)
            self._executor = None


def _run_in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return work(connection)


def _run_in_session(engine: Engine, work: Callable[[Session], T], commit: bool) -> T:
    with Session(engine, expire_on_commit=False) as session:
        if not commit:
            return work(session)
        with session.begin():
            return work(session)


def _dispose_all(engines: list[Engine]) -> None:
    for engine in engines:
        engine.dispose()


def _configure_sqlite(engine: AsyncEngine | Engine, *, synchronous: str = "NORMAL") -> None:
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(target, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()
