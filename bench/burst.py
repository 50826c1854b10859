"""Scenario b: a bar-close burst with the in-process worker on, as `make run` serves.

A fresh PineLab as `make run` serves it (`pinelab serve`: SQLite, paper broker, in-process worker,
default settings and log level) with 200 strategies, each on its own paper account by default
(`--accounts N` shares N accounts among them). At once, 2,000 alerts (10 per strategy, within the
default per-strategy rate limit) go over 64 connections opened ahead. The same burst first goes
to the shared baseline app, the floor for the answers.

Targets: every alert answered 2xx, the slowest answer <= 1 s (TradingView gives up after about
3 s), every one executed (signal `executed`, one order, one fill) within 15 s of the first
arrival (`signal.received_at`) - read from the database, polled until a deadline.

    .venv/bin/python bench/burst.py [--alerts 2000] [--strategies 200] [--accounts 200]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from _client import Answers, Sent, send_burst, summary
from _common import (
    Api,
    PineLab,
    Report,
    baseline,
    execution,
    last_signal_id,
    parser,
    run_scenario,
    running,
    settings_from,
    wait_until_executed,
)

TARGET_SLOWEST_S = 1.0
TARGET_EXECUTED_S = 15.0


def options() -> argparse.ArgumentParser:
    """Return the scenario's options."""
    found = parser(__doc__.splitlines()[0])
    found.add_argument("--alerts", type=int, default=2000, help="alerts in the burst")
    found.add_argument("--strategies", type=int, default=200, help="strategies they go to")
    found.add_argument("--accounts", type=int, default=200, help="paper accounts they share")
    found.add_argument("--connections", type=int, default=64, help="client connections")
    found.add_argument("--deadline", type=float, default=60.0, help="max s to wait for execution")
    return found


def show(name: str, sent: list[Sent], seconds: float) -> Answers:
    """Print and return what the client saw of a burst."""
    seen = summary(sent, seconds)
    print(f"  {name}: {seen.describe()}", flush=True)
    return seen


def measure(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    """Burst the baseline, then PineLab, then wait for PineLab to execute every alert."""
    if not 0 < args.alerts <= 20_000 or not 0 < args.accounts <= args.strategies <= 2000:
        raise SystemExit("--alerts in (0, 20000], 0 < --accounts <= --strategies <= 2000")
    tag = str(os.getpid())
    server = baseline(args.shared, workdir)
    print("\nbaseline (shared/bench/baseline_app.py, uvicorn, 1 process)")
    with running(server):
        server.start()
        sent, seconds = send_burst(server.url, ["bench"], args.alerts, args.connections, tag)
        floor = report.data["baseline"] = show("baseline", sent, seconds)

    pinelab = PineLab.fresh(workdir, "pinelab", settings_from(args))
    server = pinelab.server(worker=True)
    print(
        f"\nPineLab (pinelab serve, SQLite, worker on; {args.strategies} strategies on "
        f"{args.accounts} paper accounts)"
    )
    with running(server):
        server.start("/health/live")
        api = Api(server, pinelab)
        tokens = api.paper_strategies(args.strategies, args.accounts)
        api.close()
        before = last_signal_id(pinelab.store)
        sent, seconds = send_burst(server.url, tokens, args.alerts, args.connections, tag)
        seen = report.data["pinelab"] = show("PineLab", sent, seconds)
        waited = wait_until_executed(pinelab.store, before, args.alerts, args.deadline)
        done = execution(pinelab.store, before)
        server.check_alive()
    span = done.span_s()
    print(
        f"  PineLab: signals {done.by_status}, {done.orders} orders, {done.fills} fills; "
        f"first arrival to last execution {span or 0:.2f} s (waited {waited:.1f} s after the burst)"
    )
    report.data["execution"] = done
    accepted = seen.accepted
    if accepted != args.alerts:
        report.problems.append(f"{args.alerts - accepted} alerts not answered 202: {seen.codes}")
    report.problems.extend(done.problems(accepted))
    slowest, base_slowest = seen.slowest_ms / 1000, floor.slowest_ms / 1000
    report.target(
        "every alert answered 2xx", f"{accepted} of {args.alerts}", accepted == args.alerts
    )
    report.target(
        f"slowest answer <= {TARGET_SLOWEST_S:g} s",
        f"{slowest:.3f} s (baseline {base_slowest:.3f} s)",
        slowest <= TARGET_SLOWEST_S,
    )
    report.target(
        f"all executed within {TARGET_EXECUTED_S:g} s of the first arrival",
        f"{span:.2f} s ({done.executed} executed)" if span is not None else "none executed",
        span is not None and span <= TARGET_EXECUTED_S and done.executed == args.alerts,
    )


def main(argv: Sequence[str] | None = None) -> Report:
    """Run the scenario and return its report."""
    return run_scenario("burst.py", options(), argv, measure)


if __name__ == "__main__":
    sys.exit(1 if main().problems else 0)
