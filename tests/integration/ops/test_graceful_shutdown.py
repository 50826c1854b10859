"""Graceful shutdown: SIGTERM in the middle of a burst of alerts loses nothing acknowledged.

The real command (`python -m pinelab serve`) runs in a subprocess; a burst of alerts is fired
from several tasks and SIGTERM arrives mid-burst. After a restart, every alert that got its 202
is stored and, once the queue drains, has exactly one order. A job still running when the worker
is stopped goes back to the queue without spending an attempt.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.models import Job
from pinelab.main import build_services
from pinelab.notify.email import Email, enqueue_email
from pinelab.signals.models import Signal
from pinelab.trading.models import Order
from tests.fakes.faults import free_port
from tests.mailbox import verify_through_outbox
from tests.waiting import eventually

PASSWORD = "shutdown-harbour-lantern-42"
SENDERS = 8
SIGTERM_AFTER_ACKS = 40


def _serve(data_dir: Path, database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PINELAB_ENV": "test",
        "PINELAB_DATA_DIR": str(data_dir),
        "PINELAB_DATABASE_URL": database_url,
        "PINELAB_SECRET_KEY": "shutdown-test-secret-key-long-enough-0123456789",
        "PINELAB_SQLITE_SYNCHRONOUS": "NORMAL",
        "PINELAB_WEBHOOK_RATE_PER_MINUTE": "0",
        "PINELAB_SHUTDOWN_TIMEOUT_SECONDS": "10",
        "PINELAB_LOG_FORMAT": "json",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "pinelab", "serve", "--port", str(port)],
        cwd=data_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _wait_live(base_url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:

        async def live() -> bool:
            assert process.poll() is None, "the server exited at startup"
            try:
                return (await http.get("/health/live")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(live, timeout=20, what="the server to start")


async def _seed(http: httpx.AsyncClient, outbox: Path) -> str:
    credentials = {"email": "burst@example.com", "password": PASSWORD}
    assert (await http.post("/api/v1/auth/register", json=credentials)).status_code == 201
    await verify_through_outbox(http, outbox, "burst@example.com")
    login = await http.post("/api/v1/auth/login", json=credentials)
    http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    account = await http.post(
        "/api/v1/broker-accounts",
        json={"kind": "paper", "label": "Burst", "starting_cash": "10000000"},
    )
    strategy = await http.post(
        "/api/v1/strategies",
        json={
            "name": "Burst",
            "broker_account_ids": [account.json()["id"]],
            "sizing": {"type": "fixed", "value": "1"},
        },
    )
    assert strategy.status_code == 201, strategy.text
    return str(strategy.json()["token"])


async def _burst(base_url: str, token: str, process: subprocess.Popen[bytes]) -> set[int]:
    acknowledged: set[int] = set()
    counter = iter(range(100_000))

    async def sender() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            while True:
                number = next(counter)
                alert = {"ticker": "AAPL", "action": "buy", "quantity": "1", "price": "100"}
                alert |= {"id": f"burst-{number}", "time": "2026-01-02T15:30:00Z"}
                try:
                    response = await http.post(f"/webhooks/{token}", json=alert)
                except httpx.TransportError:
                    return  # the server stopped accepting
                if response.status_code == 202:
                    acknowledged.add(int(response.json()["signal_id"]))
                    if len(acknowledged) == SIGTERM_AFTER_ACKS:
                        process.send_signal(signal.SIGTERM)

    await asyncio.wait_for(asyncio.gather(*(sender() for _ in range(SENDERS))), timeout=30)
    return acknowledged


async def _settled(db: Database, ids: set[int]) -> dict[int, str]:
    async def statuses() -> dict[int, str] | None:
        async with db.session() as session:
            rows = await session.execute(select(Signal.id, Signal.status).where(Signal.id.in_(ids)))
            found = {int(row[0]): str(row[1]) for row in rows}
        return found if all(s != "accepted" for s in found.values()) else None

    return await eventually(statuses, timeout=20, what="every acknowledged alert to be executed")


def _stop(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return process.returncode, stderr.decode()


@pytest.mark.slow
async def test_sigterm_mid_burst_keeps_every_acknowledged_alert_and_executes_it_once(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    first = _serve(tmp_path, database_url, port)
    try:
        await _wait_live(base_url, first)
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            token = await _seed(http, tmp_path / "outbox")
        acknowledged = await _burst(base_url, token, first)
    finally:
        code, stderr = _stop(first)
    # uvicorn re-raises the signal once its graceful shutdown is over
    assert code in (0, -signal.SIGTERM), stderr
    assert '"event": "stopped"' in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert len(acknowledged) >= SIGTERM_AFTER_ACKS

    second = _serve(tmp_path, database_url, port)
    db = Database(database_url)
    try:
        await _wait_live(base_url, second)
        statuses = await _settled(db, acknowledged)
        async with db.session() as session:
            per_signal = dict(
                (
                    await session.execute(
                        select(Order.signal_id, func.count())
                        .where(Order.signal_id.in_(acknowledged))
                        .group_by(Order.signal_id)
                    )
                ).all()
            )
    finally:
        await db.dispose()
        _stop(second)
    assert set(statuses) == acknowledged, "an acknowledged alert was lost"
    assert set(statuses.values()) == {"executed"}
    assert per_signal == dict.fromkeys(acknowledged, 1)


async def test_worker_stopped_mid_job_releases_it_without_spending_an_attempt(
    settings: Settings,
) -> None:
    connected = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()  # an SMTP server that never greets: the email job hangs
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    smtp = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False}
    services = build_services(settings.model_copy(update=smtp))
    try:
        async with services.db.transaction() as session:
            email = Email(to="trader@example.com", subject="hello", text="hello")
            job = await enqueue_email(session, email, max_attempts=3)
        await services.worker.start()
        await asyncio.wait_for(connected.wait(), timeout=10)
        await services.worker.stop(grace_seconds=0.2)
        async with services.db.session() as session:
            released = await session.get(Job, job.id)
    finally:
        await services.close()
        server.close()
        await server.wait_closed()
    assert released is not None
    assert (released.status, released.attempts, released.lease_owner) == ("queued", 0, None)
