"""Readiness checks against a real database: verdicts, broker kinds in use, timeouts, caching.

Public readiness checks our own dependencies only; broker reachability is a separate, admin-only
run with its own, longer cache.
"""

from __future__ import annotations

import asyncio

from pinelab.brokers.models import BrokerAccount
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.ops.health import HealthChecker
from tests.factories import seed_strategy


class CountingProbe:
    """A broker probe that counts its calls and fails or hangs on demand."""

    def __init__(self, *, error: Exception | None = None, hang: bool = False) -> None:
        self.calls = 0
        self.error = error
        self.hang = hang

    async def __call__(self, kind: str, paper: bool) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.error is not None:
            raise self.error


async def _add_alpaca(db: Database, user_id: int) -> None:
    async with db.transaction() as session:
        session.add(BrokerAccount(user_id=user_id, kind="alpaca", label="live", paper=False))


def _checker(settings: Settings, db: Database, **probes: CountingProbe) -> HealthChecker:
    return HealthChecker(settings, db, broker_probes=dict(probes))


async def test_a_sound_process_is_ready_with_each_latency(settings: Settings, db: Database) -> None:
    readiness = await _checker(settings, db).readiness()
    body = readiness.as_dict()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["latency_ms"] >= 0


async def test_each_broker_kind_in_use_is_checked_once(settings: Settings, db: Database) -> None:
    seeded = await seed_strategy(db)
    await seed_strategy(db, email="other@example.com", token="other-token-0123456789")
    await _add_alpaca(db, seeded.user_id)
    paper, alpaca = CountingProbe(), CountingProbe()
    reachability = await _checker(settings, db, paper=paper, alpaca=alpaca).broker_reachability()
    assert set(reachability.as_dict()["checks"]) == {"broker:paper", "broker:alpaca:live"}
    assert (paper.calls, alpaca.calls) == (1, 1)


async def test_readiness_never_reaches_a_broker(settings: Settings, db: Database) -> None:
    seeded = await seed_strategy(db)
    await _add_alpaca(db, seeded.user_id)
    paper, alpaca = CountingProbe(), CountingProbe()
    readiness = await _checker(settings, db, paper=paper, alpaca=alpaca).readiness()
    assert set(readiness.as_dict()["checks"]) == {"database"}
    assert (paper.calls, alpaca.calls) == (0, 0)


async def test_a_broker_down_degrades_but_keeps_the_process_ready(
    settings: Settings, db: Database
) -> None:
    seeded = await seed_strategy(db)
    await _add_alpaca(db, seeded.user_id)
    failing = CountingProbe(error=ConnectionError("api.alpaca.markets unreachable"))
    checker = _checker(settings, db, paper=CountingProbe(), alpaca=failing)
    readiness = await checker.broker_reachability()
    assert readiness.status == "degraded"
    check = readiness.as_dict()["checks"]["broker:alpaca:live"]
    assert (check["ok"], check["required"], check["error"]) == (False, False, "ConnectionError")
    detail = readiness.as_dict(detail=True)["checks"]["broker:alpaca:live"]["error"]
    assert "unreachable" in detail


async def test_redis_down_makes_the_process_unavailable(settings: Settings, db: Database) -> None:
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    readiness = await _checker(broken, db).readiness()
    assert readiness.status == "unavailable"
    assert readiness.as_dict()["checks"]["redis"]["required"] is True


async def test_a_hanging_probe_is_cut_at_the_timeout(settings: Settings, db: Database) -> None:
    seeded = await seed_strategy(db)
    await _add_alpaca(db, seeded.user_id)
    quick = settings.model_copy(update={"health_timeout_seconds": 0.2})
    hanging = CountingProbe(hang=True)
    started = asyncio.get_running_loop().time()
    readiness = await _checker(
        quick, db, paper=CountingProbe(), alpaca=hanging
    ).broker_reachability()
    assert asyncio.get_running_loop().time() - started < 2
    check = readiness.as_dict(detail=True)["checks"]["broker:alpaca:live"]
    assert check["error"].startswith("Timeout")


async def test_probes_within_the_cache_window_share_one_run(
    settings: Settings, db: Database
) -> None:
    await seed_strategy(db)
    probe = CountingProbe()
    checker = _checker(settings, db, paper=probe)  # brokers are cached 60 s by default
    await asyncio.gather(*(checker.broker_reachability() for _ in range(20)))
    await checker.broker_reachability()
    assert probe.calls == 1


async def test_after_the_cache_window_the_checks_run_again(
    settings: Settings, db: Database
) -> None:
    await seed_strategy(db)
    probe = CountingProbe()
    uncached = settings.model_copy(update={"broker_health_cache_seconds": 0})
    checker = _checker(uncached, db, paper=probe)
    await checker.broker_reachability()
    await checker.broker_reachability()
    assert probe.calls == 2
