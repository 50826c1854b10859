"""Scenario c: the sustained pipeline with the in-process worker on, alerts to paper fills.

wrk posts distinct alerts at 64 connections for 10 s, spread over 20 strategies each on its own
paper account, to a fresh PineLab (`pinelab serve`, SQLite, in-process worker on, default log
level, PINELAB_WEBHOOK_RATE_PER_MINUTE=0: the per-strategy limit would answer 429 to this load
by design); then the backlog is left to drain. The same wrk load first goes to the shared
baseline app.

Figures: alerts accepted per second while the worker runs (and its ratio to the baseline), and
alerts executed per second = executed signals / (last `signal.executed_at` - first
`signal.received_at`), from the database, with one order and one fill per signal.
Target: executed/s >= 300.

    .venv/bin/python bench/pipeline.py [--duration 10] [--strategies 20]
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
    baseline,
    execution,
    last_signal_id,
    load,
    parser,
    ratio,
    run_scenario,
    running,
    settings_from,
    signal_counts,
    wait_until_executed,
)

TARGET_EXECUTED_PER_S = 300.0


def options() -> argparse.ArgumentParser:
    """Return the scenario's options."""
    found = parser(__doc__.splitlines()[0])
    found.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    found.add_argument("--connections", type=int, default=64, help="wrk connections")
    found.add_argument("--strategies", type=int, default=20, help="strategies, one account each")
    found.add_argument("--drain-timeout", type=float, default=180.0, help="max s to drain")
    return found


def measure(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    """Load the baseline, then PineLab, then wait for PineLab's backlog."""
    if not 0 < args.duration <= 120 or not 0 < args.strategies <= 500:
        raise SystemExit("--duration in (0, 120] s, --strategies in (0, 500]")
    server = baseline(args.shared, workdir)
    print("\nbaseline (shared/bench/baseline_app.py, uvicorn, 1 process)")
    with running(server):
        server.start()
        floor = load(server, "/webhooks/bench", args.connections, args.duration)
        print(f"  c={args.connections:<4} {floor.describe()}", flush=True)

    settings = settings_from(args) | {"PINELAB_WEBHOOK_RATE_PER_MINUTE": "0"}
    pinelab = PineLab.fresh(workdir, "pinelab", settings)
    server = pinelab.server(worker=True)
    print(
        f"\nPineLab (pinelab serve, SQLite, worker on; {args.strategies} strategies, one paper "
        "account each)"
    )
    with running(server):
        server.start("/health/live")
        api = Api(server, pinelab)
        tokens = api.paper_strategies(args.strategies, args.strategies)
        api.close()
        before = last_signal_id(pinelab.store)
        run = load(server, "", args.connections, args.duration, tokens)
        time.sleep(0.5)  # the requests in flight when wrk stopped are answered and stored
        stored = signal_counts(pinelab.store, before)
        print(f"  c={args.connections:<4} {run.describe()}  stored={stored}", flush=True)
        waited = wait_until_executed(pinelab.store, before, stored["total"], args.drain_timeout)
        done = execution(pinelab.store, before)
        server.check_alive()
    rate = done.rate()
    print(
        f"  signals {done.by_status}, {done.orders} orders, {done.fills} fills; backlog drained "
        f"{waited:.1f} s after the load; first arrival to last execution {done.span_s() or 0:.2f} s"
    )
    report.data |= {"baseline": floor, "pinelab": run, "stored": stored, "execution": done}
    report.problems.extend(run.problems())
    if stored["total"] < run.requests - run.non_2xx:
        report.problems.append(
            f"LOST ALERTS: {run.requests} acknowledged, {stored['total']} stored"
        )
    report.problems.extend(done.problems(stored["total"]))
    share = ratio(run.requests_per_second, floor.requests_per_second) or 0.0
    report.target(
        "ingest with the worker on (no target)",
        f"{run.requests_per_second:,.0f}/s vs baseline {floor.requests_per_second:,.0f}/s "
        f"= {share:.2f}x, p99 {run.p99:.1f} ms",
        None,
    )
    report.target(
        f"executed >= {TARGET_EXECUTED_PER_S:g} alerts/s",
        f"{rate:,.0f}/s ({done.executed} in {done.span_s():.2f} s)" if rate else "none executed",
        rate is not None and rate >= TARGET_EXECUTED_PER_S,
    )


def main(argv: Sequence[str] | None = None) -> Report:
    """Run the scenario and return its report."""
    return run_scenario("pipeline.py", options(), argv, measure)


if __name__ == "__main__":
    sys.exit(1 if main().problems else 0)
