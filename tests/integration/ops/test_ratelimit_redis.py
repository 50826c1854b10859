"""Rate limits hold across processes: two PineLab processes on one Redis share one limit."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pinelab.ops.ratelimit import RateLimitStore
from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 6
EACH = 5


@pytest.mark.skipif(not REDIS_URL, reason="PINELAB_TEST_REDIS_URL not set")
def test_two_processes_on_one_redis_share_one_limit(database_url: str, tmp_path: Path) -> None:
    # A fresh address per run, so windows left by earlier runs cannot count.
    address = "2001:db8::" + ":".join(uuid.uuid4().hex[i : i + 4] for i in range(0, 16, 4))
    command = [sys.executable, "-m", "tests.integration.ops.redis_limit_client", database_url]
    processes = [
        subprocess.Popen(
            [*command, str(tmp_path / name), REDIS_URL, address, str(LIMIT), str(EACH)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    codes = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        codes += json.loads(out.strip().splitlines()[-1])

    assert codes.count(200) == LIMIT
    assert codes.count(429) == 2 * EACH - LIMIT


async def test_an_unreachable_redis_lets_requests_through() -> None:
    limit = RateLimitStore("redis://127.0.0.1:1/0").limit("unreachable", 1)
    assert [await limit.hit("key") for _ in range(3)] == [None, None, None]
