"""Readiness of the optional dependencies: SMTP, venue API hosts, and broker kinds without a probe.

SMTP is a real aiosmtpd server and the venue hosts a tiny HTTP server, both on 127.0.0.1; the
built-in Alpaca and ccxt probes are checked for the host they would reach, never the Internet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pinelab.brokers.models import BrokerAccount
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.ops import health
from pinelab.ops.health import HealthChecker, default_probes, probe_url
from tests.factories import seed_strategy
from tests.fakes.faults import free_port

SMTP_USER = "alerts@pinelab.test"
SMTP_PASSWORD = "smtp-password-never-shown-42"


class Silent:
    """An aiosmtpd handler for a server that is only ever probed."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    given = (auth_data.login, auth_data.password) if isinstance(auth_data, LoginPassword) else None
    if given == (SMTP_USER.encode(), SMTP_PASSWORD.encode()):
        return AuthResult(success=True)
    return AuthResult(success=False, handled=False, message="535 5.7.8 credentials invalid")


@pytest.fixture
def smtp_port() -> Iterator[int]:
    port = free_port()
    controller = Controller(
        Silent(),
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _with_smtp(settings: Settings, port: int, **fields: object) -> Settings:
    return settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False, **fields}
    )


async def test_an_answering_smtp_server_is_checked_as_optional(
    settings: Settings, db: Database, smtp_port: int
) -> None:
    configured = _with_smtp(
        settings, smtp_port, smtp_username=SMTP_USER, smtp_password=SMTP_PASSWORD
    )

    readiness = await HealthChecker(configured, db, broker_probes={}).readiness()

    assert readiness.status == "ok"
    smtp = readiness.as_dict(detail=True)["checks"]["smtp"]
    assert (smtp["ok"], smtp["required"], "error" in smtp) == (True, False, False)


async def test_refused_smtp_login_degrades_without_showing_the_password(
    settings: Settings, db: Database, smtp_port: int
) -> None:
    configured = _with_smtp(
        settings, smtp_port, smtp_username=SMTP_USER, smtp_password=f"wrong-{SMTP_PASSWORD}"
    )

    readiness = await HealthChecker(configured, db, broker_probes={}).readiness()

    assert readiness.status == "degraded"
    detail = readiness.as_dict(detail=True)["checks"]["smtp"]
    assert (detail["ok"], detail["required"]) == (False, False)
    assert detail["error"].startswith("SMTPAuthenticationError")
    assert SMTP_PASSWORD not in str(readiness.as_dict(detail=True))


async def test_smtp_down_degrades_but_the_process_stays_ready(
    settings: Settings, db: Database
) -> None:
    configured = _with_smtp(settings, free_port()).model_copy(
        update={"health_timeout_seconds": 2.0}
    )

    readiness = await HealthChecker(configured, db, broker_probes={}).readiness()

    assert readiness.status == "degraded"
    assert readiness.as_dict()["checks"]["database"]["ok"] is True
    assert readiness.as_dict()["checks"]["smtp"]["ok"] is False


async def test_a_broker_kind_without_a_probe_is_reported_not_raised(
    settings: Settings, db: Database
) -> None:
    seeded = await seed_strategy(db)
    async with db.transaction() as session:
        session.add(
            BrokerAccount(user_id=seeded.user_id, kind="ccxt:kraken", label="K", paper=False)
        )

    async def paper_probe(kind: str, paper: bool) -> None:
        return None

    checker = HealthChecker(settings, db, broker_probes={"paper": paper_probe})
    readiness = await checker.broker_reachability()

    assert readiness.status == "degraded"
    checks = readiness.as_dict(detail=True)["checks"]
    assert checks["broker:paper"]["ok"] is True
    assert checks["broker:ccxt:kraken:live"]["error"] == (
        "LookupError: no health probe for broker kind 'ccxt:kraken'"
    )


@pytest.fixture
async def venue() -> AsyncIterator[tuple[str, list[int]]]:
    """An HTTP host answering each request with the next status of a list the test fills."""
    statuses: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        status = statuses.pop(0)
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v2/some/api/path", statuses


@pytest.mark.parametrize("status", [200, 401, 404, 499])
async def test_any_answer_below_500_means_the_venue_is_up(
    venue: tuple[str, list[int]], status: int
) -> None:
    url, statuses = venue
    statuses.append(status)

    await probe_url(url)

    assert statuses == []


@pytest.mark.parametrize("status", [500, 503])
async def test_a_5xx_answer_means_the_venue_is_down(
    venue: tuple[str, list[int]], status: int
) -> None:
    url, statuses = venue
    statuses.append(status)

    with pytest.raises(ConnectionError, match=f"127.0.0.1:\\d+ answered {status}$"):
        await probe_url(url)


async def test_a_configured_base_url_is_probed_instead_of_the_public_host(
    settings: Settings, db: Database, venue: tuple[str, list[int]]
) -> None:
    url, statuses = venue
    statuses.append(200)
    seeded = await seed_strategy(db)
    async with db.transaction() as session:
        session.add(BrokerAccount(user_id=seeded.user_id, kind="alpaca", label="A", paper=False))

    async def public_host(kind: str, paper: bool) -> None:
        raise AssertionError(f"the public host of {kind} was probed")

    gateway = settings.model_copy(update={"broker_base_urls": {"alpaca": url}})
    checker = HealthChecker(gateway, db, broker_probes={"alpaca": public_host})
    readiness = await checker.broker_reachability()

    assert statuses == []  # the gateway was asked
    assert readiness.as_dict()["checks"]["broker:alpaca:live"]["ok"] is True


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the URL each built-in probe would reach instead of reaching it."""
    urls: list[str] = []

    async def record(url: str, *, connect_seconds: float = 5.0) -> None:
        urls.append(url)

    monkeypatch.setattr(health, "probe_url", record)
    return urls


async def test_the_paper_probe_reaches_nothing(reached: list[str]) -> None:
    await default_probes()["paper"]("paper", True)

    assert reached == []


async def test_alpaca_paper_and_live_reach_their_own_api_hosts(reached: list[str]) -> None:
    probe = default_probes()["alpaca"]

    await probe("alpaca", True)
    await probe("alpaca", False)

    assert reached == ["https://paper-api.alpaca.markets", "https://api.alpaca.markets"]


async def test_ccxt_paper_reaches_the_sandbox_and_live_the_real_api(reached: list[str]) -> None:
    probe = default_probes()["ccxt"]

    await probe("ccxt:binance", True)
    await probe("ccxt:binance", False)
    await probe("ccxt:kraken", True)  # kraken has no sandbox: its one API host

    hosts = [url.split("/")[2] for url in reached]
    assert "testnet" in hosts[0]
    assert hosts[1:] == ["api.binance.com", "api.kraken.com"]


@pytest.mark.parametrize("exchange", ["okx", "bybit"])
async def test_ccxt_probe_reaches_a_real_host_for_templated_urls(
    reached: list[str], exchange: str
) -> None:
    await default_probes()["ccxt"](f"ccxt:{exchange}", False)

    assert len(reached) == 1
    assert "{" not in reached[0]
