"""Configuration checks: every problem of the settings at once, each naming its variable and fix.

`pinelab check-config` prints them and `pinelab serve` refuses to start on any. Three passes:
the types (pydantic), the rules between settings (production refuses development defaults),
then the connections (database, Redis, SMTP) under a timeout.
"""

from __future__ import annotations

import asyncio
import difflib
import ipaddress
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import AliasChoices, ValidationError
from pydantic_settings import SettingsError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pinelab.config import Settings
from pinelab.logging import redact_text

PREFIX: Final = "PINELAB_"
ASYNC_DRIVERS: Final = frozenset({"sqlite+aiosqlite", "postgresql+asyncpg"})
MIN_SECRET_KEY_CHARS: Final = 32
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?")
_VARIABLE = re.compile(r"PINELAB_[A-Z_]+")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration."""

    variable: str
    message: str
    fix: str
    severity: Literal["error", "warning"] = "error"

    def render(self) -> str:
        """Return the problem as two lines for a terminal."""
        return f"{self.severity}: {self.variable}: {self.message}\n    fix: {self.fix}"


def variable(field: str) -> str:
    """Return the environment variable of a settings field (its first name when it has aliases)."""
    return variables(field)[0]


def variables(field: str) -> list[str]:
    """Return every environment variable that sets a field: its name, then the older ones."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"{PREFIX}{field.upper()}"]


def load_settings(env_file: Path | None) -> tuple[Settings, list[Problem]]:
    """Read the settings; each invalid value is reported and replaced by its default."""
    try:
        return Settings(_env_file=env_file), []
    except SettingsError as exc:  # a source could not be read at all: nothing to keep
        problem = Problem("settings", redact_text(str(exc))[:300], "correct the value it names")
        return Settings.model_construct(), [problem]
    except ValidationError as exc:
        problems = [_type_problem(error) for error in exc.errors()]
        defaults = {
            str(error["loc"][0]): Settings.model_fields[str(error["loc"][0])].get_default(
                call_default_factory=True
            )
            for error in exc.errors()
            if error["loc"] and str(error["loc"][0]) in Settings.model_fields
        }
        return Settings(_env_file=env_file, **defaults), problems


def _type_problem(error: Any) -> Problem:
    field = str(error["loc"][0]) if error["loc"] else "settings"
    default = Settings.model_fields[field].default if field in Settings.model_fields else None
    hint = f" (default {default!r})" if default not in (None, "") else ""
    return Problem(
        variable(field),
        str(error["msg"]),
        f"set {variable(field)} to a valid value, or remove it to use the default{hint}",
    )


def static_problems(settings: Settings) -> list[Problem]:
    """Check the rules between settings, and what production refuses; no network."""
    problems: list[Problem] = []
    for check in (
        _database_url,
        _secrets,
        _urls,
        _cors,
        _smtp,
        _network,
        _production,
        _encryption,
    ):
        problems.extend(check(settings))
    return problems


def _database_url(settings: Settings) -> Iterator[Problem]:
    if not settings.database_url:
        return
    name = variable("database_url")
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        yield Problem(name, "is not a database URL", "use postgresql+asyncpg://USER:PASS@HOST/DB")
        return
    if url.drivername not in ASYNC_DRIVERS:
        yield Problem(
            name,
            f"driver {url.drivername!r} is not supported (PineLab is async)",
            "use postgresql+asyncpg://USER:PASS@HOST/DB or sqlite+aiosqlite:///PATH",
        )


def _secrets(settings: Settings) -> Iterator[Problem]:
    if settings.secret_key and len(settings.secret_key) < MIN_SECRET_KEY_CHARS:
        yield Problem(
            variable("secret_key"),
            f"is shorter than {MIN_SECRET_KEY_CHARS} characters",
            'generate one: python -c "import secrets; print(secrets.token_urlsafe(48))"',
        )
    if settings.smtp_username and not settings.smtp_password:
        yield Problem(
            variable("smtp_password"),
            "is empty while PINELAB_SMTP_USERNAME is set",
            "set the SMTP password, or remove PINELAB_SMTP_USERNAME for an open relay",
        )


def _urls(settings: Settings) -> Iterator[Problem]:
    if settings.public_url and not _is_http_url(settings.public_url):
        yield Problem(
            variable("public_url"),
            "is not an http(s) URL",
            "set the address TradingView reaches, e.g. https://pinelab.example.com",
        )
    if settings.redis_url and urlsplit(settings.redis_url).scheme not in ("redis", "rediss"):
        yield Problem(
            variable("redis_url"),
            "is not a redis:// or rediss:// URL",
            "use redis://HOST:6379/0 (rediss:// for TLS)",
        )
    for kind, url in getattr(settings, "broker_base_urls", {}).items():
        if not (kind == "alpaca" or kind.startswith("ccxt:")) or not _is_http_url(url):
            yield Problem(
                variable("broker_base_urls"),
                f"entry {kind!r} must map 'alpaca' or 'ccxt:<exchange>' to an http(s) URL",
                'use JSON, e.g. {"alpaca": "https://paper-api.alpaca.markets"}',
            )


def _cors(settings: Settings) -> Iterator[Problem]:
    for origin in settings.cors_origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            yield Problem(
                variable("cors_origins"),
                f"{origin!r} is not an origin (scheme://host[:port], no path or trailing slash)",
                'use a JSON list, e.g. ["https://dashboard.example.com"]',
            )


def _smtp(settings: Settings) -> Iterator[Problem]:
    if settings.smtp_host and "@" not in parseaddr(settings.smtp_from)[1]:
        yield Problem(
            variable("smtp_from"),
            "is not an email address",
            'use "PineLab <alerts@example.com>"',
        )


def _network(settings: Settings) -> Iterator[Problem]:
    for proxy in settings.trusted_proxies:
        try:
            ipaddress.ip_address(proxy)
        except ValueError:
            yield Problem(
                variable("trusted_proxies"),
                f"{proxy!r} is not an IP address",
                'use a JSON list of addresses, e.g. ["10.0.0.2"]',
            )
    if settings.metrics_port is not None and settings.metrics_port == settings.port:
        yield Problem(
            variable("metrics_port"),
            "is the API's port",
            "choose another port, or unset it to serve /metrics on the API port",
        )
    if settings.retry_max_delay_seconds < settings.retry_base_delay_seconds:
        yield Problem(
            variable("retry_max_delay_seconds"),
            "is below PINELAB_RETRY_BASE_DELAY_SECONDS",
            "raise the cap above the first backoff step",
        )


def _production(settings: Settings) -> Iterator[Problem]:
    if settings.env != "production":
        return
    if not settings.secret_key:
        yield Problem(
            variable("secret_key"),
            "is not set: production refuses the key generated into the data dir",
            'set it: python -c "import secrets; print(secrets.token_urlsafe(48))"',
        )
    if settings.is_sqlite and not settings.allow_sqlite_in_production:
        yield Problem(
            variable("database_url"),
            "is SQLite, which production refuses unless allowed",
            "use postgresql+asyncpg://..., or set PINELAB_ALLOW_SQLITE_IN_PRODUCTION=true",
        )
    if "*" in settings.cors_origins:
        yield Problem(
            variable("cors_origins"),
            "allows every origin (*)",
            "list the dashboard's origins, e.g. ['https://dashboard.example.com']",
        )
    if not settings.public_url:
        yield Problem(
            variable("public_url"),
            "is not set: webhook URLs would point at the bind address",
            "set the public https address, e.g. https://pinelab.example.com",
        )
    if not settings.metrics_token and settings.metrics_port is None:
        yield Problem(
            variable("metrics_token"),
            "is not set and /metrics would be public",
            "set PINELAB_METRICS_TOKEN, or PINELAB_METRICS_PORT to serve it on a private port",
        )


def _encryption(settings: Settings) -> Iterator[Problem]:
    sources = ("encryption_key", "encryption_key_file", "encryption_passphrase")
    if not hasattr(settings, "encryption_key"):
        return
    configured = any(getattr(settings, name) for name in (*sources[:2], "encryption_old_keys"))
    if not configured and settings.env != "production":
        return  # development generates its key file; a passphrase's salt file is made on use
    from pinelab.vault.exceptions import KeyConfigurationError
    from pinelab.vault.keys import load_keyring

    try:
        load_keyring(settings)
    except KeyConfigurationError as exc:
        named = _VARIABLE.search(exc.message)
        name = named.group(0) if named else variable("encryption_key")
        yield Problem(
            name,
            exc.message.removeprefix(name).strip(),
            "make a key with `openssl rand -base64 32` and set PINELAB_ENCRYPTION_KEY",
        )


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def unknown_variables(env_file: Path | None) -> list[Problem]:
    """Warn about PINELAB_* names in the .env file that are no setting (likely typos)."""
    if env_file is None or not env_file.is_file():
        return []
    known = [name for field in Settings.model_fields for name in variables(field)]
    problems = []
    for name in dotenv_values(env_file):
        upper = name.upper()
        if upper.startswith(PREFIX) and upper not in known:
            close = difflib.get_close_matches(upper, known, n=1)
            problems.append(
                Problem(
                    upper,
                    "is not a PineLab setting and is ignored",
                    f"did you mean {close[0]}?" if close else "remove it",
                    severity="warning",
                )
            )
    return problems


async def connection_problems(
    settings: Settings, *, within: float = 5.0, skip: frozenset[str] = frozenset()
) -> list[Problem]:
    """Try the database, Redis and SMTP (when configured and well-formed) under a timeout."""
    from pinelab.ops.health import ping_redis, probe_smtp

    attempts: list[tuple[str, Callable[[], Awaitable[None]], str]] = [
        ("database_url", lambda: _connect_database(settings), "check host, port, user, password")
    ]
    if settings.redis_url:
        attempts.append(
            ("redis_url", lambda: ping_redis(settings.redis_url), "check that Redis runs there")
        )
    if settings.smtp_host:
        attempts.append(
            (
                "smtp_host",
                lambda: probe_smtp(settings, connect_seconds=within),
                "check PINELAB_SMTP_HOST/PORT/STARTTLS/USERNAME/PASSWORD",
            )
        )
    outcomes = await asyncio.gather(
        *(
            _attempt(name, call, fix, within)
            for name, call, fix in attempts
            if variable(name) not in skip
        )
    )
    return [problem for problem in outcomes if problem is not None]


async def _attempt(
    field: str, call: Callable[[], Awaitable[None]], fix: str, within: float
) -> Problem | None:
    try:
        await asyncio.wait_for(call(), timeout=within)
    except TimeoutError:
        return Problem(variable(field), f"no answer within {within:g}s", fix)
    except Exception as exc:
        message = redact_text(f"cannot connect: {type(exc).__name__}: {exc}")[:300]
        return Problem(variable(field), message, fix)
    return None


async def _connect_database(settings: Settings) -> None:
    from pinelab.db import Database

    if settings.is_sqlite:
        _check_sqlite_dir(settings)
        return
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
    finally:
        await db.dispose()


def _check_sqlite_dir(settings: Settings) -> None:
    database = make_url(settings.resolved_database_url).database or ""
    folder = Path(database).parent if database not in ("", ":memory:") else settings.data_dir
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not os.access(existing, os.W_OK):
        raise PermissionError(f"{folder} is not writable")


def check_all(env_file: Path | None, *, connect: bool = True) -> tuple[Settings, list[Problem]]:
    """Return the settings and every problem found: types, rules, connections, unknown names."""
    settings, problems = load_settings(env_file)
    problems.extend(static_problems(settings))
    if connect:
        broken = frozenset(p.variable for p in problems)
        problems.extend(asyncio.run(connection_problems(settings, skip=broken)))
    problems.extend(unknown_variables(env_file))
    return settings, problems


def has_errors(problems: list[Problem]) -> bool:
    """Tell whether any problem is an error (warnings do not stop anything)."""
    return any(problem.severity == "error" for problem in problems)


def render(problems: list[Problem]) -> str:
    """Return the report `pinelab check-config` prints."""
    if not problems:
        return "configuration OK"
    errors = sum(1 for p in problems if p.severity == "error")
    lines = [f"{errors} configuration error(s), {len(problems) - errors} warning(s):"]
    lines.extend(problem.render() for problem in problems)
    return "\n".join(lines)
