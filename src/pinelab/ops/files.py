"""The data directory is private: 0700, and every file PineLab writes in it 0600.

It holds the SQLite database and its WAL and SHM files, the generated keys, the email outbox
and the worker lock. The process's umask is set to 077 first, so every file and directory any
part of PineLab (or SQLite, which gives its WAL and SHM files the database file's mode) creates
from then on is private to its user; then whatever an older version left readable is tightened.
Modes are only ever narrowed, never widened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import structlog

log = structlog.get_logger(__name__)

PRIVATE_UMASK: Final = 0o077
PRIVATE_DIR: Final = 0o700
PRIVATE_FILE: Final = 0o600


def make_data_dir_private(data_dir: Path) -> None:
    """Set the umask to 077, create the data dir 0700 and tighten what is already in it."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True)
    _narrow(data_dir, PRIVATE_DIR)
    for path in data_dir.rglob("*"):
        if not path.is_symlink():
            _narrow(path, PRIVATE_DIR if path.is_dir() else PRIVATE_FILE)


def _narrow(path: Path, allowed: int) -> None:
    try:
        mode = path.stat().st_mode & 0o777
        if mode & ~allowed:
            path.chmod(mode & allowed)
    except OSError as error:  # another user's file, or gone meanwhile: say so, start anyway
        log.warning("data_dir_mode_unchanged", path=str(path), error=type(error).__name__)
