"""Scenario e: scale by processes on PostgreSQL - API processes, then `pinelab worker` processes.

On a throwaway PostgreSQL database (created on --pg, 127.0.0.1:5432 by default, dropped after):

1. ingest: wrk at 64 connections for 10 s against one API process (`pinelab serve`, worker off,
   one strategy, PINELAB_WEBHOOK_RATE_PER_MINUTE=0), then against two (`pinelab serve --workers
   2`, or uvicorn's workers as the CLI would start them while it lacks the flag); the shared
   baseline app runs the same two loads with one and two uvicorn workers. Figures: alerts/s and
   p99 of each, and the two/one ratio. Targets: two >= 1.5x one, p99 <= 50 ms.
2. workers, on a second throwaway database: a backlog of alerts (1,000 over 20 strategies, one
   paper account each) is enqueued with every worker off, then drained by one `pinelab worker`
   process; a second backlog by two. Figure: executed/s = executed signals / (last - first
   `signal.executed_at`), and the two/one ratio (no target: the processes share 2 cores here).

    .venv/bin/python bench/scale.py [--duration 10] [--backlog 2000] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _client import send_burst, summary
from _common import (
    Api,
    PineLab,
    Report,
    WrkResult,
    baseline,
    execution,
    last_signal_id,
    load,
    parser,
    postgres_database,
    postgres_reachable,
    ratio,
    run_scenario,
    running,
    serve_description,
    settings_from,
    signal_counts,
    wait_until_executed,
)

TARGET_SCALE = 1.5
TARGET_P99_MS = 50.0
PROCESSES = (1, 2)


def options() -> argparse.ArgumentParser:
    """Return the scenario's options."""
    found = parser(__doc__.splitlines()[0])
    found.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="an administrative connection to create databases with",
    )
    found.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    found.add_argument("--connections", type=int, default=64, help="wrk and client connections")
    found.add_argument("--backlog", type=int, default=1000, help="alerts per worker backlog")
    found.add_argument("--strategies", type=int, default=20, help="backlog strategies")
    found.add_argument("--drain-timeout", type=float, default=120.0, help="max s per drain")
    return found


def ingest(args: argparse.Namespace, workdir: Path, dsn: str, report: Report) -> None:
    """Measure ingest with one and two API processes, and the baseline with one and two."""
    floor: dict[int, WrkResult] = {}
    for processes in PROCESSES:
        server = baseline(args.shared, workdir, processes=processes)
        with running(server):
            server.start()
            floor[processes] = load(server, "/webhooks/bench", args.connections, args.duration)
        print(f"  baseline, {processes} process(es): {floor[processes].describe()}", flush=True)
    settings = settings_from(args) | {"PINELAB_WEBHOOK_RATE_PER_MINUTE": "0"}
    pinelab = PineLab.fresh(workdir, "ingest", settings, postgres_dsn=dsn)
    runs: dict[int, WrkResult] = {}
    token = ""
    for processes in PROCESSES:
        server = pinelab.server(worker=False, processes=processes, name=f"pinelab-{processes}p")
        with running(server):
            server.start("/health/live")
            if not token:
                api = Api(server, pinelab)
                token = api.strategy("bench", [api.paper_account("bench")])
                api.close()
            before = last_signal_id(pinelab.store)
            runs[processes] = load(server, f"/webhooks/{token}", args.connections, args.duration)
            time.sleep(0.5)  # the requests in flight when wrk stopped are answered and stored
            stored = signal_counts(pinelab.store, before)
        print(
            f"  PineLab, {serve_description(processes)}: {runs[processes].describe()}", flush=True
        )
        report.problems.extend(f"{processes}p: {problem}" for problem in runs[processes].problems())
        if stored["total"] < runs[processes].requests - runs[processes].non_2xx:
            report.problems.append(f"{processes}p: LOST ALERTS: {runs[processes]} vs {stored}")
        report.data[f"ingest_{processes}p"] = {
            "baseline": floor[processes],
            "pinelab": runs[processes],
        }
    one, two = (runs[n].requests_per_second for n in PROCESSES)
    base_one, base_two = (floor[n].requests_per_second for n in PROCESSES)
    scale = ratio(two, one) or 0.0
    for processes in PROCESSES:
        run = runs[processes]
        share = ratio(run.requests_per_second, floor[processes].requests_per_second) or 0.0
        report.target(
            f"ingest, {processes} API process(es) (no target)",
            f"{run.requests_per_second:,.0f}/s, p99 {run.p99:.1f} ms; {share:.2f}x the baseline's",
            None,
        )
    report.target(
        f"two API processes >= {TARGET_SCALE}x one",
        f"{scale:.2f}x (baseline two/one: {ratio(base_two, base_one) or 0:.2f}x)",
        scale >= TARGET_SCALE,
    )
    worst = max(runs[n].p99 for n in PROCESSES)
    report.target(f"p99 <= {TARGET_P99_MS:g} ms", f"worst {worst:.1f} ms", worst <= TARGET_P99_MS)


def drain(args: argparse.Namespace, workdir: Path, dsn: str, report: Report) -> None:
    """Enqueue a backlog with every worker off, then drain it with one, then two, workers."""
    pinelab = PineLab.fresh(workdir, "workers", settings_from(args), postgres_dsn=dsn)
    server = pinelab.server(worker=False, name="pinelab-backlog")
    rates: dict[int, float] = {}
    with running(server):
        server.start("/health/live")
        api = Api(server, pinelab)
        tokens = api.paper_strategies(args.strategies, args.strategies)
        api.close()
        for workers in PROCESSES:
            before = last_signal_id(pinelab.store)
            tag = f"{os.getpid()}-{workers}"
            sent, _ = send_burst(server.url, tokens, args.backlog, args.connections, tag)
            acked = summary(sent).accepted
            processes = [pinelab.worker(f"worker-{workers}-{n}") for n in range(workers)]
            with running(*processes):
                for process in processes:
                    process.start()
                waited = wait_until_executed(pinelab.store, before, acked, args.drain_timeout)
                for process in processes:
                    process.check_alive()
            done = execution(pinelab.store, before)
            rates[workers] = done.rate(done.first_executed) or 0.0
            span = done.span_s(done.first_executed) or 0.0
            print(
                f"  {workers} pinelab worker process(es): {acked} of {args.backlog} alerts "
                f"enqueued, {done.by_status}, drained in {span:.2f} s from the first execution "
                f"({waited:.1f} s from the start): {rates[workers]:,.0f} executed/s",
                flush=True,
            )
            report.problems.extend(f"{workers} workers: {p}" for p in done.problems(acked))
            if acked != args.backlog:
                report.problems.append(f"{workers} workers: {args.backlog - acked} alerts not 202")
            report.data[f"drain_{workers}w"] = {"enqueued": acked, "execution": done}
    for workers in PROCESSES:
        report.target(
            f"drain, {workers} worker process(es) (no target)",
            f"{rates[workers]:,.0f} executed/s",
            None,
        )
    report.target(
        "drain, two workers / one (no target)", f"{ratio(rates[2], rates[1]) or 0:.2f}x", None
    )


def measure(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    """Run both parts, each on its own throwaway database."""
    if not 0 < args.duration <= 120 or not 0 < args.backlog <= 50_000:
        raise SystemExit("--duration in (0, 120] s, --backlog in (0, 50000]")
    if not postgres_reachable(args.pg):
        raise SystemExit(f"no PostgreSQL answers at {args.pg}")
    print(f"\ningest at {args.connections} connections, worker off")
    with postgres_database(args.pg) as dsn:
        ingest(args, workdir, dsn, report)
    print("\nworker processes draining a backlog")
    with postgres_database(args.pg) as dsn:
        drain(args, workdir, dsn, report)


def main(argv: Sequence[str] | None = None) -> Report:
    """Run the scenario and return its report."""
    return run_scenario("scale.py", options(), argv, measure)


if __name__ == "__main__":
    sys.exit(1 if main().problems else 0)
