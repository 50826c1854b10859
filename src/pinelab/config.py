"""Settings: every PINELAB_* variable, typed and checked, read from the environment or `.env`."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

import structlog
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    webhook_rate_per_minute: int = Field(600, ge=0)
    webhook_bad_token_rate_per_minute: int = Field(30, ge=0)
    tradingview_ips_only: bool = False
    trusted_proxies: list[str] = Field(default_factory=list)
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
    cors_origins: list[str] = Field(default_factory=list)
    metrics_token: str = Field("", repr=False)
    metrics_port: int | None = Field(None, ge=1, le=65535)
    allow_sqlite_in_production: bool = False
    shutdown_timeout_seconds: float = Field(20.0, gt=0, le=600)
    health_timeout_seconds: float = Field(2.0, gt=0, le=30)
    health_cache_seconds: float = Field(2.0, ge=0, le=60)
    check_config_on_start: bool = True

    # The credential vault (docs/security.md): one key source, plus old keys for rotation.
    encryption_key: str = Field("", repr=False)
    encryption_key_file: Path | None = None
    encryption_passphrase: str = Field("", repr=False)
    encryption_salt: str = ""
    encryption_old_keys: str = Field("", repr=False)
    encryption_old_passphrase: str = Field("", repr=False)
    # Where each broker kind is reached instead of its public URL ("alpaca", "ccxt:<id>").
    broker_base_urls: dict[str, str] = Field(default_factory=dict)

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
