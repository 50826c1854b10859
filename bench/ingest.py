"""Scenario a: durable ingest in an API process with its worker off (the scale-out shape).

wrk posts distinct alerts at each connection level (64 by default) for 10 s to the shared
baseline app, then to a fresh PineLab: `pinelab serve` on SQLite with PINELAB_WORKER_ENABLED=false
and the default log level, one paper account and one strategy, PINELAB_WEBHOOK_RATE_PER_MINUTE=0
(the per-strategy limit would answer 429 to this load by design). Each 202 means the signal and
its job were committed; the database must then hold exactly the alerts wrk saw acknowledged.

Targets at 64 connections: >= 0.4x the baseline's alerts/s, p99 <= 30 ms, every request 2xx.

    .venv/bin/python bench/ingest.py [--connections 1,16,64] [--duration 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _common import (
    Api,
    PineLab,
    Report,
    WrkResult,
    baseline,
    last_signal_id,
    load,
    parser,
    ratio,
    run_scenario,
    running,
    settings_from,
    signal_counts,
)

TARGET_RATIO = 0.4
TARGET_P99_MS = 30.0


def options() -> argparse.ArgumentParser:
    """Return the scenario's options."""
    found = parser(__doc__.splitlines()[0])
    found.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    found.add_argument("--connections", default="64", help="comma-separated connection levels")
    return found


def stored_problems(run: WrkResult, stored: dict[str, int]) -> list[str]:
    """Check the database holds the acknowledged alerts, all accepted, and no more."""
    problems = []
    acknowledged = run.requests - run.non_2xx
    if stored["total"] < acknowledged:
        problems.append(f"LOST ALERTS: {acknowledged} acknowledged but {stored['total']} stored")
    # Requests in flight when wrk stops are stored but never counted by wrk.
    if stored["total"] > run.requests + run.connections:
        problems.append(f"{stored['total']} stored but only {run.requests} sent")
    if stored.get("accepted", 0) != stored["total"]:
        problems.append(f"signals not all accepted: {stored}")
    return problems


def measure(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    """Run wrk against the baseline, then against PineLab, at every level."""
    levels = [int(level) for level in args.connections.split(",") if level.strip()]
    if not 0 < args.duration <= 120 or not all(0 < level <= 1024 for level in levels):
        raise SystemExit("--duration must be in (0, 120] s and connections in [1, 1024]")
    floor: dict[int, WrkResult] = {}
    server = baseline(args.shared, workdir)
    print("\nbaseline (shared/bench/baseline_app.py, uvicorn, 1 process)")
    with running(server):
        server.start()
        for level in levels:
            floor[level] = load(server, "/webhooks/bench", level, args.duration)
            print(f"  c={level:<4} {floor[level].describe()}", flush=True)

    settings = settings_from(args) | {"PINELAB_WEBHOOK_RATE_PER_MINUTE": "0"}
    pinelab = PineLab.fresh(workdir, "pinelab", settings)
    server = pinelab.server(worker=False)
    print("\nPineLab (pinelab serve, SQLite, worker off)")
    runs: dict[int, WrkResult] = {}
    with running(server):
        server.start("/health/live")
        api = Api(server, pinelab)
        token = api.strategy("bench", [api.paper_account("bench")])
        api.close()
        for level in levels:
            before = last_signal_id(pinelab.store)
            runs[level] = load(server, f"/webhooks/{token}", level, args.duration)
            time.sleep(0.5)  # the requests in flight when wrk stopped are answered and stored
            stored = signal_counts(pinelab.store, before)
            problems = runs[level].problems() + stored_problems(runs[level], stored)
            print(f"  c={level:<4} {runs[level].describe()}  stored={stored}", flush=True)
            report.problems.extend(f"c={level}: {problem}" for problem in problems)
            report.data[f"c{level}"] = {"baseline": floor[level], "pinelab": runs[level]}
            report.data[f"c{level}"]["stored"] = stored

    print(f"\n{'conns':>5}  {'baseline/s':>10}  {'PineLab/s':>10}  {'ratio':>5}  {'p99 ms':>7}")
    for level in levels:
        share = ratio(runs[level].requests_per_second, floor[level].requests_per_second)
        print(
            f"{level:>5}  {floor[level].requests_per_second:>10,.0f}  "
            f"{runs[level].requests_per_second:>10,.0f}  {share or 0:5.2f}  {runs[level].p99:7.2f}"
        )
    top = max(levels)
    share = ratio(runs[top].requests_per_second, floor[top].requests_per_second) or 0.0
    report.target(
        f"c={top} ingest >= {TARGET_RATIO}x baseline",
        f"{runs[top].requests_per_second:,.0f}/s vs {floor[top].requests_per_second:,.0f}/s"
        f" = {share:.2f}x",
        share >= TARGET_RATIO,
    )
    report.target(
        f"c={top} p99 <= {TARGET_P99_MS:g} ms",
        f"{runs[top].p99:.1f} ms",
        runs[top].p99 <= TARGET_P99_MS,
    )
    report.target(
        f"c={top} every request 2xx, every one stored",
        f"{runs[top].requests} requests, {runs[top].non_2xx} non-2xx",
        not report.problems,
    )


def main(argv: Sequence[str] | None = None) -> Report:
    """Run the scenario and return its report."""
    return run_scenario("ingest.py", options(), argv, measure)


if __name__ == "__main__":
    sys.exit(1 if main().problems else 0)
