"""Fixtures of the signal writer's tests: a SQLite database at the durable level."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pinelab.db import Database


@pytest.fixture
def durable_path(tmp_path: Path) -> Path:
    """Where `durable_db` keeps its SQLite file."""
    return tmp_path / "durable.db"


@pytest.fixture
async def durable_db(durable_path: Path, sqlite_template: Path) -> AsyncIterator[Database]:
    """SQLite at synchronous=FULL (the default) on its own copy of the migrated template."""
    durable_path.write_bytes(sqlite_template.read_bytes())
    db = Database(f"sqlite+aiosqlite:///{durable_path}", sqlite_synchronous="FULL")
    yield db
    await db.dispose()
