"""Run the real `pinelab` command in a subprocess against a data dir of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_pinelab(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m pinelab ARGS` with its data dir and SQLite database in `data_dir`."""
    variables = {
        **os.environ,
        "PINELAB_DATA_DIR": str(data_dir),
        "PINELAB_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'cli.db'}",
        "PINELAB_ENV": "test",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "pinelab", *args],
        cwd=data_dir,
        env=variables,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
