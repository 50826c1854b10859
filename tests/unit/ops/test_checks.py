"""Configuration checks: every problem at once, each naming its variable and a fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pinelab.config import Settings
from pinelab.ops.checks import check_all, has_errors, load_settings, render, static_problems

GOOD_KEY = "k" * 48


def _env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _no_pinelab_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PINELAB_"):
            monkeypatch.delenv(name)


def test_every_type_error_is_reported_and_the_rest_still_checked(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        "PINELAB_PORT=eighty\nPINELAB_WORKER_CONCURRENCY=0\n"
        "PINELAB_LOG_LEVEL=LOUD\nPINELAB_SECRET_KEY=short\n",
    )
    settings, problems = load_settings(env)
    problems += static_problems(settings)
    named = {p.variable for p in problems}
    assert {
        "PINELAB_PORT",
        "PINELAB_WORKER_CONCURRENCY",
        "PINELAB_LOG_LEVEL",
        "PINELAB_SECRET_KEY",
    } <= named
    assert settings.port == 8000
    assert all(p.fix for p in problems)


def test_production_refuses_development_defaults() -> None:
    settings = Settings(_env_file=None, env="production", cors_origins=["*"])  # type: ignore[call-arg]
    named = {p.variable for p in static_problems(settings)}
    assert {
        "PINELAB_SECRET_KEY",
        "PINELAB_DATABASE_URL",
        "PINELAB_CORS_ORIGINS",
        "PINELAB_PUBLIC_URL",
        "PINELAB_METRICS_TOKEN",
        "PINELAB_ENCRYPTION_KEY",
    } <= named


def test_a_complete_production_configuration_has_no_problem() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="production",
        secret_key=GOOD_KEY,
        database_url="postgresql+asyncpg://app:pw@db/pinelab",
        public_url="https://pinelab.example.com",
        cors_origins=["https://dashboard.example.com"],
        metrics_token="m" * 32,
        encryption_key="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    )
    assert static_problems(settings) == []


def test_sqlite_in_production_is_allowed_only_when_said_so() -> None:
    allowed = Settings(  # type: ignore[call-arg]
        _env_file=None, env="production", allow_sqlite_in_production=True
    )
    assert "PINELAB_DATABASE_URL" not in {p.variable for p in static_problems(allowed)}


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("database_url", "postgresql://u:p@h/db", "PINELAB_DATABASE_URL"),
        ("database_url", "not a url", "PINELAB_DATABASE_URL"),
        ("cors_origins", ["https://a.example.com/"], "PINELAB_CORS_ORIGINS"),
        ("redis_url", "http://cache:6379", "PINELAB_REDIS_URL"),
        ("trusted_proxies", ["proxy.local"], "PINELAB_TRUSTED_PROXIES"),
        ("public_url", "pinelab.example.com", "PINELAB_PUBLIC_URL"),
        ("encryption_key", "not-base64!", "PINELAB_ENCRYPTION_KEY"),
        ("broker_base_urls", {"alpaca": "ftp://x"}, "PINELAB_BROKER_BASE_URLS"),
    ],
)
def test_malformed_values_are_named(field: str, value: object, variable: str) -> None:
    settings = Settings(_env_file=None, **{field: value})  # type: ignore[call-arg]
    problems = static_problems(settings)
    assert variable in {p.variable for p in problems}, render(problems)


def test_unknown_names_in_the_env_file_are_warnings_with_a_suggestion(tmp_path: Path) -> None:
    env = _env(tmp_path, f"PINELAB_DATABSE_URL=x\nPINELAB_SECRET_KEY={GOOD_KEY}\n")
    _, problems = check_all(env, connect=False)
    [typo] = problems
    assert typo.severity == "warning"
    assert "PINELAB_DATABASE_URL" in typo.fix
    assert not has_errors(problems)


def test_the_smtp_names_of_the_seed_and_of_earlier_releases_are_known(tmp_path: Path) -> None:
    names = ["PINELAB_SMTP_USER", "PINELAB_SMTP_USERNAME"]
    names += ["PINELAB_FROM_EMAIL", "PINELAB_SMTP_FROM"]
    lines = "".join(f"{name}=ops@example.net\n" for name in names)
    env = _env(tmp_path, f"{lines}PINELAB_SECRET_KEY={GOOD_KEY}\nPINELAB_SMTP_PASSWORD=x-y-z\n")
    _, problems = check_all(env, connect=False)
    assert [p.variable for p in problems if p.severity == "warning"] == [], render(problems)
