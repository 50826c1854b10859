"""The data directory is 0700 and every file PineLab writes in it 0600, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
from fastapi import FastAPI

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.notify.email import Email, enqueue_email
from tests.cli_support import cli_environment
from tests.waiting import eventually


def _modes(data_dir: Path) -> dict[str, int]:
    """Return the permission bits of the data dir and of everything in it."""
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for path in data_dir.rglob("*"):
        found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _readable_by_others(modes: dict[str, int]) -> dict[str, str]:
    return {name: oct(mode) for name, mode in modes.items() if mode & 0o077}


async def test_every_file_the_app_writes_is_private(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    registered = await client.post(
        "/api/v1/auth/register",
        json={"email": "private@example.com", "password": "correct-horse-battery-staple-42"},
    )
    assert registered.status_code == 201, registered.text
    db: Database = app.state.db
    async with db.transaction() as session:
        await enqueue_email(
            session, Email(to="private@example.com", subject="hi", text="hi"), max_attempts=3
        )
    app.state.worker.wake()
    outbox = settings.data_dir / "outbox"
    await eventually(lambda: list(outbox.glob("*.eml")), what="the verification email")
    modes = _modes(settings.data_dir)
    assert _readable_by_others(modes) == {}
    assert modes["."] == 0o700
    assert {name for name in modes if name.endswith(".eml")}, modes
    if settings.is_sqlite:
        assert {"pinelab.db", "pinelab.db-wal"} <= modes.keys(), modes


def test_a_fresh_data_dir_is_private_under_a_permissive_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    migrated = subprocess.run(
        ["/bin/sh", "-c", 'umask 022 && exec "$0" -m pinelab migrate', sys.executable],
        cwd=tmp_path,
        env={**cli_environment(data_dir), "PINELAB_DATABASE_URL": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    modes = _modes(data_dir)
    assert "pinelab.db" in modes, modes
    assert _readable_by_others(modes) == {}
    assert modes["."] == 0o700


def test_files_an_older_version_left_readable_are_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "outbox").mkdir(parents=True)
    for name in ("old-backup.db", "outbox/old.eml"):
        (data_dir / name).write_text("x")
        os.chmod(data_dir / name, 0o644)
    for directory in (data_dir, data_dir / "outbox"):
        os.chmod(directory, 0o755)  # noqa: S103 - what an older version left: the point
    migrated = subprocess.run(
        [sys.executable, "-m", "pinelab", "migrate"],
        cwd=tmp_path,
        env={**cli_environment(data_dir), "PINELAB_DATABASE_URL": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert _readable_by_others(_modes(data_dir)) == {}
