"""`pinelab check-config` and `pinelab serve` on a broken .env: every problem, at once; the
connection checks name what they cannot reach."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pinelab.config import Settings
from pinelab.ops.checks import connection_problems

BROKEN_ENV = """\
PINELAB_ENV=production
PINELAB_PORT=eighty
PINELAB_DATABASE_URL=postgresql://app:hunter2@127.0.0.1:1/pinelab
PINELAB_SECRET_KEY=short
PINELAB_CORS_ORIGINS=["*"]
PINELAB_REDIS_URL=redis://127.0.0.1:1/0
PINELAB_ENCRYPTION_KEY=not-a-key
PINELAB_WORKER_CONCURENCY=2
"""

EXPECTED = [
    "PINELAB_PORT",
    "PINELAB_DATABASE_URL",
    "PINELAB_SECRET_KEY",
    "PINELAB_CORS_ORIGINS",
    "PINELAB_REDIS_URL",
    "PINELAB_ENCRYPTION_KEY",
    "PINELAB_PUBLIC_URL",
    "PINELAB_METRICS_TOKEN",
]


def run_pinelab(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINELAB_")}
    return subprocess.run(
        [sys.executable, "-m", "pinelab", *args],
        cwd=directory,
        env={**env, "PINELAB_DATA_DIR": str(directory)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_prints_every_problem_of_a_broken_env_file_and_exits_1(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(BROKEN_ENV)
    result = run_pinelab(tmp_path, "check-config")
    assert result.returncode == 1, result.stdout + result.stderr
    for variable in EXPECTED:
        assert f"error: {variable}:" in result.stdout, f"{variable} missing:\n{result.stdout}"
    assert "did you mean PINELAB_WORKER_CONCURRENCY?" in result.stdout
    assert result.stdout.count("    fix: ") >= len(EXPECTED)
    assert "hunter2" not in result.stdout + result.stderr


def test_serve_refuses_to_start_with_the_same_list(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(BROKEN_ENV)
    result = run_pinelab(tmp_path, "serve")
    assert result.returncode == 1
    for variable in EXPECTED:
        assert f"error: {variable}:" in result.stderr


def test_a_sound_development_env_file_passes(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PINELAB_ENV=development\nPINELAB_PORT=8123\n")
    result = run_pinelab(tmp_path, "check-config")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "configuration OK"


async def test_unreachable_redis_and_smtp_are_reported(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        redis_url="redis://127.0.0.1:1/0",
        smtp_host="127.0.0.1",
        smtp_port=1,
    )
    problems = await connection_problems(settings, within=3)
    assert {p.variable for p in problems} == {"PINELAB_REDIS_URL", "PINELAB_SMTP_HOST"}


def test_list_settings_are_read_as_comma_separated_values(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "PINELAB_TRUSTED_PROXIES=10.0.0.1, 10.0.0.2\n"
        "PINELAB_CORS_ORIGINS=https://a.example,https://b.example\n"
        "PINELAB_BROKER_BASE_URLS=alpaca=https://alpaca-gw.internal\n"
    )
    result = run_pinelab(tmp_path, "check-config", "--offline")
    assert "Traceback" not in result.stderr, result.stderr
    for name in ("TRUSTED_PROXIES", "CORS_ORIGINS", "BROKER_BASE_URLS"):
        assert f"PINELAB_{name}" not in result.stdout, result.stdout
    settings = Settings(_env_file=tmp_path / ".env")  # type: ignore[call-arg]
    assert settings.trusted_proxies == ["10.0.0.1", "10.0.0.2"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.broker_base_urls == {"alpaca": "https://alpaca-gw.internal"}


def test_a_bad_setting_is_one_clear_line_for_every_command_never_a_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(
        'PINELAB_BROKER_BASE_URLS={"alpaca": \nPINELAB_PORT=eighty\n'
        "PINELAB_DATABASE_URL=postgresql+asyncpg://app:hunter2@127.0.0.1:1/pinelab\n"
    )
    checked = run_pinelab(tmp_path, "check-config", "--offline")
    migrated = run_pinelab(tmp_path, "migrate")
    served = run_pinelab(tmp_path, "serve")
    assert checked.returncode == 1
    assert "error: PINELAB_BROKER_BASE_URLS: " in checked.stdout
    assert "error: PINELAB_PORT: " in checked.stdout
    assert migrated.returncode == 2
    assert migrated.stderr.splitlines()[:2] == [
        "error: PINELAB_PORT: Input should be a valid integer, unable to parse string as an "
        "integer",
        "error: PINELAB_BROKER_BASE_URLS: Value error, is not a JSON object, nor "
        "comma-separated values",
    ]
    assert served.returncode == 1
    for result in (checked, migrated, served):
        assert "Traceback" not in result.stdout + result.stderr
        assert "hunter2" not in result.stdout + result.stderr
