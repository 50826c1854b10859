"""Readiness: each dependency checked under a timeout, with its latency, cached briefly.

Required dependencies (the database, and Redis when configured) make the process unready (503)
when down; SMTP, when configured, only degrades it. That is all the public `/health/ready`
checks: it never reaches out to a broker, so an anonymous caller cannot make PineLab open
connections to venues. Broker reachability (each broker kind in use, at its configured base URL
when `PINELAB_BROKER_BASE_URLS` names one) is for admins (`/api/v1/admin/health`): a broker away
only degrades the process, since an alert is still stored and its job retries later. Concurrent
probes share one run, and a result is reused for `health_cache_seconds` (brokers:
`broker_health_cache_seconds`), so a tight probe loop can hammer neither us nor a broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, text

from pinelab.clock import now
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.logging import redact_text

Status = Literal["ok", "degraded", "unavailable"]
Probe = Callable[[], Awaitable[None]]
BrokerProbe = Callable[[str, bool], Awaitable[None]]

ALPACA_URLS: Final = {True: "https://paper-api.alpaca.markets", False: "https://api.alpaca.markets"}


@dataclass(frozen=True)
class CheckResult:
    """How one dependency answered."""

    name: str
    ok: bool
    required: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self, *, detail: bool) -> dict[str, Any]:
        """Return the check for a health body; only `detail` shows the error message."""
        body: dict[str, Any] = {
            "ok": self.ok,
            "required": self.required,
            "latency_ms": self.latency_ms,
        }
        if self.error is not None:
            body["error"] = self.error if detail else self.error.split(":", 1)[0]
        return body


@dataclass(frozen=True)
class Readiness:
    """Every check of one run and the verdict."""

    checks: list[CheckResult]
    checked_at: str = field(default_factory=lambda: now().isoformat())

    @property
    def status(self) -> Status:
        """Return unavailable when a required check failed, degraded when an optional one did."""
        if any(not c.ok and c.required for c in self.checks):
            return "unavailable"
        return "degraded" if any(not c.ok for c in self.checks) else "ok"

    def as_dict(self, *, detail: bool = False) -> dict[str, Any]:
        """Return the health body."""
        return {
            "status": self.status,
            "checked_at": self.checked_at,
            "checks": {c.name: c.as_dict(detail=detail) for c in self.checks},
        }


async def run_check(name: str, probe: Probe, *, required: bool, within: float) -> CheckResult:
    """Run one probe under a timeout; a failure is reported, never raised."""
    started = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(probe(), timeout=within)
    except TimeoutError:
        error = f"Timeout: no answer within {within:g}s"
    except Exception as exc:
        error = redact_text(f"{type(exc).__name__}: {exc}")[:300]
    latency = round((time.perf_counter() - started) * 1000, 2)
    return CheckResult(name, error is None, required, latency, error)


class _Shared:
    """One run at a time of a set of checks, its result reused for `ttl()` seconds."""

    def __init__(self, run: Callable[[], Awaitable[Readiness]], ttl: Callable[[], float]) -> None:
        self._run = run
        self._ttl = ttl
        self._cached: tuple[float, Readiness] | None = None
        self._running: asyncio.Future[Readiness] | None = None

    async def get(self) -> Readiness:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self._ttl():
            return cached[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._running)

    async def _refresh(self) -> Readiness:
        result = await self._run()
        self._cached = (time.monotonic(), result)
        return result


class HealthChecker:
    """Checks the dependencies of one process; results are cached for a moment.

    `readiness` (public) checks only our own dependencies; `broker_reachability` (admins) reaches
    each broker kind in use, at its configured base URL when one is set, cached much longer.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        broker_probes: dict[str, BrokerProbe] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.broker_probes = broker_probes if broker_probes is not None else default_probes()
        self._own = _Shared(self._run_own, lambda: self.settings.health_cache_seconds)
        self._brokers = _Shared(
            self._run_brokers, lambda: self.settings.broker_health_cache_seconds
        )

    async def readiness(self) -> Readiness:
        """Check the database, and Redis and SMTP when configured; never a broker."""
        return await self._own.get()

    async def broker_reachability(self) -> Readiness:
        """Reach each broker kind in use (for admins): slow and outbound, so cached longer."""
        return await self._brokers.get()

    async def _run_own(self) -> Readiness:
        timeout = self.settings.health_timeout_seconds
        planned: list[tuple[str, Probe, bool]] = [("database", self._database, True)]
        if self.settings.redis_url:
            planned.append(("redis", self._redis, True))
        if self.settings.smtp_host:
            planned.append(("smtp", self._smtp, False))
        results = await asyncio.gather(
            *(run_check(n, p, required=r, within=timeout) for n, p, r in planned)
        )
        return Readiness(list(results))

    async def _run_brokers(self) -> Readiness:
        timeout = self.settings.health_timeout_seconds
        try:
            planned = await self._broker_checks()
        except Exception as exc:  # the database is down: readiness says so, with its error
            error = redact_text(f"{type(exc).__name__}: {exc}")[:300]
            failed = CheckResult("brokers", False, False, 0.0, error)
            return Readiness([failed])
        results = await asyncio.gather(
            *(run_check(n, p, required=r, within=timeout) for n, p, r in planned)
        )
        return Readiness(list(results))

    async def _database(self) -> None:
        async with self.db.session() as session:
            await session.execute(text("SELECT 1"))

    async def _redis(self) -> None:
        await ping_redis(self.settings.redis_url)

    async def _smtp(self) -> None:
        await probe_smtp(self.settings, connect_seconds=self.settings.health_timeout_seconds)

    async def _broker_checks(self) -> list[tuple[str, Probe, bool]]:
        from pinelab.brokers.models import BrokerAccount

        query = (
            select(BrokerAccount.kind, BrokerAccount.paper)
            .where(BrokerAccount.archived_at.is_(None))
            .distinct()
        )
        async with self.db.session() as session:
            in_use = sorted({(str(k), bool(p)) for k, p in await session.execute(query)})
        return [
            (_broker_check_name(kind, paper), self._broker_probe(kind, paper), False)
            for kind, paper in in_use
        ]

    def _broker_probe(self, kind: str, paper: bool) -> Probe:
        gateway = self.settings.broker_base_urls.get(kind)
        probe = self.broker_probes.get(kind.split(":", 1)[0])

        async def run() -> None:
            if gateway:  # orders go there, not to the public host: so does the probe
                await probe_url(gateway)
            elif probe is None:
                raise LookupError(f"no health probe for broker kind {kind!r}")
            else:
                await probe(kind, paper)

        return run


def _broker_check_name(kind: str, paper: bool) -> str:
    if kind == "paper":
        return "broker:paper"
    return f"broker:{kind}:{'paper' if paper else 'live'}"


async def ping_redis(url: str) -> None:
    """Connect to Redis and PING it."""
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=5)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def probe_smtp(settings: Settings, *, connect_seconds: float) -> None:
    """Connect to the SMTP server, say EHLO (and STARTTLS and log in when configured), quit."""
    import aiosmtplib

    smtp = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        timeout=connect_seconds,
        use_tls=settings.smtp_tls_mode == "implicit",
        start_tls=settings.smtp_tls_mode == "starttls",
        cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
    )
    await smtp.connect()
    try:
        if settings.smtp_username:
            await smtp.login(settings.smtp_username, settings.smtp_password)
        await smtp.noop()
    finally:
        smtp.close()


async def probe_url(url: str, *, connect_seconds: float = 5.0) -> None:
    """Reach a venue's API host: any HTTP answer below 500 means it is up."""
    parts = urlsplit(url)
    async with httpx.AsyncClient(timeout=connect_seconds) as client:
        response = await client.get(f"{parts.scheme}://{parts.netloc}/")
    if response.status_code >= 500:
        raise ConnectionError(f"{parts.netloc} answered {response.status_code}")


async def _probe_paper(_kind: str, _paper: bool) -> None:
    """The paper broker lives in our database, which is checked already."""


async def _probe_alpaca(_kind: str, paper: bool) -> None:
    await probe_url(ALPACA_URLS[paper])


async def _probe_ccxt(kind: str, paper: bool) -> None:
    from pinelab.brokers.ccxt_mapping import exchange_class

    exchange = exchange_class(kind.split(":", 1)[1])({})
    try:
        urls = exchange.urls.get("test") if paper and exchange.urls.get("test") else None
        api = urls or exchange.urls["api"]
        # Many exchanges give templates (https://api.{hostname}); fill them in as ccxt does.
        await probe_url(exchange.implode_hostname(_first_url(api)))
    finally:
        await exchange.close()


def _first_url(api: object) -> str:
    if isinstance(api, str):
        return api
    if isinstance(api, dict):
        return _first_url(next(iter(api.values())))
    raise LookupError("the exchange declares no API URL")


def default_probes() -> dict[str, BrokerProbe]:
    """Return the probe of each broker kind: its venue's API host must answer."""
    return {"paper": _probe_paper, "alpaca": _probe_alpaca, "ccxt": _probe_ccxt}
