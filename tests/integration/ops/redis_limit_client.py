"""One PineLab process for the shared-limit test: serve N requests from one address, print codes.

Run as `python -m tests.integration.ops.redis_limit_client DATABASE_URL DATA_DIR REDIS_URL
ADDRESS LIMIT COUNT`; it prints the status codes as a JSON list.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

from pinelab.config import Settings
from pinelab.main import create_app


async def run(database_url: str, data_dir: str, redis_url: str, address: str, limit: int,
              count: int) -> list[int]:  # fmt: skip
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        data_dir=Path(data_dir),
        database_url=database_url,
        redis_url=redis_url,
        secret_key="redis-limit-secret-key-long-enough-for-hs256-0123456789",
        worker_enabled=False,
        rate_limit_ip_per_minute=limit,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://pinelab") as client:
            return [(await client.get("/health/live")).status_code for _ in range(count)]


if __name__ == "__main__":
    database_url, data_dir, redis_url, address, limit, count = sys.argv[1:7]
    codes = asyncio.run(run(database_url, data_dir, redis_url, address, int(limit), int(count)))
    print(json.dumps(codes))
