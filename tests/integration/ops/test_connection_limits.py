"""Slow and oversized clients against the real server (`python -m pinelab serve`).

Headers past PINELAB_MAX_HEADER_BYTES are refused; a connection that sends nothing is closed after
the keep-alive timeout; a request whose headers or body trickle in is cut off at the request
deadline, however steadily the bytes come.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.faults import free_port
from tests.waiting import eventually_blocking

KEEP_ALIVE_SECONDS = 1
REQUEST_SECONDS = 2


@pytest.fixture
def server(tmp_path: Path, sqlite_template: Path) -> Iterator[int]:
    """Serve on a free port with short timeouts; yield the port."""
    shutil.copy(sqlite_template, tmp_path / "pinelab.db")
    port = free_port()
    env = {
        **os.environ,
        "PINELAB_ENV": "test",
        "PINELAB_DATA_DIR": str(tmp_path),
        "PINELAB_SECRET_KEY": "limits-test-secret-key-long-enough-0123456789",
        "PINELAB_KEEP_ALIVE_TIMEOUT_SECONDS": str(KEEP_ALIVE_SECONDS),
        "PINELAB_REQUEST_TIMEOUT_SECONDS": str(REQUEST_SECONDS),
        "PINELAB_WORKER_ENABLED": "false",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pinelab", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually_blocking(lambda: _answers(port, process), timeout=30, what="the server")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(port: int, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "the server exited at startup"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float:
    """Send `trickle` a byte at a time until the server closes; return how long that took."""
    started = time.monotonic()
    sock.settimeout(0.25)  # the pace of the trickle: a read that waits for the server's close
    sent = 0
    while time.monotonic() - started < seconds:
        if trickle:
            try:
                sock.sendall(trickle[sent % len(trickle) : sent % len(trickle) + 1])
            except OSError:
                return time.monotonic() - started
            sent += 1
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    raise AssertionError(f"the connection was still open after {seconds:g} s")


def test_headers_over_the_limit_are_refused(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")


def test_whole_headers_over_the_limit_in_one_read_are_refused(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        big = b"X-Big: " + b"a" * 20_000 + b"\r\n"
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")


def test_headers_under_the_limit_are_served(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        padding = b"a" * 8_000
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + padding + b"\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")


def test_a_connection_that_sends_nothing_is_closed(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        assert _closed_within(sock, KEEP_ALIVE_SECONDS + 5) >= KEEP_ALIVE_SECONDS * 0.9


def test_an_idle_keep_alive_connection_is_closed(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        _closed_within(sock, KEEP_ALIVE_SECONDS + 5)


def test_headers_that_trickle_in_are_cut_off_at_the_deadline(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        took = _closed_within(sock, REQUEST_SECONDS + 5, trickle=b"X-Slow: a\r\n")
    assert took >= REQUEST_SECONDS * 0.9


def test_a_body_that_trickles_in_is_cut_off_at_the_deadline(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
        took = _closed_within(sock, REQUEST_SECONDS + 5, trickle=b" ")
    assert took >= REQUEST_SECONDS * 0.9
