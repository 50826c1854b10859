"""Processes killed at the worst moment:

- `pinelab serve` (paper broker) killed with SIGKILL in the middle of a burst of alerts: after a
  restart every alert that got a 202 is stored and executes exactly once;
- a `pinelab worker` killed with SIGKILL while its job waits on the Alpaca emulator: the lease
  expires, a second worker finishes the job, and the broker sees one order;
- an execution at the paper broker that dies just before or just after the venue took the order
  (the paper venue cannot hang on the wire, so the process's death is raised at that point): a
  new process runs the job again, finds the stored order, asks the venue for its id, and the
  venue holds one order.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from pinelab.brokers.base import Broker, OrderRequest, OrderStatusReport
from pinelab.brokers.credentials import BrokerCredentials
from pinelab.brokers.models import PaperOrder
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.models import Job
from pinelab.main import Services, build_services
from pinelab.signals.models import Signal
from pinelab.trading.models import Order
from tests.factories import bind_account, execute, seed_strategy, stored_job
from tests.fakes.alpaca_emulator import AlpacaEmulator, running_emulator
from tests.fakes.faults import free_port
from tests.fakes.faulty_broker import FaultPlan, FaultyQuoteDrivenBroker
from tests.integration.reliability.support import (
    Counts,
    orders_per_signal,
    unfinished_jobs,
)
from tests.mailbox import verify_through_outbox
from tests.waiting import eventually

LEASE_SECONDS = 5
SECRET = "reliability-secret-key-that-is-long-enough-0123456789abcdef"
PASSWORD = "correct-horse-battery-staple-42"
TASKS = 8
ACKS_BEFORE_KILL = 60
_ids = itertools.count(1)


def _env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PINELAB_ENV": "test",
        "PINELAB_DATA_DIR": str(data_dir),
        "PINELAB_DATABASE_URL": database_url,
        "PINELAB_SECRET_KEY": SECRET,
        "PINELAB_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "PINELAB_RETRY_BASE_DELAY_SECONDS": "0.1",
        "PINELAB_RETRY_MAX_DELAY_SECONDS": "0.5",
        "PINELAB_WEBHOOK_RATE_PER_MINUTE": "0",
        "PINELAB_LOG_FORMAT": "json",
        "PINELAB_LOG_LEVEL": "WARNING",
        **extra,
    }


def _start(data_dir: Path, env: dict[str, str], *args: str, log: str) -> subprocess.Popen[bytes]:
    with (data_dir / log).open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "pinelab", *args],
            cwd=data_dir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


# --- kill -9 of `pinelab serve` mid-burst ---------------------------------------------------


class Server:
    """`pinelab serve` in a subprocess on a free port, with the paper broker."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = _env(
            data_dir, database_url, PINELAB_HOST="127.0.0.1", PINELAB_PORT=str(self.port)
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = _start(self.data_dir, self.env, "serve", log="serve.log")

        async def live() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.data_dir / "serve.log").read_text()
                raise AssertionError(f"pinelab serve exited: {log[-2000:]}")
            try:
                async with httpx.AsyncClient(timeout=1) as http:
                    return (await http.get(f"{self.url}/health/live")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(live, timeout=30, what="pinelab serve to answer")

    def kill(self) -> None:
        if self.process is not None:
            _kill(self.process)


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    migrated = subprocess.run(
        [sys.executable, "-m", "pinelab", "migrate"],
        cwd=tmp_path,
        env=_env(tmp_path, database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    running = Server(tmp_path, database_url)
    yield running
    running.kill()


async def _webhook_url(http: httpx.AsyncClient, outbox: Path) -> str:
    """Sign up (verifying the email), add a paper account and a strategy; return the webhook."""
    credentials = {"email": "burst@example.com", "password": PASSWORD}
    assert (await http.post("/api/v1/auth/register", json=credentials)).status_code == 201
    await verify_through_outbox(http, outbox, "burst@example.com")
    login = await http.post("/api/v1/auth/login", json=credentials)
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    account = await http.post(
        "/api/v1/broker-accounts",
        json={"kind": "paper", "label": "burst", "paper": True, "starting_cash": "10000000"},
        headers=headers,
    )
    assert account.status_code == 201, account.text
    strategy = await http.post(
        "/api/v1/strategies",
        json={
            "name": "burst",
            "broker_account_ids": [account.json()["id"]],
            "sizing": {"type": "fixed", "value": "1"},
        },
        headers=headers,
    )
    assert strategy.status_code == 201, strategy.text
    return f"/webhooks/{strategy.json()['token']}"


async def _burst(server: Server, webhook: str) -> tuple[int, list[int]]:
    """Fire alerts from several tasks; SIGKILL the server mid-burst; return (sent, acked ids)."""
    acknowledged: list[int] = []
    sent = 0
    killed = asyncio.Event()

    async def fire(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while not killed.is_set():
            alert = {"ticker": "AAPL", "action": "buy", "price": "100", "id": f"b{next(_ids)}"}
            sent += 1
            try:
                answer = await http.post(webhook, content=orjson.dumps(alert))
            except httpx.HTTPError:
                continue  # no answer: not acknowledged
            if answer.status_code == 202:
                acknowledged.append(answer.json()["signal_id"])
                if len(acknowledged) >= ACKS_BEFORE_KILL and not killed.is_set():
                    server.kill()
                    killed.set()

    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        await asyncio.wait_for(asyncio.gather(*(fire(http) for _ in range(TASKS))), 60)
    return sent, acknowledged


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.dispose()


@pytest.mark.slow
async def test_serve_killed_mid_burst_loses_no_acknowledged_alert_and_doubles_no_order(
    server: Server, database: Database, database_url: str
) -> None:
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        webhook = await _webhook_url(http, server.data_dir / "outbox")

    sent, acknowledged = await _burst(server, webhook)
    async with database.session() as session:
        waiting = await session.scalar(
            select(func.count(Signal.id)).where(Signal.status == "accepted")
        )
    print(f"\nsignals not yet executed when serve was killed: {waiting}")
    await server.start()

    async def drained() -> bool:
        return await unfinished_jobs(database) == 0

    await eventually(drained, timeout=LEASE_SECONDS + 30, what="the restarted worker to drain")
    async with database.session() as session:
        signals = {s.id: s for s in (await session.scalars(select(Signal))).all()}
        venue_orders = (await session.scalars(select(PaperOrder.client_order_id))).all()
        ours = (await session.scalars(select(Order.client_order_id))).all()
    per_signal = await orders_per_signal(database)
    duplicates = (len(venue_orders) - len(set(venue_orders))) + (len(ours) - len(set(ours)))
    duplicates += sum(n - 1 for n in per_signal.values() if n > 1)
    name = f"serve-kill-9[{_backend(database_url)}]"
    Counts(name, sent, len(acknowledged), len(signals), len(venue_orders), duplicates).report()

    assert len(acknowledged) >= ACKS_BEFORE_KILL
    assert set(acknowledged) <= set(signals)
    assert duplicates == 0
    assert {s.status for s in signals.values()} == {"executed"}, {
        s.reason for s in signals.values()
    }
    assert all(per_signal[signal_id] == 1 for signal_id in signals)
    assert sorted(venue_orders) == sorted(ours)
    assert len(venue_orders) == len(signals)


# --- a worker killed mid-job ----------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[AlpacaEmulator]:
    with running_emulator() as running:
        yield running


async def _queue_one_alert(context: Services, emulator: AlpacaEmulator) -> int:
    seeded = await seed_strategy(context.db)
    keys = BrokerCredentials(api_key=emulator.api_key, api_secret=emulator.api_secret)
    await bind_account(context, seeded, "alpaca", credentials=keys)
    assert context.ingestor is not None
    alert = {"ticker": "AAPL", "action": "buy", "quantity": "3", "id": "mid-job"}
    result = await context.ingestor.ingest(
        token=seeded.token, body=orjson.dumps(alert), content_type=None, source_ip=None
    )
    async with context.db.session() as session:
        job_id = await session.scalar(select(func.max(Job.id)))
    assert job_id is not None
    assert result.signal_id
    return job_id


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
async def test_worker_killed_mid_job_is_replaced_after_its_lease_and_orders_once(
    context: Services, emulator: AlpacaEmulator, settings: Settings, when: str
) -> None:
    job_id = await _queue_one_alert(context, emulator)
    # The order request hangs: the venue never sees it ("before") or has taken it ("after").
    hang = emulator.faults.add(
        "timeout", delay=30, when=when, path_prefix="/v2/orders", method="POST"
    )
    env = _env(
        settings.data_dir,
        settings.resolved_database_url,
        PINELAB_BROKER_BASE_URLS=orjson.dumps({"alpaca": emulator.url}).decode(),
    )
    first = _start(settings.data_dir, env, "worker", log="worker-1.log")
    try:

        async def hanging() -> bool:
            taken = when == "before" or bool(emulator.books.by_client_id)
            return (
                hang.count == 0
                and taken
                and (await stored_job(context.db, job_id)).status == "running"
            )

        await eventually(hanging, timeout=30, what="the first worker to wait on the broker")
        _kill(first)
        assert (await stored_job(context.db, job_id)).status == "running"  # leased to a dead worker
        second = _start(settings.data_dir, env, "worker", log="worker-2.log")
        try:

            async def done() -> bool:
                return (await stored_job(context.db, job_id)).status == "done"

            await eventually(done, timeout=LEASE_SECONDS + 30, what="the second worker")
        finally:
            _kill(second)
    finally:
        _kill(first)

    job = await stored_job(context.db, job_id)
    posts = [r for r in emulator.requests if r[1:] == ("POST", "/v2/orders")]
    async with context.db.session() as session:
        (order,) = (await session.scalars(select(Order))).all()
    assert job.attempts == 2
    assert len(emulator.books.by_client_id) == 1
    assert len(posts) == 1  # "after": adopted by client id, never resubmitted
    assert order.client_order_id in emulator.books.by_client_id
    assert (order.status, order.filled_quantity) == ("filled", Decimal(3))


# --- the paper broker: the process dies on either side of the venue taking the order ---------


class ProcessKilled(BaseException):
    """The process died here: nothing after this point ran (not an error anyone handles)."""


class DyingVenue(FaultyQuoteDrivenBroker):
    """The paper broker, in a process killed just before or just after it took the order."""

    def __init__(self, inner: Broker, when: str) -> None:
        super().__init__(inner, FaultPlan())
        self.when = when

    async def submit_order(self, request: OrderRequest) -> OrderStatusReport:
        if self.when == "after":
            await self.inner.submit_order(request)
        raise ProcessKilled


@pytest.mark.parametrize("when", ["before", "after"])
async def test_paper_execution_killed_at_the_venue_resumes_in_a_new_process_and_orders_once(
    settings: Settings, when: str
) -> None:
    first = build_services(settings)
    try:
        seeded = await seed_strategy(first.db)
        default = first.brokers.build_default
        first.brokers.build = lambda account: DyingVenue(default(account), when)
        assert first.ingestor is not None
        alert = {"ticker": "AAPL", "action": "buy", "quantity": "3", "price": "10", "id": "k"}
        result = await first.ingestor.ingest(
            token=seeded.token, body=orjson.dumps(alert), content_type=None, source_ip=None
        )
        with pytest.raises(ProcessKilled):
            await execute(first, result.signal_id)
    finally:
        await first.close()
    second = build_services(settings)  # the restarted process runs the job again
    try:
        await execute(second, result.signal_id)
        async with second.db.session() as session:
            signal_row = await session.get_one(Signal, result.signal_id)
            (order,) = (await session.scalars(select(Order))).all()
            venue = (await session.scalars(select(PaperOrder))).all()
    finally:
        await second.close()
    assert signal_row.status == "executed", signal_row.reason
    assert [v.client_order_id for v in venue] == [order.client_order_id]
    assert (order.status, order.filled_quantity) == ("filled", Decimal(3))
    assert order.broker_order_id == venue[0].broker_order_id
