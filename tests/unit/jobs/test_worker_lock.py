"""The SQLite single-worker lock: one holder at a time, re-entrant for its holder, released once."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pinelab.jobs.lock import LOCK_FILE, WorkerLock


def test_only_one_holder_at_a_time_and_the_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "data" / LOCK_FILE
    first, second = WorkerLock(path), WorkerLock(path)

    assert first.acquire("api") is True
    assert second.acquire("cli-worker") is False

    assert (first.held, second.held) == (True, False)
    assert first.holder() == f"api pid={os.getpid()} host={socket.gethostname()}"
    assert second.holder() == first.holder()
    first.release()


def test_acquiring_again_while_held_keeps_the_lock_and_the_owner(tmp_path: Path) -> None:
    lock = WorkerLock(tmp_path / LOCK_FILE)
    assert lock.acquire("api")

    assert lock.acquire("someone-else") is True

    assert lock.holder().startswith("api pid=")
    assert WorkerLock(tmp_path / LOCK_FILE).acquire("cli-worker") is False
    lock.release()


def test_after_release_another_can_take_it_and_a_second_release_does_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / LOCK_FILE
    first, second = WorkerLock(path), WorkerLock(path)
    assert first.acquire("api")

    first.release()
    first.release()

    assert first.held is False
    assert second.acquire("cli-worker") is True
    assert second.holder().startswith("cli-worker pid=")
    second.release()


def test_holder_is_unknown_without_a_file_or_an_owner(tmp_path: Path) -> None:
    missing = WorkerLock(tmp_path / "nowhere" / LOCK_FILE)
    assert missing.holder() == "unknown"

    (tmp_path / LOCK_FILE).write_text("\n")
    assert WorkerLock(tmp_path / LOCK_FILE).holder() == "unknown"


def test_release_without_acquire_does_nothing(tmp_path: Path) -> None:
    lock = WorkerLock(tmp_path / LOCK_FILE)

    lock.release()

    assert lock.held is False
    assert lock.acquire("api") is True
    lock.release()
