"""Benchmark durable webhook ingestion against the floor, and alert-to-fill on the paper broker.

1. wrk against ../shared/bench/baseline_app.py, which parses an alert and stores nothing;
2. wrk against PineLab, which stores each alert and its job durably before answering: same
   server flags, connections and duration, one right after the other; the database is then
   checked for exactly the alerts wrk saw acknowledged;
3. a steady open-loop stream of alerts to a fresh PineLab, then, from its database, the time
   from each alert's reception to its fill on the paper broker.

Every load is bounded in time and count and goes to 127.0.0.1 only. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
HOST = "127.0.0.1"
UVICORN_FLAGS = (
    "--workers", "1", "--loop", "uvloop", "--http", "httptools",
    "--no-access-log", "--log-level", "warning",
)  # fmt: skip
TARGET_RATIO = 0.5
TARGET_P99_MS = 30.0
TARGET_FILL_P50_MS = 5.0
EMAIL = "bench@example.com"
PASSWORD = "bench-password-for-a-local-run"  # noqa: S105 - a throwaway local account
WRK_LINE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
RUN_IDS = itertools.count(1)


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    """Return a port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    """One uvicorn process in its own session, stopped (and its group killed) on exit."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.port = free_port()
        self.argv = [*argv, "--host", HOST, "--port", str(self.port), *UVICORN_FLAGS]
        self.env = env
        self.cwd = cwd
        self.log_path = cwd / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        return f"http://{HOST}:{self.port}"

    def start(self, ready_path: str, timeout: float = 30.0) -> None:
        """Start the process and wait until it answers `ready_path`."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + ready_path, timeout=1.0)
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Ask the server to shut down, then kill its process group if it does not."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def cpu_seconds(self) -> float | None:
        """Return the CPU time the server and its child processes used so far (Linux), else None.

        The children count: on SQLite, PineLab commits alerts in a child process.
        """
        if self.process is None:
            return None
        ticks = [_cpu_ticks(pid) for pid in _process_tree(self.process.pid)]
        if ticks[0] is None:
            return None
        return sum(tick or 0 for tick in ticks) / os.sysconf("SC_CLK_TCK")

    def load(self, path: str, script: Path, connections: int, duration: float) -> WrkResult:
        """Run wrk against this server and note the server's CPU time per request."""
        before = self.cpu_seconds()
        result = run_wrk(self.url + path, script, connections, duration)
        after = self.cpu_seconds()
        if before is not None and after is not None and result.requests:
            result.server_cpu_us_per_request = round((after - before) / result.requests * 1e6)
        return result

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the server's output."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _cpu_ticks(pid: int) -> int | None:
    """Return a process's user + system CPU time in clock ticks, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def _process_tree(pid: int) -> list[int]:
    """Return a process and its descendants, the process first (Linux /proc children lists)."""
    found = [pid]
    for parent in found:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def baseline_server(shared: Path, workdir: Path) -> Server:
    """Build the baseline app's server (../shared/bench/baseline_app.py)."""
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(shared / "bench"), "baseline_app:app"]
    return Server("baseline", argv, env=clean_env(), cwd=workdir)


def pinelab_server(data_dir: Path, *, worker: bool, extra_env: dict[str, str]) -> Server:
    """Build a PineLab server on a data dir: default SQLite, no per-strategy rate limit."""
    env = clean_env()
    env.update(
        PINELAB_WEBHOOK_RATE_PER_MINUTE="0",
        PINELAB_WORKER_ENABLED="true" if worker else "false",
        PINELAB_LOG_LEVEL="WARNING",
    )
    env.update(extra_env)
    env["PINELAB_DATA_DIR"] = str(data_dir)
    argv = [sys.executable, "-m", "uvicorn", "pinelab.main:create_app", "--factory"]
    return Server("pinelab", argv, env=env, cwd=data_dir)


def clean_env() -> dict[str, str]:
    """Return this environment without PINELAB_* settings, so every run is configured alike."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PINELAB_")}


def migrate(data_dir: Path) -> None:
    """Create PineLab's schema in a fresh data dir."""
    env = clean_env() | {"PINELAB_DATA_DIR": str(data_dir)}
    subprocess.run(
        [sys.executable, "-m", "pinelab", "migrate"],
        env=env,
        cwd=data_dir,
        check=True,
        capture_output=True,
        timeout=120,
    )


# ----------------------------------------------------------------------------- setup


@dataclass
class Setup:
    """What the benchmark needs from PineLab: a webhook token, and how it was obtained."""

    token: str
    strategy_via: str


def set_up_strategy(base_url: str, data_dir: Path) -> Setup:
    """Register a user, add a paper account and a strategy; return the webhook token."""
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        checked(http.post("/api/v1/auth/register", json={"email": EMAIL, "password": PASSWORD}))
        login = checked(
            http.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        )
        http.headers["Authorization"] = f"Bearer {login['access_token']}"
        account = checked(
            http.post(
                "/api/v1/broker-accounts",
                json={"kind": "paper", "label": "bench", "starting_cash": "1000000000"},
            )
        )
        body = {
            "name": "bench",
            "broker_account_ids": [account["id"]],
            "sizing": {"type": "fixed", "value": "1"},
        }
        answer = http.post("/api/v1/strategies", json=body)
        if answer.status_code in (404, 405):
            user = checked(http.get("/api/v1/auth/me"))
            token = asyncio.run(seed_strategy(data_dir, user["id"], account["id"]))
            reason = f"POST /api/v1/strategies answered {answer.status_code}"
            return Setup(token, f"seeded in the database ({reason})")
        return Setup(str(checked(answer)["token"]), "POST /api/v1/strategies")


def checked(response: httpx.Response) -> dict[str, Any]:
    """Return a successful JSON answer, or fail the benchmark with what the server said."""
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text[:500]}"
        )
    result: dict[str, Any] = response.json()
    return result


async def seed_strategy(data_dir: Path, user_id: int, broker_account_id: int) -> str:
    """Insert a strategy bound to the account, as a test would; return its token."""
    from pinelab.db import Database
    from pinelab.strategies.models import Strategy, StrategyBrokerAccount
    from pinelab.strategies.tokens import hash_token, new_token

    token = new_token()
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'pinelab.db').as_posix()}")
    try:
        async with db.transaction() as session:
            strategy = Strategy(
                user_id=user_id,
                name="bench",
                token_hash=hash_token(token),
                token_hint=token[:6],
                sizing_type="fixed",
                sizing_value=Decimal(1),
            )
            session.add(strategy)
            await session.flush()
            session.add(
                StrategyBrokerAccount(strategy_id=strategy.id, broker_account_id=broker_account_id)
            )
    finally:
        await db.dispose()
    return token


# ----------------------------------------------------------------------------- database reads


@contextlib.contextmanager
def read_db(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """Open PineLab's SQLite file read-only (the server keeps writing meanwhile)."""
    path = data_dir / "pinelab.db"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def signal_counts(data_dir: Path) -> dict[str, int]:
    """Return the number of signal rows by status, plus 'total' and 'jobs'."""
    with read_db(data_dir) as db:
        rows = db.execute("SELECT status, count(*) FROM signal GROUP BY status").fetchall()
        jobs = db.execute("SELECT count(*) FROM retry_queue").fetchone()[0]
    counts = {str(status): int(count) for status, count in rows}
    counts["total"] = sum(counts.values())
    counts["jobs"] = int(jobs)
    return counts


def counts_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Return after - before for every key that changed."""
    keys = sorted(set(before) | set(after))
    delta = {key: after.get(key, 0) - before.get(key, 0) for key in keys}
    return {key: value for key, value in delta.items() if value}


# ----------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    """What wrk reported for one run."""

    connections: int
    requests: int
    requests_per_second: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: dict[str, int]
    server_cpu_us_per_request: float | None = None

    @property
    def ok_responses(self) -> int:
        """Return the number of 2xx/3xx answers."""
        return self.requests - self.non_2xx


def run_wrk(url: str, script: Path, connections: int, duration: float) -> WrkResult:
    """Run one bounded wrk load and parse its report."""
    threads = min(2, connections)
    run_id = f"{os.getpid()}x{next(RUN_IDS)}"
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency",
        "--timeout", "5s", "-s", str(script), url, "--", run_id,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout, connections)


def parse_wrk(output: str, connections: int) -> WrkResult:
    """Parse wrk's --latency report."""
    requests = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if requests is None or rate is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    latency = {
        f"p{pct}": round(float(value) * UNIT_MS[unit], 3)
        for pct, value, unit in WRK_LINE.findall(output)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = dict(
        zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True)
        if sockets
        else {}
    )
    return WrkResult(
        connections=connections,
        requests=int(requests.group(1)),
        requests_per_second=float(rate.group(1)),
        latency_ms=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


# ----------------------------------------------------------------------------- part 1: ingest


@dataclass
class IngestRun:
    """One PineLab wrk run and what the database shows it stored."""

    wrk: WrkResult
    stored: dict[str, int]
    problems: list[str] = field(default_factory=list)


def check_ingest(run: WrkResult, stored: dict[str, int]) -> list[str]:
    """Return what is wrong with a run: errors, lost alerts, or alerts not accepted."""
    problems = []
    if run.requests == 0:
        problems.append("no request was answered")
    if run.non_2xx:
        problems.append(f"{run.non_2xx} non-2xx answers")
    if sum(run.socket_errors.values()):
        problems.append(f"socket errors {run.socket_errors}")
    total = stored.get("total", 0)
    if total < run.ok_responses:
        problems.append(f"LOST ALERTS: {run.ok_responses} acknowledged but {total} stored")
    # Requests in flight when wrk stops are stored but never counted by wrk.
    if total > run.requests + run.connections:
        problems.append(f"{total} stored but only {run.requests} sent")
    other = {k: v for k, v in stored.items() if k not in ("total", "jobs", "accepted")}
    if other:
        problems.append(f"signals not accepted: {other}")
    if stored.get("jobs", 0) != stored.get("accepted", 0):
        problems.append(f"{stored.get('jobs', 0)} jobs for {stored.get('accepted', 0)} accepted")
    return problems


def bench_baseline(
    shared: Path, workdir: Path, script: Path, levels: Sequence[int], duration: float
) -> dict[int, WrkResult]:
    """Run wrk against the baseline app at every connection level."""
    server = baseline_server(shared, workdir)
    results: dict[int, WrkResult] = {}
    try:
        server.start("/")
        for connections in levels:
            results[connections] = server.load("/webhooks/bench", script, connections, duration)
            print(f"  baseline  c={connections:<3} {describe(results[connections])}", flush=True)
    finally:
        server.stop()
    return results


def bench_pinelab(
    data_dir: Path,
    script: Path,
    levels: Sequence[int],
    duration: float,
    *,
    worker: bool,
    extra_env: dict[str, str],
) -> tuple[dict[int, IngestRun], Setup]:
    """Run wrk against PineLab at every connection level, checking what each run stored."""
    migrate(data_dir)
    server = pinelab_server(data_dir, worker=worker, extra_env=extra_env)
    runs: dict[int, IngestRun] = {}
    try:
        server.start("/health/live")
        setup = set_up_strategy(server.url, data_dir)
        for connections in levels:
            before = signal_counts(data_dir)
            result = server.load(f"/webhooks/{setup.token}", script, connections, duration)
            time.sleep(0.5)  # let answers of requests wrk dropped at its deadline commit
            stored = counts_delta(before, signal_counts(data_dir))
            run = IngestRun(result, stored, check_ingest(result, stored))
            runs[connections] = run
            print(f"  pinelab   c={connections:<3} {describe(result)}  stored={stored}", flush=True)
            for problem in run.problems:
                print(f"  !!! c={connections}: {problem}", flush=True)
    finally:
        server.stop()
    return runs, setup


def describe(run: WrkResult) -> str:
    """Summarise one wrk run on a line."""
    p50, p99 = run.latency_ms.get("p50", 0.0), run.latency_ms.get("p99", 0.0)
    return (
        f"{run.requests_per_second:>9,.0f} req/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
        f"cpu {run.server_cpu_us_per_request or 0:5.0f} us/req  "
        f"requests={run.requests} non2xx={run.non_2xx} "
        f"socket_errors={sum(run.socket_errors.values())}"
    )


# ----------------------------------------------------------------------------- part 2: fill


@dataclass
class Sent:
    """One alert of the paced stream: when it was due, when answered, and the answer."""

    index: int
    due: float
    answered: float
    status_code: int
    signal_id: int | None


async def send_paced(url: str, rate: float, duration: float, tag: str) -> list[Sent]:
    """Send `rate` alerts per second for `duration` seconds on a fixed (open-loop) schedule.

    The sender is a minimal HTTP/1.1 client on asyncio streams (keep-alive connections, one
    request at a time on each, a new connection when all are busy): httpx took ~3.9 ms of CPU
    per request on a slow VM, three quarters of a core at 200 alerts/s, taken from the server
    it measures on a 2-core machine.
    """
    count = int(rate * duration)
    target = httpx.URL(url)
    idle: list[_Connection] = []
    try:
        start = time.perf_counter() + 0.2
        tasks = []
        for index in range(count):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send_one(target, idle, index, due, tag)))
        return list(await asyncio.gather(*tasks))
    finally:
        for connection in idle:
            connection.writer.close()


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


async def send_one(
    target: httpx.URL, idle: list[_Connection], index: int, due: float, tag: str
) -> Sent:
    """Post one canonical alert with a distinct id and a price (so a market order fills)."""
    alert = {
        "ticker": "AAPL",
        "action": "buy",
        "quantity": 1,
        "price": 190.25,
        "id": f"fill-{tag}-{index}",
        "time": "2026-01-02T15:30:00Z",
    }
    body = json.dumps(alert).encode()
    head = (
        f"POST {target.raw_path.decode()} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body
    # Oldest idle connection first, so none sits unused long enough for the server to close it.
    connection = idle.pop(0) if idle else None
    try:
        if connection is not None:
            try:
                status, answer = await _exchange(connection, request)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
                # Closed by the server while idle, before it read this request: a new one.
                connection.writer.close()
                connection = None
        if connection is None:
            connection = await _connect(target)
            status, answer = await _exchange(connection, request)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        if connection is not None:
            connection.writer.close()  # in an unknown state: not reused
        return Sent(index, due, time.perf_counter(), 0, None)
    answered = time.perf_counter()
    idle.append(connection)
    signal_id = json.loads(answer).get("signal_id") if status == 202 else None
    return Sent(index, due, answered, status, signal_id)


async def _exchange(connection: _Connection, request: bytes) -> tuple[int, bytes]:
    connection.writer.write(request)
    return await asyncio.wait_for(_read_answer(connection.reader), timeout=10.0)


async def _connect(target: httpx.URL) -> _Connection:
    reader, writer = await asyncio.open_connection(target.host, target.port)
    return _Connection(reader, writer)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one HTTP/1.1 answer with a Content-Length; return its status and body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    length = next(
        (
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        ),
        None,
    )
    if length is None:
        raise ValueError("an answer without Content-Length")
    return status, await reader.readexactly(length)


def wait_for_worker(data_dir: Path, timeout: float) -> float:
    """Wait until no signal is still waiting to be executed; return how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with read_db(data_dir) as db:
            waiting = db.execute("SELECT count(*) FROM signal WHERE status = 'accepted'").fetchone()
        if waiting[0] == 0:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def fill_rows(data_dir: Path) -> list[tuple[Any, ...]]:
    """Return one row per (signal, top-level order, fill) with every timestamp of the path."""
    query = """
        SELECT s.id, s.status, s.received_at, o.id, o.created_at, o.submitted_at,
               f.filled_at,
               (SELECT min(e.occurred_at) FROM order_event e
                 WHERE e.order_id = o.id AND e.to_status = 'filled') AS booked_at
          FROM signal s
          LEFT JOIN trade_order o ON o.signal_id = s.id AND o.parent_order_id IS NULL
          LEFT JOIN fill f ON f.order_id = o.id
         ORDER BY s.id
    """
    with read_db(data_dir) as db:
        return db.execute(query).fetchall()


def millis(later: str | None, earlier: str | None) -> float | None:
    """Return later - earlier in ms for two stored UTC timestamps."""
    if later is None or earlier is None:
        return None
    delta = datetime.fromisoformat(later) - datetime.fromisoformat(earlier)
    return delta.total_seconds() * 1000


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Return p50, p90, p99 and max (nearest rank) of a sample, rounded to 0.01 ms."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(pct: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]

    return {
        "p50": round(rank(50), 2),
        "p90": round(rank(90), 2),
        "p99": round(rank(99), 2),
        "max": round(ordered[-1], 2),
        "n": len(ordered),
    }


def group_rows(rows: list[tuple[Any, ...]]) -> dict[int, dict[str, Any]]:
    """Group the joined rows by signal, then by order, with each order's fill times."""
    signals: dict[int, dict[str, Any]] = {}
    for sid, status, received, oid, created, submitted, filled, booked in rows:
        entry = signals.setdefault(sid, {"status": status, "received": received, "orders": {}})
        if oid is None:
            continue
        order = entry["orders"].setdefault(
            oid, {"created": created, "submitted": submitted, "booked": booked, "fills": []}
        )
        if filled is not None:
            order["fills"].append(filled)
    return signals


def analyse_fills(rows: list[tuple[Any, ...]], sent: list[Sent]) -> dict[str, Any]:
    """Turn the database rows and the client log into latencies and integrity checks."""
    signals = group_rows(rows)
    stages: dict[str, list[float]] = {"created": [], "submitted": [], "fill": [], "booked": []}
    for entry in signals.values():
        for order in entry["orders"].values():
            first_fill = min(order["fills"], default=None)
            for stage, moment in zip(
                stages,
                (order["created"], order["submitted"], first_fill, order["booked"]),
                strict=True,
            ):
                value = millis(moment, entry["received"])
                if value is not None:
                    stages[stage].append(value)
    by_status: dict[str, int] = {}
    for entry in signals.values():
        by_status[entry["status"]] = by_status.get(entry["status"], 0) + 1
    acked = [s for s in sent if s.status_code == 202]
    return {
        "alerts_sent": len(sent),
        "acknowledged_202": len(acked),
        "signals_by_status": by_status,
        "alert_to_fill_ms": percentiles(stages["fill"]),
        "alert_to_fill_booked_ms": percentiles(stages["booked"]),
        "alert_to_order_created_ms": percentiles(stages["created"]),
        "alert_to_submitted_ms": percentiles(stages["submitted"]),
        "client_ack_ms": percentiles([(s.answered - s.due) * 1000 for s in acked]),
        "problems": fill_problems(sent, acked, signals),
    }


def fill_problems(
    sent: list[Sent], acked: list[Sent], signals: dict[int, dict[str, Any]]
) -> list[str]:
    """Check every alert was acknowledged and got exactly one order and exactly one fill."""
    problems = []
    if len(acked) != len(sent):
        codes = sorted({s.status_code for s in sent if s.status_code != 202})
        problems.append(f"{len(sent) - len(acked)} alerts not acknowledged (codes {codes})")
    ids = {s.signal_id for s in acked if s.signal_id is not None}
    if len(ids) != len(acked):
        problems.append(f"{len(acked) - len(ids)} acknowledgements without a distinct signal id")
    missing = ids - set(signals)
    if missing:
        problems.append(f"{len(missing)} acknowledged signals not in the database")
    unfinished = {sid for sid in ids - missing if signals[sid]["status"] == "accepted"}
    if unfinished:
        problems.append(
            f"{len(unfinished)} signals not yet executed when the drain timeout ended "
            "(latencies cover only the executed ones, so they are optimistic)"
        )
    orders = [signals[sid]["orders"] for sid in ids - missing - unfinished]
    if any(len(found) != 1 for found in orders):
        problems.append(f"{sum(len(f) != 1 for f in orders)} signals without exactly one order")
    fills = [len(order["fills"]) for found in orders for order in found.values()]
    if any(count != 1 for count in fills):
        problems.append(f"{sum(c != 1 for c in fills)} orders without exactly one fill")
    return problems


def bench_fill(
    data_dir: Path, rate: float, duration: float, drain: float, extra_env: dict[str, str]
) -> dict[str, Any]:
    """Measure alert-to-fill latency on a fresh PineLab under a steady alert rate."""
    migrate(data_dir)
    server = pinelab_server(data_dir, worker=True, extra_env=extra_env)
    try:
        server.start("/health/live")
        setup = set_up_strategy(server.url, data_dir)
        url = server.url + f"/webhooks/{setup.token}"
        cpu_before = server.cpu_seconds()
        sent = asyncio.run(send_paced(url, rate, duration, tag=str(os.getpid())))
        drained = wait_for_worker(data_dir, timeout=drain)
        cpu_after = server.cpu_seconds()
        result = analyse_fills(fill_rows(data_dir), sent)
        result.update(rate=rate, duration_s=duration, worker_drain_s=round(drained, 2))
        if cpu_before is not None and cpu_after is not None and sent:
            result["server_cpu_us_per_alert"] = round((cpu_after - cpu_before) / len(sent) * 1e6)
        result["server_log_tail"] = server.log_tail(10) if result["problems"] else ""
    finally:
        server.stop()
    return result


# ----------------------------------------------------------------------------- report


def print_table(baseline: dict[int, WrkResult], pinelab: dict[int, IngestRun]) -> None:
    """Print one row per connection level: baseline, PineLab and the ratio."""
    side = f"{'alerts/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'cpu us':>6}"
    head = f"{'conns':>5} | {side} | {side} | {'ratio':>5} | check"
    print(f"{'':>5} | {'baseline':^{len(side)}} | {'PineLab':^{len(side)}} |")
    print(head)
    print("-" * len(head))
    for connections, run in pinelab.items():
        base = baseline.get(connections)
        ratio = (
            f"{run.wrk.requests_per_second / base.requests_per_second:5.2f}" if base else "  n/a"
        )
        print(
            f"{connections:>5} | {row_cells(base)} | {row_cells(run.wrk)} | {ratio} | "
            f"{'ERRORS' if run.problems else 'ok'}"
        )
    print("cpu us = server CPU time (user + system, its child processes included) per request")


def row_cells(run: WrkResult | None) -> str:
    """Format one side of a table row."""
    if run is None:
        return f"{'-':>9} {'-':>7} {'-':>7} {'-':>6}"
    cpu = run.server_cpu_us_per_request
    p50, p99 = run.latency_ms.get("p50", float("nan")), run.latency_ms.get("p99", float("nan"))
    return (
        f"{run.requests_per_second:>9,.0f} {p50:>7.2f} {p99:>7.2f} "
        f"{cpu if cpu is not None else '-':>6}"
    )


def verdicts(
    baseline: dict[int, WrkResult], pinelab: dict[int, IngestRun], fill: dict[str, Any] | None
) -> list[tuple[str, bool | None]]:
    """Return each target with whether it was met (None when not measured)."""
    top = pinelab.get(64)
    base = baseline.get(64)
    ratio_ok = None
    p99_ok = None
    if top is not None:
        p99_ok = top.wrk.latency_ms.get("p99", float("inf")) <= TARGET_P99_MS and not top.problems
        if base is not None:
            ratio = top.wrk.requests_per_second / base.requests_per_second
            ratio_ok = ratio >= TARGET_RATIO and not top.problems
    fill_ok = None
    if fill is not None:
        p50 = fill["alert_to_fill_ms"].get("p50")
        fill_ok = p50 is not None and p50 <= TARGET_FILL_P50_MS and not fill["problems"]
    return [
        (f"64 connections: PineLab >= {TARGET_RATIO:.0%} of baseline throughput", ratio_ok),
        (f"64 connections: PineLab p99 <= {TARGET_P99_MS:g} ms", p99_ok),
        (f"alert-to-fill p50 <= {TARGET_FILL_P50_MS:g} ms", fill_ok),
    ]


def print_fill(fill: dict[str, Any]) -> None:
    """Print the alert-to-fill measurements."""
    print(
        f"sent {fill['alerts_sent']} alerts at {fill['rate']:g}/s for {fill['duration_s']:g}s; "
        f"202: {fill['acknowledged_202']}; signals {fill['signals_by_status']}; "
        f"worker drained {fill['worker_drain_s']}s after the last send; "
        f"server cpu {fill.get('server_cpu_us_per_alert', '-')} us/alert (ingest + execution)"
    )
    for label, key in (
        ("alert -> order stored   ", "alert_to_order_created_ms"),
        ("alert -> submitted      ", "alert_to_submitted_ms"),
        ("alert -> fill (venue)   ", "alert_to_fill_ms"),
        ("alert -> fill booked    ", "alert_to_fill_booked_ms"),
        ("client ack (from due)   ", "client_ack_ms"),
    ):
        stats = fill[key]
        if stats:
            print(
                f"  {label} p50 {stats['p50']:8.2f} ms  p90 {stats['p90']:8.2f} ms  "
                f"p99 {stats['p99']:8.2f} ms  max {stats['max']:8.2f} ms  (n={stats['n']})"
            )
    for problem in fill["problems"]:
        print(f"  !!! {problem}")
    if fill.get("server_log_tail"):
        print("  server log tail:\n" + fill["server_log_tail"])


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="10s", help="seconds per wrk run (10 or 10s)")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated levels")
    parser.add_argument("--skip-baseline", action="store_true", help="measure PineLab only")
    parser.add_argument("--skip-ingest", action="store_true", help="skip the wrk parts")
    parser.add_argument("--skip-fill", action="store_true", help="skip the alert-to-fill part")
    parser.add_argument(
        "--fill-rate", type=float, default=200.0, help="alerts/s of the alert-to-fill part"
    )
    parser.add_argument(
        "--fill-duration", type=float, default=10.0, help="seconds of the alert-to-fill part"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="max seconds to wait for the worker"
    )
    parser.add_argument(
        "--ingest-worker",
        action="store_true",
        help="keep PineLab's in-process worker running during the wrk runs (off: ingest only)",
    )
    parser.add_argument(
        "--pinelab-env",
        action="append",
        default=[],
        metavar="PINELAB_X=VALUE",
        help="extra PineLab setting for the server, e.g. PINELAB_SQLITE_SYNCHRONOUS=NORMAL",
    )
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared folder")
    parser.add_argument("--script", type=Path, help="wrk script (default bench/alert.lua)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dirs")
    args = parser.parse_args(argv)
    args.duration = float(str(args.duration).removesuffix("s"))
    args.levels = [int(level) for level in args.connections.split(",") if level.strip()]
    if not 0 < args.duration <= 300 or not 0 < args.fill_duration <= 120:
        parser.error("durations must be in (0, 300] s for wrk and (0, 120] s for the fill part")
    if not 0 < args.drain_timeout <= 600:
        parser.error("--drain-timeout must be in (0, 600] s")
    if not 0 < args.fill_rate <= 2000 or not all(0 < level <= 1024 for level in args.levels):
        parser.error("fill rate must be in (0, 2000] and connections in [1, 1024]")
    args.script = args.script or HERE / "alert.lua"
    args.pinelab_env = dict(item.split("=", 1) for item in args.pinelab_env if "=" in item)
    fixed = {"PINELAB_DATA_DIR", "PINELAB_DATABASE_URL"} & set(args.pinelab_env)
    if fixed or not all(key.startswith("PINELAB_") for key in args.pinelab_env):
        parser.error("--pinelab-env takes PINELAB_* settings other than the data dir and URL")
    return args


def preflight(args: argparse.Namespace) -> None:
    """Fail early when wrk, the shared baseline or the wrk script is missing."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk: apt-get install -y wrk")
    for path in (args.shared / "bench" / "baseline_app.py", args.script):
        if not path.exists():
            raise SystemExit(f"missing {path} (use --shared or --script)")


def header(args: argparse.Namespace) -> None:
    """Print how the benchmark is configured."""
    print(f"PineLab ingest benchmark — {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(
        f"host: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"python {sys.version.split()[0]}"
    )
    print(f"uvicorn {' '.join(UVICORN_FLAGS)}; wrk -t2 (-t1 at 1 connection) -d{args.duration:g}s")
    print(f"wrk script: {args.script}")
    extra = " ".join(f"{k}={v}" for k, v in args.pinelab_env.items()) or "none"
    print(
        "PineLab: fresh SQLite data dir, default settings (sqlite synchronous=FULL unless set);\n"
        "  PINELAB_WEBHOOK_RATE_PER_MINUTE=0: the per-strategy rate limit (600/min by default)\n"
        "  would otherwise throttle this load by design; extra settings: " + extra + "\n"
        "  in-process worker "
        + ("ON" if args.ingest_worker else "OFF during the wrk runs (ingest only), ON in part 3")
    )
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        print("!!! the machine is busy (load above the CPU count): figures will be noisy")


@dataclass
class Measurements:
    """Everything one benchmark run measured."""

    baseline: dict[int, WrkResult] = field(default_factory=dict)
    pinelab: dict[int, IngestRun] = field(default_factory=dict)
    strategy_via: str = ""
    fill: dict[str, Any] | None = None


def measure(args: argparse.Namespace, workdir: Path) -> Measurements:
    """Run the parts the options ask for, printing progress."""
    found = Measurements()
    if not args.skip_ingest and not args.skip_baseline:
        print("\n[1/3] baseline (shared/bench/baseline_app.py)", flush=True)
        found.baseline = bench_baseline(
            args.shared, workdir, args.script, args.levels, args.duration
        )
    if not args.skip_ingest:
        print("\n[2/3] PineLab durable ingest", flush=True)
        found.pinelab, setup = bench_pinelab(
            make_dir(workdir, "ingest"),
            args.script,
            args.levels,
            args.duration,
            worker=args.ingest_worker,
            extra_env=args.pinelab_env,
        )
        found.strategy_via = setup.strategy_via
        print(f"  strategy created via {setup.strategy_via}")
    if not args.skip_fill:
        print(f"\n[3/3] alert-to-fill at {args.fill_rate:g} alerts/s", flush=True)
        found.fill = bench_fill(
            make_dir(workdir, "fill"),
            args.fill_rate,
            args.fill_duration,
            args.drain_timeout,
            args.pinelab_env,
        )
    return found


def report(found: Measurements, args: argparse.Namespace) -> dict[str, Any]:
    """Print the results and the targets; return them as a JSON-ready dict."""
    if found.pinelab:
        print("\nResults (alerts/s; latency from wrk, closed loop)")
        print_table(found.baseline, found.pinelab)
    if found.fill is not None:
        print("\nAlert-to-fill (server clock: fill time - signal.received_at)")
        print_fill(found.fill)
    targets = verdicts(found.baseline, found.pinelab, found.fill)
    print("\nTargets")
    for label, met in targets:
        print(f"  [{'MET' if met else 'not measured' if met is None else 'MISSED'}] {label}")
    return {
        "settings": {key: str(value) for key, value in vars(args).items()},
        "baseline": {c: asdict(r) for c, r in found.baseline.items()},
        "pinelab": {
            c: {**asdict(r.wrk), "stored": r.stored, "problems": r.problems}
            for c, r in found.pinelab.items()
        },
        "strategy_via": found.strategy_via,
        "fill": found.fill,
        "targets": dict(targets),
    }


def make_dir(parent: Path, name: str) -> Path:
    """Create and return a fresh subdirectory."""
    path = parent / name
    path.mkdir()
    return path


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a run had errors, 130 when interrupted."""
    args = parse_args(argv)
    preflight(args)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="pinelab-bench-"))
    header(args)
    try:
        results = report(measure(args, workdir), args)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nwrote {args.json}")
    failed = any(run["problems"] for run in results["pinelab"].values()) or bool(
        results["fill"] and results["fill"]["problems"]
    )
    if failed:
        print("\n!!! SOME RUNS HAD ERRORS: their figures are not valid (see '!!!' lines above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
