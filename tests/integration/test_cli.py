"""`pinelab create-user` through the real command, in a subprocess, on a fresh SQLite data dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from pinelab.accounts import security, service
from pinelab.accounts.models import User
from pinelab.db import Database
from tests.cli_support import cli_database_url, run_pinelab

PASSWORD = "blue-harbour-lantern-42"


@pytest.fixture
def data_dir(cli_data_dir: Path) -> Path:
    return cli_data_dir


def database(data_dir: Path) -> Database:
    return Database(cli_database_url(data_dir))


def users_in(data_dir: Path) -> list[User]:
    async def fetch() -> list[User]:
        db = database(data_dir)
        try:
            async with db.session() as session:
                return list((await session.execute(select(User).order_by(User.id))).scalars())
        finally:
            await db.dispose()

    return asyncio.run(fetch())


def add_user(data_dir: Path, email: str) -> None:
    async def create() -> None:
        db = database(data_dir)
        try:
            async with db.transaction() as session:
                await service.create_user(session, email=email, password=PASSWORD)
        finally:
            await db.dispose()

    asyncio.run(create())


def test_create_user_stores_a_verified_user_with_a_hashed_password(data_dir: Path) -> None:
    done = run_pinelab(
        data_dir, "create-user", "--email", "Trader@Example.com", "--password", PASSWORD
    )

    assert done.returncode == 0, done.stderr
    assert "created user 1" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    [user] = users_in(data_dir)
    assert (user.email, user.role, user.is_active) == ("trader@example.com", "user", True)
    assert user.email_verified_at is not None
    assert security.verify_password(PASSWORD, user.password_hash)[0]


def test_create_user_with_admin_flag_makes_an_admin(data_dir: Path) -> None:
    done = run_pinelab(
        data_dir, "create-user", "--email", "root@example.com", "--password", PASSWORD, "--admin"
    )

    assert done.returncode == 0, done.stderr
    assert "(admin)" in done.stdout
    assert [user.role for user in users_in(data_dir)] == ["admin"]


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("trader@example.com", PASSWORD, "already exists"),
        ("second@example.com", "short", "at least 15"),
        ("not-an-email", PASSWORD, "Invalid email"),
    ],
)
def test_refused_create_user_exits_2_with_the_reason_and_stores_nothing(
    data_dir: Path, email: str, password: str, message: str
) -> None:
    add_user(data_dir, "trader@example.com")

    refused = run_pinelab(data_dir, "create-user", "--email", email, "--password", password)

    assert refused.returncode == 2
    assert message in refused.stderr
    assert "Traceback" not in refused.stderr
    assert [user.email for user in users_in(data_dir)] == ["trader@example.com"]
