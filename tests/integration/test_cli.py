"""`pinelab create-user` through the real command, in a subprocess, on a fresh SQLite data dir."""

from __future__ import annotations

import asyncio
import os
import select as fd_select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from pinelab.accounts import security, service
from pinelab.accounts.models import User
from pinelab.db import Database
from tests.cli_support import cli_database_url, cli_environment, run_pinelab

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
        data_dir, "create-user", "--email", "Trader@Example.com", stdin=PASSWORD + "\n"
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
        data_dir, "create-user", "--email", "root@example.com", "--admin", stdin=PASSWORD
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

    refused = run_pinelab(
        data_dir, "create-user", "--email", email, "--password-stdin", stdin=password + "\n"
    )

    assert refused.returncode == 2
    assert message in refused.stderr
    assert "Traceback" not in refused.stderr
    assert [user.email for user in users_in(data_dir)] == ["trader@example.com"]


def test_create_user_without_a_password_on_stdin_exits_2_and_stores_nothing(
    data_dir: Path,
) -> None:
    refused = run_pinelab(data_dir, "create-user", "--email", "x@example.com", stdin="")

    assert refused.returncode == 2
    assert "no password on stdin" in refused.stderr
    assert users_in(data_dir) == []


def test_a_password_on_the_command_line_is_refused(data_dir: Path) -> None:
    refused = run_pinelab(
        data_dir, "create-user", "--email", "x@example.com", "--password", PASSWORD
    )

    assert refused.returncode == 2
    assert "No such option" in refused.stderr
    assert users_in(data_dir) == []


def test_create_user_asks_for_the_password_on_a_terminal_without_echoing_it(
    data_dir: Path,
) -> None:
    primary, secondary = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pinelab", "create-user", "--email", "tty@example.com"],
        cwd=data_dir,
        env=cli_environment(data_dir),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    try:
        seen = _answer(primary, b"Password: ", PASSWORD)
        seen += _answer(primary, b"Repeat for confirmation: ", PASSWORD)
        seen += _read_until_closed(primary)
        assert process.wait(timeout=30) == 0, seen
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()
    assert b"created user 1" in seen
    assert PASSWORD.encode() not in seen  # the terminal never echoed it
    [user] = users_in(data_dir)
    assert security.verify_password(PASSWORD, user.password_hash)[0]


def _answer(terminal: int, prompt: bytes, reply: str) -> bytes:
    """Read the terminal until `prompt` appears (30 s at most), then type `reply`."""
    seen = b""
    deadline = time.monotonic() + 30
    while prompt not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {prompt!r} prompt; the terminal showed {seen!r}"
        ready, _, _ = fd_select.select([terminal], [], [], remaining)
        if ready:
            seen += os.read(terminal, 1024)
    os.write(terminal, reply.encode() + b"\n")
    return seen


def _read_until_closed(terminal: int) -> bytes:
    seen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = fd_select.select([terminal], [], [], deadline - time.monotonic())
        if not ready:
            break
        try:
            chunk = os.read(terminal, 1024)
        except OSError:  # the command exited: its side of the terminal is gone
            break
        if not chunk:
            break
        seen += chunk
    return seen
