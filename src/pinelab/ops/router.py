"""Health endpoints: liveness and readiness."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from pinelab.api.deps import DatabaseDep

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    """Answer while the process is up."""
    return {"status": "ok"}


@router.get("/health/ready", response_model=None)
async def ready(db: DatabaseDep) -> JSONResponse:
    """Answer 200 when the database answers, else 503."""
    started = time.perf_counter()
    try:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse(
            {
                "status": "unavailable",
                "checks": {"database": {"ok": False, "error": type(exc).__name__}},
            },
            status_code=503,
        )
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return JSONResponse(
        {"status": "ok", "checks": {"database": {"ok": True, "latency_ms": latency_ms}}}
    )
