"""Shared fixtures: a migrated database per test (SQLite always, PostgreSQL when configured),
settings pointing at it, the app with its lifespan, and an HTTP client."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from pinelab import clock
from pinelab.config import Settings
from pinelab.db import Database, migrate
from pinelab.db.models import Base
from pinelab.main import Services, build_services, create_app

PG_URL = os.environ.get("PINELAB_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("PINELAB_TEST_REDIS_URL", "")

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres", marks=pytest.mark.skipif(not PG_URL, reason="PINELAB_TEST_DATABASE_URL not set")
    ),
]


def asyncpg_url(url: str) -> str:
    """Return a SQLAlchemy asyncpg URL for a postgres:// URL."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate one SQLite file; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "pinelab.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def pg_admin(url: str, statement: str) -> None:
    """Run one statement on a PostgreSQL server (outside any test database)."""
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """Create and migrate a private PostgreSQL database for this test session."""
    name = f"pinelab_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(pg_admin(PG_URL, f'CREATE DATABASE "{name}"'))
    url = make_url(asyncpg_url(PG_URL)).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    asyncio.run(pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def empty_tables_statement() -> str:
    """Return the statement that empties every table, children first."""
    # DELETE is ~100x faster than TRUNCATE on the few rows a test leaves behind.
    return ";".join(
        f'DELETE FROM "{table.name}"' for table in reversed(Base.metadata.sorted_tables)
    )


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of an empty, migrated database (SQLite copy or emptied PostgreSQL)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "pinelab.db"
        shutil.copy(template, target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("postgres_database")
    asyncio.run(pg_admin(url, empty_tables_statement()))
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for a test: its own data dir and database."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="test-secret-key-that-is-long-enough-for-hs256-0123456789",
        sqlite_synchronous="NORMAL",
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    """One process's services on the test's database (no HTTP app, not started), closed after."""
    built = build_services(settings)
    yield built
    await built.close()


@pytest.fixture
def context(services: Services) -> Services:
    """The same services under the fixture name the other branches' tests use until the merge."""
    return services


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """A Database on the test's database."""
    database = Database(settings.resolved_database_url, sqlite_synchronous="NORMAL")
    yield database
    await database.dispose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app, started (lifespan run) and stopped around the test."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def frozen_clock() -> Iterator[clock.FrozenClock]:
    """Install a clock the test can move."""
    fake = clock.FrozenClock()
    previous = clock.install(fake)
    yield fake
    clock.install(previous)


@pytest.fixture
def commits() -> Iterator[list[str]]:
    """Record every commit on any engine (the async one and the dedicated SQLite ones)."""
    seen: list[str] = []

    def on_commit(connection: Any) -> None:
        seen.append(connection.engine.url.drivername)

    event.listen(Engine, "commit", on_commit)
    yield seen
    event.remove(Engine, "commit", on_commit)
