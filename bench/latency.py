"""Scenario d: alert-to-submit at the Alpaca emulator, and paper alert-to-fill, at 100 alerts/s.

A steady open-loop stream (100 alerts/s for 10 s, each sent when due however slow the answers)
goes to a fresh PineLab (`pinelab serve`, SQLite, in-process worker on, default settings and log
level), spread over 50 strategies, each on its own account, twice:

- alpaca: Alpaca accounts pointed (PINELAB_BROKER_BASE_URLS) at the Alpaca emulator of
  tests/fakes, run in its own process on 127.0.0.1 with no fault (latency 0). PineLab keeps each
  Alpaca account within Alpaca's 200 requests a minute, so one account takes about 3 orders/s:
  100/s needs some 50. Latency = the order's `created_at` at the emulator (when it received the
  order, read back with GET /v2/orders) - the signal's `received_at`; one machine, one clock.
- paper: paper accounts. Latency = `fill.filled_at` - `signal.received_at`.

2 alerts/s per strategy stay within the default per-strategy webhook limit (600/min). The same
stream first goes to the shared baseline app, the floor for the client's answers.
Targets: alert-to-submit p50 <= 10 ms and p99 <= 50 ms; paper alert-to-fill p50 <= 20 ms.

    .venv/bin/python bench/latency.py [--rate 100] [--duration 10] [--part both|alpaca|paper]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from _client import Sent, send_paced, summary
from _common import (
    HERE,
    Api,
    PineLab,
    Process,
    Report,
    Server,
    Store,
    baseline,
    clean_env,
    describe_ms,
    last_signal_id,
    millis,
    parser,
    percentiles,
    run_scenario,
    running,
    settings_from,
    wait_until_executed,
)

TARGET_SUBMIT_P50_MS = 10.0
TARGET_SUBMIT_P99_MS = 50.0
TARGET_FILL_P50_MS = 20.0
STAGES = ("order stored", "submitted", "at the emulator", "fill", "executed")


def options() -> argparse.ArgumentParser:
    """Return the scenario's options."""
    found = parser(__doc__.splitlines()[0])
    found.add_argument("--rate", type=float, default=100.0, help="alerts per second")
    found.add_argument("--duration", type=float, default=10.0, help="seconds of the stream")
    found.add_argument("--strategies", type=int, default=50, help="strategies, one account each")
    found.add_argument("--part", choices=("both", "alpaca", "paper"), default="both")
    found.add_argument("--drain-timeout", type=float, default=60.0, help="max s to execute")
    return found


def signal_rows(store: Store, after_id: int) -> list[tuple[Any, ...]]:
    """Return per signal after `after_id`: status, times, and its top-level order's and fill's."""
    return store.rows(
        """
        SELECT s.id, s.status, s.received_at, s.executed_at, o.client_order_id, o.created_at,
               o.submitted_at, (SELECT min(f.filled_at) FROM fill f WHERE f.order_id = o.id)
          FROM signal s
          LEFT JOIN trade_order o ON o.signal_id = s.id AND o.parent_order_id IS NULL
         WHERE s.id > ?
        """,
        after_id,
    )


def stages(rows: list[tuple[Any, ...]], venue: dict[str, str]) -> dict[str, dict[str, float]]:
    """Return the latency percentiles from each signal's arrival to each step of its path."""
    found: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for _id, _status, received, executed, client_id, created, submitted, filled in rows:
        moments = (created, submitted, venue.get(client_id or ""), filled, executed)
        for stage, moment in zip(STAGES, moments, strict=True):
            value = millis(moment, received)
            if value is not None:
                found[stage].append(value)
    return {stage: percentiles(values) for stage, values in found.items() if values}


def problems(
    sent: list[Sent], rows: list[tuple[Any, ...]], venue: dict[str, str] | None
) -> list[str]:
    """Check every alert was acknowledged and executed with one order (at the venue, if given)."""
    found = []
    acked = sum(one.status == 202 for one in sent)
    if acked != len(sent):
        found.append(f"{len(sent) - acked} of {len(sent)} alerts not acknowledged")
    statuses = Counter(row[1] for row in rows)
    if len({row[0] for row in rows}) != acked or len(rows) != acked:
        found.append(f"{len(rows)} signal/order rows for {acked} alerts acknowledged")
    if statuses["executed"] != len(rows):
        found.append(f"not all executed: {dict(statuses)}")
    if venue is not None:
        missing = sum(row[4] not in venue for row in rows)
        if missing:
            found.append(f"{missing} orders never reached the emulator")
    return found


def stream(
    pinelab: PineLab, server: Server, tokens: list[str], args: argparse.Namespace
) -> tuple[list[Sent], list[tuple[Any, ...]], dict[str, Any]]:
    """Send the paced stream to the strategies in turn and wait for its execution.

    Return what the client saw, the database's rows and the server's CPU time per alert.
    """
    before = last_signal_id(pinelab.store)
    cpu = server.cpu_seconds()
    tag = f"{os.getpid()}-{before}"
    sent = send_paced(server.url, tokens, args.rate, args.duration, tag)
    waited = wait_until_executed(pinelab.store, before, len(sent), args.drain_timeout)
    after = server.cpu_seconds()
    server.check_alive()
    extra = {"drained_s_after_stream": round(waited, 2)}
    if cpu is not None and after is not None and sent:
        extra["server_cpu_us_per_alert"] = round((after - cpu) / len(sent) * 1e6)
    return sent, signal_rows(pinelab.store, before), extra


def show(
    name: str, sent: list[Sent], latencies: dict[str, dict[str, float]], extra: dict[str, Any]
) -> None:
    """Print one part's figures."""
    print(f"  {name}: client {summary(sent).describe()}")
    print(f"  {name}: {extra}")
    for stage, stats in latencies.items():
        print(f"  {name}: alert -> {stage:<16} {describe_ms(stats)}")


def alpaca(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    """Measure alert-to-submit against the Alpaca emulator."""
    keys = [
        (f"PK{secrets.token_hex(8).upper()}", secrets.token_hex(20)) for _ in range(args.strategies)
    ]
    ready = workdir / "emulator.url"
    env = clean_env() | {"BENCH_ALPACA_KEYS": json.dumps(keys)}
    argv = [sys.executable, str(HERE / "_emulator.py"), str(ready)]
    emulator = Process("alpaca-emulator", argv, env=env, cwd=workdir)
    print(
        f"\nPineLab -> Alpaca emulator (pinelab serve, SQLite, worker on; {args.strategies} "
        "strategies, one Alpaca account each)"
    )
    with running(emulator):
        emulator.start()
        deadline = time.monotonic() + 30
        while not ready.exists():
            emulator.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start:\n{emulator.log_tail()}")
            time.sleep(0.1)
        url = ready.read_text()
        settings = settings_from(args) | {"PINELAB_BROKER_BASE_URLS": json.dumps({"alpaca": url})}
        pinelab = PineLab.fresh(workdir, "alpaca", settings)
        server = pinelab.server(worker=True, name="pinelab-alpaca")
        with running(server):
            server.start("/health/live")
            api = Api(server, pinelab)
            accounts = [api.alpaca_account(f"emulator-{n}", *pair) for n, pair in enumerate(keys)]
            tokens = [api.strategy(f"alpaca-{n}", [account]) for n, account in enumerate(accounts)]
            api.close()
            venue_cpu = emulator.cpu_seconds() or 0.0
            sent, rows, extra = stream(pinelab, server, tokens, args)
            venue_cpu = (emulator.cpu_seconds() or 0.0) - venue_cpu
            extra["emulator_cpu_us_per_alert"] = round(venue_cpu / max(1, len(sent)) * 1e6)
        auth = {"APCA-API-KEY-ID": keys[0][0], "APCA-API-SECRET-KEY": keys[0][1]}
        query = {"status": "all", "limit": "1000000", "direction": "asc"}
        orders = httpx.get(f"{url}/v2/orders", params=query, headers=auth, timeout=30).json()
    extra["emulator_requests"] = json.loads(ready.with_suffix(".requests.json").read_text())
    venue = {order["client_order_id"]: order["created_at"] for order in orders}
    latencies = stages(rows, venue)
    show("alpaca", sent, latencies, extra)
    report.problems.extend(f"alpaca: {problem}" for problem in problems(sent, rows, venue))
    report.data["alpaca"] = {"client": summary(sent), "stages_ms": latencies} | extra
    submit = latencies.get("at the emulator", {})
    p50, p99 = submit.get("p50", float("inf")), submit.get("p99", float("inf"))
    report.target(
        f"alert-to-submit p50 <= {TARGET_SUBMIT_P50_MS:g} ms",
        f"{p50:.2f} ms",
        p50 <= TARGET_SUBMIT_P50_MS,
    )
    report.target(
        f"alert-to-submit p99 <= {TARGET_SUBMIT_P99_MS:g} ms",
        f"{p99:.2f} ms",
        p99 <= TARGET_SUBMIT_P99_MS,
    )


def paper(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    """Measure alert-to-fill on the built-in paper broker."""
    pinelab = PineLab.fresh(workdir, "paper", settings_from(args))
    server = pinelab.server(worker=True, name="pinelab-paper")
    print(
        f"\nPineLab -> paper broker (pinelab serve, SQLite, worker on; {args.strategies} "
        "strategies, one paper account each)"
    )
    with running(server):
        server.start("/health/live")
        api = Api(server, pinelab)
        tokens = api.paper_strategies(args.strategies, args.strategies)
        api.close()
        sent, rows, extra = stream(pinelab, server, tokens, args)
    latencies = stages(rows, {})
    show("paper", sent, latencies, extra)
    report.problems.extend(f"paper: {problem}" for problem in problems(sent, rows, None))
    report.data["paper"] = {"client": summary(sent), "stages_ms": latencies} | extra
    p50 = latencies.get("fill", {}).get("p50", float("inf"))
    report.target(
        f"paper alert-to-fill p50 <= {TARGET_FILL_P50_MS:g} ms",
        f"{p50:.2f} ms",
        p50 <= TARGET_FILL_P50_MS,
    )


def measure(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    """Stream to the baseline, then to PineLab on the emulator and on the paper broker."""
    if not 0 < args.rate <= 1000 or not 0 < args.duration <= 60 or not 0 < args.strategies <= 500:
        raise SystemExit(
            "--rate in (0, 1000] alerts/s, --duration in (0, 60] s, --strategies (0, 500]"
        )
    server = baseline(args.shared, workdir)
    print(f"\nbaseline (shared/bench/baseline_app.py, uvicorn, 1 process), {args.rate:g} alerts/s")
    with running(server):
        server.start()
        sent = send_paced(server.url, ["bench"], args.rate, args.duration, str(os.getpid()))
    floor = summary(sent)
    print(f"  baseline: client {floor.describe()}")
    report.data["baseline"] = floor
    if args.part in ("both", "alpaca"):
        alpaca(args, workdir, report)
    if args.part in ("both", "paper"):
        paper(args, workdir, report)
    report.target(
        "client answer at this rate (no target)",
        f"baseline p50 {floor.latency_ms['p50']:.2f} ms, p99 {floor.latency_ms['p99']:.2f} ms",
        None,
    )


def main(argv: Sequence[str] | None = None) -> Report:
    """Run the scenario and return its report."""
    return run_scenario("latency.py", options(), argv, measure)


if __name__ == "__main__":
    sys.exit(1 if main().problems else 0)
