"""Settings: every PINELAB_* variable, typed and checked, read from the environment or `.env`."""

from __future__ import annotations

import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import structlog
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = structlog.get_logger(__name__)

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


class Settings(BaseSettings):
    """PineLab's configuration; see docs/configuration.md for every variable."""

    model_config = SettingsConfigDict(
        env_prefix="PINELAB_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
        populate_by_name=True,  # settings with aliases are still set by name in code and tests
    )

    env: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Path("./data")
    database_url: str = ""
    public_url: str = ""
    secret_key: str = Field("", repr=False)

    access_token_ttl_seconds: int = Field(900, ge=60, le=86400)
    refresh_token_ttl_seconds: int = Field(30 * 86400, ge=3600)

    webhook_max_body_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    # What any client may send (docs/security.md, "Hostile input").
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_header_bytes: int = Field(16 * 1024, ge=4096, le=1024 * 1024)
    request_timeout_seconds: float = Field(30.0, gt=0, le=600)
    keep_alive_timeout_seconds: int = Field(5, ge=1, le=300)
    webhook_rate_per_minute: int = Field(600, ge=0)
    webhook_bad_token_rate_per_minute: int = Field(30, ge=0)
    tradingview_ips_only: bool = False
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "FULL"
    db_pool_size: int = Field(10, ge=1, le=200)

    worker_enabled: bool = True
    worker_concurrency: int = Field(4, ge=1, le=64)
    job_lease_seconds: int = Field(30, ge=5, le=3600)
    max_retry_attempts: int = Field(5, ge=1, le=50)
    retry_base_delay_seconds: float = Field(1.0, gt=0, le=600)
    retry_max_delay_seconds: float = Field(300.0, gt=0, le=86400)

    smtp_host: str = ""
    smtp_port: int = Field(587, ge=1, le=65535)
    # The seed's names first; the names of earlier releases still work.
    smtp_username: str = Field(
        "", validation_alias=AliasChoices("PINELAB_SMTP_USER", "PINELAB_SMTP_USERNAME")
    )
    smtp_password: str = Field("", repr=False)
    smtp_from: str = Field(
        "PineLab <pinelab@localhost>",
        validation_alias=AliasChoices("PINELAB_FROM_EMAIL", "PINELAB_SMTP_FROM"),
    )
    smtp_starttls: bool = True

    reconciliation_interval_minutes: float = Field(5, gt=0)
    reconciliation_window_hours: float = Field(24, gt=0)
    reconciliation_retention_days: float = Field(30, gt=0)

    redis_url: str = Field("", repr=False)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metrics_token: str = Field("", repr=False)
    metrics_port: int | None = Field(None, ge=1, le=65535)
    allow_sqlite_in_production: bool = False
    shutdown_timeout_seconds: float = Field(20.0, gt=0, le=600)
    health_timeout_seconds: float = Field(2.0, gt=0, le=30)
    health_cache_seconds: float = Field(2.0, ge=0, le=60)
    broker_health_cache_seconds: float = Field(60.0, ge=0, le=3600)
    check_config_on_start: bool = True

    # The credential vault (docs/security.md): one key source, plus old keys for rotation.
    encryption_key: str = Field("", repr=False)
    encryption_key_file: Path | None = None
    encryption_passphrase: str = Field("", repr=False)
    encryption_salt: str = ""
    encryption_old_keys: str = Field("", repr=False)
    encryption_old_passphrase: str = Field("", repr=False)
    # Where each broker kind is reached instead of its public URL ("alpaca", "ccxt:<id>").
    broker_base_urls: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    # Email security (docs/configuration.md): "auto" is implicit TLS on port 465, else STARTTLS
    # unless PINELAB_SMTP_STARTTLS=false; a private CA's bundle verifies an internal relay.
    smtp_tls: Literal["auto", "starttls", "implicit", "none"] = "auto"
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(30.0, gt=0, le=300)
    # Accounts (docs/security.md): how long mailed one-time tokens live.
    email_verification_ttl_hours: float = Field(48.0, gt=0, le=24 * 30)
    password_reset_ttl_hours: float = Field(24.0, gt=0, le=24 * 7)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    # Rate limits (docs/security.md), each per minute; 0 turns one off. Counted in Redis when
    # PINELAB_REDIS_URL is set (shared by every process), in memory otherwise.
    rate_limit_ip_per_minute: int = Field(120, ge=0)
    rate_limit_auth_ip_per_minute: int = Field(30, ge=0)
    rate_limit_login_account_per_minute: int = Field(10, ge=0)
    rate_limit_user_per_minute: int = Field(600, ge=0)
    rate_limit_two_factor_per_minute: int = Field(5, ge=0)
    rate_limit_recovery_ip_per_minute: int = Field(10, ge=0)
    rate_limit_account_email_per_minute: int = Field(1, ge=0)
    # Two-factor authentication (docs/security.md).
    require_2fa_for_admins: bool = False
    two_factor_challenge_ttl_seconds: int = Field(300, ge=30, le=1800)
    two_factor_issuer: str = Field("PineLab", min_length=1, max_length=64)

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _list(cls, value: object) -> object:
        """Read a list written as JSON (`["a", "b"]`) or as comma-separated values (`a, b`)."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            return _json(value, "a JSON list")
        return [item.strip() for item in value.split(",") if item.strip()]

    @field_validator("broker_base_urls", mode="before")
    @classmethod
    def _map(cls, value: object) -> object:
        """Read a map written as JSON (`{"k": "v"}`) or as comma-separated `k=v` pairs."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("{"):
            return _json(value, "a JSON object")
        pairs = [item.strip() for item in value.split(",") if item.strip()]
        if any("=" not in pair for pair in pairs):
            raise ValueError('write it as JSON ({"alpaca": "https://…"}) or as kind=URL pairs')
        split = (pair.partition("=") for pair in pairs)
        return {kind.strip(): url.strip() for kind, _, url in split}

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @cached_property
    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'pinelab.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        """Tell whether the database is SQLite."""
        return self.resolved_database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        """Return the public base URL used in webhook URLs and emails."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def smtp_tls_mode(self) -> Literal["starttls", "implicit", "none"]:
        """Return how the SMTP connection is secured: STARTTLS, implicit TLS or not at all."""
        if self.smtp_tls != "auto":
            return self.smtp_tls
        if self.smtp_port == 465:
            return "implicit"
        return "starttls" if self.smtp_starttls else "none"

    def resolved_secret_key(self) -> str:
        """Return the signing key, generating one into the data dir on first run."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / SECRET_KEY_FILE
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        log.warning(
            "generated_secret_key",
            path=str(path),
            hint="set PINELAB_SECRET_KEY in production; this key lives only in the data dir",
        )
        return key


def _json(value: str, what: str) -> object:
    try:
        return json.loads(value)
    except ValueError:
        raise ValueError(f"is not {what}, nor comma-separated values") from None
