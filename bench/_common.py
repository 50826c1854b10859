"""What the benchmark scenarios share: processes, databases, the API setup, wrk, statistics.

Every load goes to 127.0.0.1 only and is bounded in count and time. Every server starts fresh on
a free port, in its own process group, with a fresh data dir (and database), and is stopped on
exit, on errors and on Ctrl-C. The scenarios read PineLab only through its HTTP API, its CLI
(`pinelab migrate|serve|worker`) and its database's signal, trade_order and fill tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import itertools
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
ALERT_SCRIPT = HERE / "alert.lua"
# The baseline runs as `pinelab serve` runs PineLab: uvloop, httptools, no access log.
BASELINE_FLAGS = ("--loop", "uvloop", "--http", "httptools", "--no-access-log",
                  "--log-level", "warning")  # fmt: skip
EMAIL = "bench@example.com"
PASSWORD = "quartz-lantern-orchard-7319"  # noqa: S105 - a throwaway local account (15+, zxcvbn 3+)
VERIFY_LINK = re.compile(r"/verify-email\?token=([\w-]+)")
WRK_LATENCY = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
RUN_IDS = itertools.count(1)


def find_shared() -> Path:
    """Return the shared folder: `shared/` beside the repository or beside one of its parents."""
    for parent in REPO.parents:
        if (parent / "shared" / "bench" / "baseline_app.py").exists():
            return parent / "shared"
    return REPO.parent / "shared"


def free_port() -> int:
    """Return a port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def clean_env() -> dict[str, str]:
    """Return this environment without PINELAB_* settings, so every run is configured alike."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PINELAB_")}


# ----------------------------------------------------------------------------- processes


class Process:
    """A child process in its own session, its output in a log file; stopped with its group."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.log_path = cwd / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """Ask the process group to stop (SIGTERM), then kill it if it does not within 15 s."""
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

    def check_alive(self) -> None:
        """Fail the benchmark, with the end of the log, if the process has exited."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} is not running:\n{self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        """Return the CPU time of the process and its children so far (Linux), else None."""
        if self.process is None:
            return None
        ticks = [_cpu_ticks(pid) for pid in _process_tree(self.process.pid)]
        if ticks[0] is None:
            return None
        return sum(tick or 0 for tick in ticks) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the process's output."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Server(Process):
    """A process that serves HTTP on 127.0.0.1:`port`."""

    def __init__(
        self, name: str, argv: list[str], *, port: int, env: dict[str, str], cwd: Path
    ) -> None:
        super().__init__(name, argv, env=env, cwd=cwd)
        self.port = port
        self.url = f"http://{HOST}:{port}"

    def start(self, ready_path: str = "/", timeout: float = 60.0) -> None:
        """Start the server and wait until it answers `ready_path` (any HTTP answer)."""
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + ready_path, timeout=1.0)
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout}s:\n{self.log_tail()}")


def _cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def _process_tree(pid: int) -> list[int]:
    found = [pid]
    for parent in found:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                found.extend(int(child) for child in (task / "children").read_text().split())
    return found


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[None]:
    """Stop the given (started) processes when the block ends, however it ends."""
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def baseline(shared: Path, workdir: Path, *, processes: int = 1) -> Server:
    """Return (not started) the shared baseline app under uvicorn with `processes` workers."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(shared / "bench"), "baseline_app:app",
        "--host", HOST, "--port", str(port), "--workers", str(processes), *BASELINE_FLAGS,
    ]  # fmt: skip
    return Server(f"baseline-{processes}p", argv, port=port, env=clean_env(), cwd=workdir)


# ----------------------------------------------------------------------------- databases


class Store:
    """Read access to PineLab's database: its SQLite file, or a PostgreSQL database."""

    def __init__(self, data_dir: Path, postgres_dsn: str = "") -> None:
        self.path = data_dir / "pinelab.db"
        self.dsn = postgres_dsn

    @property
    def database_url(self) -> str:
        """Return PINELAB_DATABASE_URL for this database ('' is the data dir's SQLite file)."""
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1) if self.dsn else ""

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one read-only query; parameters are written `?` on both databases."""
        if self.dsn:
            return asyncio.run(self._postgres_rows(sql, params))
        connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def scalar(self, sql: str, *params: Any) -> Any:
        """Return the first column of the first row."""
        return self.rows(sql, *params)[0][0]

    async def _postgres_rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        import asyncpg

        pieces = sql.split("?")
        numbered = pieces[0] + "".join(f"${n}{piece}" for n, piece in enumerate(pieces[1:], 1))
        connection = await asyncpg.connect(self.dsn)
        try:
            return [tuple(row) for row in await connection.fetch(numbered, *params)]
        finally:
            await connection.close()


@contextlib.contextmanager
def postgres_database(admin_dsn: str) -> Iterator[str]:
    """Create a throwaway PostgreSQL database, yield its DSN, and drop it afterwards."""
    import asyncpg

    name = f"pinelab_bench_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_reachable(admin_dsn: str) -> bool:
    """Tell whether the PostgreSQL server answers."""
    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(admin_dsn, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def as_utc(value: datetime | str) -> datetime:
    """Return a stored timestamp as an aware UTC datetime (SQLite gives naive UTC text)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def millis(later: datetime | str | None, earlier: datetime | str | None) -> float | None:
    """Return later - earlier in ms, or None when either is missing."""
    if later is None or earlier is None:
        return None
    return (as_utc(later) - as_utc(earlier)).total_seconds() * 1000


# ----------------------------------------------------------------------------- PineLab


@dataclass
class PineLab:
    """A fresh PineLab: its data dir, its database and the settings all its processes get."""

    data_dir: Path
    store: Store
    settings: dict[str, str]

    @classmethod
    def fresh(
        cls, workdir: Path, name: str, settings: dict[str, str], *, postgres_dsn: str = ""
    ) -> PineLab:
        """Create a data dir under `workdir` and migrate its database."""
        data_dir = workdir / name
        data_dir.mkdir()
        pinelab = cls(data_dir, Store(data_dir, postgres_dsn), dict(settings))
        done = subprocess.run(
            [sys.executable, "-m", "pinelab", "migrate"],
            env=pinelab.env(),
            cwd=data_dir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"pinelab migrate failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        return pinelab

    def env(self, **settings: str) -> dict[str, str]:
        """Return the environment of a PineLab process: this run's settings, then `settings`."""
        env = clean_env() | self.settings | settings | {"PINELAB_DATA_DIR": str(self.data_dir)}
        if self.store.database_url:
            env["PINELAB_DATABASE_URL"] = self.store.database_url
        return env

    def server(self, *, worker: bool, processes: int = 1, name: str = "pinelab") -> Server:
        """Return (not started) `pinelab serve`, its in-process worker on or off."""
        port = free_port()
        env = self.env(PINELAB_WORKER_ENABLED="true" if worker else "false")
        return Server(name, serve_argv(port, processes), port=port, env=env, cwd=self.data_dir)

    def worker(self, name: str = "worker") -> Process:
        """Return (not started) a `pinelab worker` process."""
        argv = [sys.executable, "-m", "pinelab", "worker"]
        return Process(name, argv, env=self.env(), cwd=self.data_dir)


def serve_argv(port: int, processes: int) -> list[str]:
    """Return the command that serves PineLab on `port` with `processes` API processes."""
    argv = [sys.executable, "-m", "pinelab", "serve", "--host", HOST, "--port", str(port)]
    return argv if processes == 1 else [*argv, "--workers", str(processes)]


def serve_description(processes: int) -> str:
    """Say how `processes` API processes are started."""
    return "pinelab serve" if processes == 1 else f"pinelab serve --workers {processes}"


class Api:
    """PineLab's HTTP API as one user drives it: registered, verified and logged in.

    The email is verified as a person would: the verification email lands in the data dir's
    outbox (no SMTP is configured) and its link's token is posted back. A server without its
    worker gets a `pinelab worker` for as long as it takes to send that email.
    """

    def __init__(self, server: Server, pinelab: PineLab) -> None:
        self.http = httpx.Client(base_url=server.url + "/api/v1", timeout=30.0)
        self.post("/auth/register", {"email": EMAIL, "password": PASSWORD})
        mailer = pinelab.worker("mail-worker")
        if server.env.get("PINELAB_WORKER_ENABLED") == "false":
            mailer.start()
        with running(mailer):
            token = verification_token(pinelab.data_dir / "outbox", EMAIL, process=mailer)
        self.post("/auth/verify-email", {"token": token})
        login = self.post("/auth/login", {"email": EMAIL, "password": PASSWORD})
        self.http.headers["Authorization"] = f"Bearer {login['access_token']}"

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST and return the JSON answer, or fail the benchmark with what the server said.

        A 429 (the per-user API limit, while setting up many strategies) is waited out once.
        """
        answer = self.http.post(path, json=body)
        if answer.status_code == 429:
            time.sleep(min(float(answer.headers.get("Retry-After", "1")), 60.0))
            answer = self.http.post(path, json=body)
        if answer.status_code >= 300:
            raise RuntimeError(f"POST {path} -> {answer.status_code}: {answer.text[:500]}")
        result: dict[str, Any] = answer.json()
        return result

    def paper_account(self, label: str) -> int:
        """Add a paper account with plenty of cash; return its id."""
        body = {"kind": "paper", "label": label, "starting_cash": "1000000000"}
        return int(self.post("/broker-accounts", body)["id"])

    def alpaca_account(self, label: str, api_key: str, api_secret: str) -> int:
        """Add an Alpaca (paper) account; return its id."""
        credentials = {"api_key": api_key, "api_secret": api_secret}
        body = {"kind": "alpaca", "label": label, "paper": True, "credentials": credentials}
        return int(self.post("/broker-accounts", body)["id"])

    def strategy(self, name: str, account_ids: Sequence[int]) -> str:
        """Add a strategy trading 1 unit per alert on the accounts; return its webhook token."""
        body = {
            "name": name,
            "broker_account_ids": list(account_ids),
            "sizing": {"type": "fixed", "value": "1"},
        }
        return str(self.post("/strategies", body)["token"])

    def paper_strategies(self, count: int, accounts: int) -> list[str]:
        """Add `accounts` paper accounts and `count` strategies bound to them in turn."""
        ids = [self.paper_account(f"bench-{n}") for n in range(accounts)]
        return [self.strategy(f"bench-{n}", [ids[n % accounts]]) for n in range(count)]

    def close(self) -> None:
        """Close the connection."""
        self.http.close()


def verification_token(
    outbox: Path, address: str, *, process: Process, timeout: float = 60.0
) -> str:
    """Wait for the verification email to `address` in the outbox; return its link's token."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml")) if outbox.is_dir() else ():
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] != address:
                continue
            for part in message.walk():
                if part.get_content_type() == "text/plain":
                    found = VERIFY_LINK.search(part.get_payload(decode=True).decode())
                    if found:
                        return found.group(1)
        if process.process is not None:
            process.check_alive()
        time.sleep(0.1)
    raise RuntimeError(f"no verification email to {address} in {outbox} within {timeout}s")


# ----------------------------------------------------------------------------- signals


def last_signal_id(store: Store) -> int:
    """Return the highest signal id so far (0 when none): later signals have higher ids."""
    return int(store.scalar("SELECT coalesce(max(id), 0) FROM signal"))


def signal_counts(store: Store, after_id: int = 0) -> dict[str, int]:
    """Return the signals after `after_id` by status, and their 'total'."""
    rows = store.rows("SELECT status, count(*) FROM signal WHERE id > ? GROUP BY status", after_id)
    counts = {str(status): int(count) for status, count in rows}
    return counts | {"total": sum(counts.values())}


def wait_until_executed(store: Store, after_id: int, expected: int, timeout: float) -> float:
    """Wait until `expected` signals after `after_id` exist and none is still 'accepted'.

    Return how long that took; at the timeout, return it (the caller reports what is left).
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        counts = signal_counts(store, after_id)
        if counts["total"] >= expected and not counts.get("accepted"):
            break
        time.sleep(0.2)
    return time.monotonic() - started


@dataclass
class Execution:
    """What became of the signals after an id: counts, and the span of their execution."""

    by_status: dict[str, int]
    orders: int
    fills: int
    first_received: datetime | None
    first_executed: datetime | None
    last_executed: datetime | None

    @property
    def executed(self) -> int:
        """Return how many were executed."""
        return self.by_status.get("executed", 0)

    def span_s(self, start: datetime | None = None) -> float | None:
        """Return seconds from `start` (default: the first arrival) to the last execution."""
        begin = start or self.first_received
        if begin is None or self.last_executed is None:
            return None
        return (self.last_executed - begin).total_seconds()

    def rate(self, start: datetime | None = None) -> float | None:
        """Return executed signals per second over span_s(start)."""
        span = self.span_s(start)
        return self.executed / span if span else None

    def problems(self, expected: int) -> list[str]:
        """Check every one of `expected` signals was executed with one order and one fill."""
        found = []
        total = sum(self.by_status.values())
        if total != expected:
            found.append(f"{total} signals stored for {expected} alerts acknowledged")
        if self.executed != total:
            found.append(f"not all signals executed: {self.by_status}")
        if self.orders != self.executed or self.fills != self.executed:
            found.append(
                f"{self.executed} executed signals, {self.orders} orders, {self.fills} fills"
            )
        return found


def execution(store: Store, after_id: int) -> Execution:
    """Read what became of the signals after `after_id` (top-level orders and their fills)."""
    times = store.rows(
        "SELECT min(received_at), min(executed_at), max(executed_at) FROM signal WHERE id > ?",
        after_id,
    )[0]
    orders = store.scalar(
        "SELECT count(*) FROM trade_order WHERE signal_id > ? AND parent_order_id IS NULL",
        after_id,
    )
    fills = store.scalar(
        "SELECT count(*) FROM fill f JOIN trade_order o ON o.id = f.order_id"
        " WHERE o.signal_id > ? AND o.parent_order_id IS NULL",
        after_id,
    )
    first, first_done, last_done = (None if t is None else as_utc(t) for t in times)
    counts = signal_counts(store, after_id)
    counts.pop("total")
    return Execution(counts, int(orders), int(fills), first, first_done, last_done)


# ----------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    """What wrk reported for one run, and the server's CPU time per request."""

    connections: int
    requests: int
    requests_per_second: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: int
    server_cpu_us_per_request: float | None = None

    @property
    def p99(self) -> float:
        """Return the 99th percentile latency in ms."""
        return self.latency_ms.get("p99", float("nan"))

    def describe(self) -> str:
        """Summarise the run on a line."""
        cpu = self.server_cpu_us_per_request
        return (
            f"{self.requests_per_second:>9,.0f} req/s  p50 {self.latency_ms.get('p50', 0):7.2f} ms"
            f"  p99 {self.p99:7.2f} ms  cpu {cpu if cpu is not None else '-':>5} us/req  "
            f"requests={self.requests} non2xx={self.non_2xx} socket_errors={self.socket_errors}"
        )

    def problems(self) -> list[str]:
        """Return what makes the run invalid: no answers, non-2xx answers, socket errors."""
        found = [] if self.requests else ["no request was answered"]
        if self.non_2xx:
            found.append(f"{self.non_2xx} non-2xx answers")
        if self.socket_errors:
            found.append(f"{self.socket_errors} socket errors")
        return found


def load(
    server: Server, path: str, connections: int, duration: float, tokens: Sequence[str] = ()
) -> WrkResult:
    """Run wrk against the server (alerts spread over `tokens` if given); note its CPU time."""
    before = server.cpu_seconds()
    threads = min(2, connections)
    run_id = f"{os.getpid()}x{next(RUN_IDS)}"
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency",
        "--timeout", "5s", "-s", str(ALERT_SCRIPT), server.url + path, "--", run_id,
    ]  # fmt: skip
    if tokens:
        argv.append(",".join(tokens))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout, connections)
    after = server.cpu_seconds()
    if before is not None and after is not None and result.requests:
        result.server_cpu_us_per_request = round((after - before) / result.requests * 1e6)
    return result


def parse_wrk(output: str, connections: int) -> WrkResult:
    """Parse wrk's --latency report."""
    requests = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if requests is None or rate is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        connections=connections,
        requests=int(requests.group(1)),
        requests_per_second=float(rate.group(1)),
        latency_ms={
            f"p{pct}": round(float(value) * UNIT_MS[unit], 3)
            for pct, value, unit in WRK_LATENCY.findall(output)
        },
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(map(int, sockets.groups())) if sockets else 0,
    )


# ----------------------------------------------------------------------------- statistics


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Return p50, p90, p99, max (nearest rank, 0.01 ms) and n of a sample; {} when empty."""
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


def describe_ms(stats: dict[str, float]) -> str:
    """Format percentiles on a line."""
    if not stats:
        return "no sample"
    return "  ".join(f"{key} {stats[key]:8.2f} ms" for key in ("p50", "p90", "p99", "max")) + (
        f"  (n={stats['n']})"
    )


def ratio(value: float | None, floor: float | None) -> float | None:
    """Return value / floor, or None when either is missing."""
    return value / floor if value is not None and floor else None


# ----------------------------------------------------------------------------- scenarios


@dataclass
class Target:
    """One of the issue's targets: the figure measured and whether it meets it (None: no target)."""

    label: str
    figure: str
    met: bool | None


@dataclass
class Report:
    """What one scenario measured: its targets, what voids its figures, and the raw data."""

    scenario: str
    command: str = ""
    targets: list[Target] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def target(self, label: str, figure: str, met: bool | None) -> None:
        """Add a target with the figure measured and whether it meets it."""
        self.targets.append(Target(label, figure, met))

    def verdict(self, target: Target) -> str:
        """Return MET, MISSED, INVALID (the run had errors), or 'figure' for a figure only."""
        if target.met is None:
            return "figure"
        return "INVALID" if self.problems else "MET" if target.met else "MISSED"

    def print(self) -> None:
        """Print the targets, the problems and the command that repeats the run."""
        print(f"\nTargets ({self.scenario})")
        for target in self.targets:
            print(f"  [{self.verdict(target)}] {target.label}: {target.figure}")
        for problem in self.problems:
            print(f"  !!! {problem}")
        if self.problems:
            print("  !!! the run had errors: its figures are not valid")
        print(f"repeat: {self.command}")


def parser(description: str) -> argparse.ArgumentParser:
    """Return an argument parser with the options every scenario takes."""
    found = argparse.ArgumentParser(description=description)
    found.add_argument("--shared", type=Path, default=find_shared(), help="the shared folder")
    found.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    found.add_argument("--json", type=Path, help="also write the results to this file")
    found.add_argument(
        "--pinelab-env",
        action="append",
        default=[],
        metavar="PINELAB_X=VALUE",
        help="an extra setting for every PineLab process (repeatable)",
    )
    return found


def command_line(script: str, options: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """Return the command that repeats this run, every option written out."""
    python = Path(sys.executable)
    words = [str(python.relative_to(REPO) if python.is_relative_to(REPO) else python)]
    words.append(f"bench/{script}")
    for action in options._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest == "help" or value in (None, False):
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:
            words.append(flag)
        elif isinstance(value, list):
            words.extend(word for item in value for word in (flag, str(item)))
        else:
            words.extend((flag, str(value)))
    return f"(cd {shlex.quote(str(REPO))} && {shlex.join(words)})"


def settings_from(args: argparse.Namespace) -> dict[str, str]:
    """Return the --pinelab-env settings as a dict."""
    settings = dict(item.split("=", 1) for item in args.pinelab_env if "=" in item)
    fixed = {"PINELAB_DATA_DIR", "PINELAB_DATABASE_URL", "PINELAB_WORKER_ENABLED"}
    if fixed & set(settings) or not all(key.startswith("PINELAB_") for key in settings):
        raise SystemExit(f"--pinelab-env takes PINELAB_* settings other than {sorted(fixed)}")
    return settings


def run_scenario(
    script: str,
    options: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    measure: Callable[[argparse.Namespace, Path, Report], None],
) -> Report:
    """Parse the options, run `measure` in a temporary folder, print and return its report."""
    args = options.parse_args(argv)
    report = Report(script.removesuffix(".py"), command_line(script, options, args))
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk: apt-get install -y wrk")
    if not (args.shared / "bench" / "baseline_app.py").exists():
        raise SystemExit(f"no baseline_app.py in {args.shared}/bench (use --shared)")
    print_header(report)
    workdir = Path(tempfile.mkdtemp(prefix=f"pinelab-bench-{report.scenario}-"))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        measure(args, workdir, report)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if args.keep:
            print(f"data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report.print()
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2, default=str))
        print(f"wrote {args.json}")
    return report


def print_header(report: Report) -> None:
    """Print what is measured, where and on which commit."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"\n=== PineLab benchmark: {report.scenario} ===")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {commit or '?'}; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}"
    )
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        print("!!! the machine is busy (load above the CPU count): figures will be noisy")
    print(f"command: {report.command}", flush=True)


def exit_code(*reports: Report) -> int:
    """Return 1 when a run had errors (its figures are not valid), else 0."""
    return 1 if any(report.problems for report in reports) else 0


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
