"""`make bench`: every scenario in turn, each with the baseline in the same run, then a summary.

    .venv/bin/python bench/all.py [--only ingest,burst,pipeline,latency,scale]

The scenarios run with their defaults (see each module and bench/README.md); scale needs
PostgreSQL on 127.0.0.1:5432 and is skipped, saying so, without it. A scenario that breaks is
reported and the next one runs. Exit status 1 when any run had errors or broke.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import burst
import ingest
import latency
import pipeline
import scale
from _common import Report, exit_code, find_shared, postgres_reachable

SCENARIOS: dict[str, Callable[[Sequence[str]], Report]] = {
    "ingest": ingest.main,
    "burst": burst.main,
    "pipeline": pipeline.main,
    "latency": latency.main,
    "scale": scale.main,
}
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def run(name: str, shared: Path) -> Report | None:
    """Run one scenario; a broken one becomes a report with the error, a skipped one None."""
    if name == "scale" and not postgres_reachable(POSTGRES):
        print(f"\n=== scale: skipped, no PostgreSQL answers at {POSTGRES} ===")
        return None
    try:
        return SCENARIOS[name](["--shared", str(shared)])
    except Exception as exc:
        traceback.print_exc()
        return Report(name, command=f".venv/bin/python bench/{name}.py", problems=[repr(exc)])


def print_summary(reports: list[Report], seconds: float) -> None:
    """Print every target of every scenario, then the commands that repeat each run."""
    print(f"\n=== summary ({seconds / 60:.1f} min) ===")
    for report in reports:
        for target in report.targets:
            print(
                f"  {report.scenario:<9} [{report.verdict(target)}] {target.label}: {target.figure}"
            )
        if report.problems:
            count, first = len(report.problems), report.problems[0]
            print(f"  {report.scenario:<9} !!! {count} problem(s), the first: {first}")
    print("\nrepeat each:")
    for report in reports:
        print(f"  {report.command}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios and print the summary."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run, in order")
    options.add_argument("--shared", type=Path, default=find_shared(), help="the shared folder")
    options.add_argument("--json", type=Path, help="also write every report to this file")
    args = options.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        options.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    started = time.monotonic()
    reports = [report for name in names if (report := run(name, args.shared)) is not None]
    print_summary(reports, time.monotonic() - started)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2, default=str))
    return exit_code(*reports)


if __name__ == "__main__":
    sys.exit(main())
