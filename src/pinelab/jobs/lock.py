"""The single-worker lock for SQLite: an exclusive OS lock on a file in the data dir.

SQLite has one writer, so exactly one process may run worker loops against it. Whichever
process takes this lock (the API's in-process worker or `pinelab worker`) runs them; the lock
dies with the process, so a crash never leaves it stuck.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = "worker.lock"


class WorkerLock:
    """An exclusive, non-blocking `flock` on one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Tell whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, owner: str) -> bool:
        """Take the lock and write `owner` into the file; False when another holder has it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{owner} pid={os.getpid()} host={socket.gethostname()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """Return who wrote the lock file last (the current holder while it is held)."""
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        """Let the lock go."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
