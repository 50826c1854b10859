"""Run the real `pinelab` command in a subprocess against a data dir of the test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pinelab.config import Settings

CLI_DATABASE = "cli.db"


def cli_database_url(data_dir: Path) -> str:
    """Return the URL of the SQLite database the command uses in `data_dir`."""
    return f"sqlite+aiosqlite:///{data_dir / CLI_DATABASE}"


def migrated_template(template_dir: Path) -> Path:
    """Migrate a database with the real command once; return its file, for copies per test."""
    migrated = run_pinelab(template_dir, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    return template_dir / CLI_DATABASE


def data_dir_from(template: Path, data_dir: Path) -> Path:
    """Give `data_dir` a copy of the migrated template database; return `data_dir`."""
    shutil.copy(template, data_dir / CLI_DATABASE)
    return data_dir


def cli_settings(data_dir: Path) -> Settings:
    """Return the settings the command runs with in `data_dir`, for seeding from the test."""
    return Settings(
        _env_file=None,
        env="test",
        data_dir=data_dir,
        database_url=cli_database_url(data_dir),
    )


def cli_environment(data_dir: Path, **env: str) -> dict[str, str]:
    """Return the environment of a command with its data dir and SQLite database in `data_dir`."""
    return {
        **os.environ,
        "PINELAB_DATA_DIR": str(data_dir),
        "PINELAB_DATABASE_URL": cli_database_url(data_dir),
        "PINELAB_ENV": "test",
        **env,
    }


def run_pinelab(
    data_dir: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m pinelab ARGS` with its data dir and SQLite database in `data_dir`."""
    return subprocess.run(
        [sys.executable, "-m", "pinelab", *args],
        cwd=data_dir,
        env=cli_environment(data_dir, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
