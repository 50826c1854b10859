"""Ops endpoints: liveness, readiness, the admin health detail, Prometheus metrics, API docs."""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, Header, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from pinelab import __version__
from pinelab.accounts.dependencies import CurrentAdmin
from pinelab.api.deps import DatabaseDep, SettingsDep
from pinelab.errors import AuthenticationError, ResourceNotFoundError
from pinelab.ops.dependencies import HealthDep, MetricsDep, WorkerStatusDep
from pinelab.ops.health import Readiness
from pinelab.ops.metrics import CONTENT_TYPE, queue_stats, refresh_quietly
from pinelab.ops.schemas import AdminHealthRead, HealthRead, LiveRead, QueueRead, WorkerRead

router = APIRouter(tags=["ops"])
admin_router = APIRouter(prefix="/admin", tags=["admin: health"])
docs_router = APIRouter(include_in_schema=False)

VENDOR_DIR: Final = Path(__file__).resolve().parent.parent / "web" / "static" / "vendor"
VENDOR_FILES: Final = frozenset(
    {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon-32x32.png"}
)
_STARTED = time.monotonic()


@router.get("/health/live", summary="Liveness")
async def live() -> LiveRead:
    """Answer while the process is up (it checks nothing else)."""
    return LiveRead()


@router.get(
    "/health/ready",
    summary="Readiness",
    response_model=HealthRead,
    responses={503: {"model": HealthRead, "description": "A required dependency is down"}},
)
async def ready(health: HealthDep) -> JSONResponse:
    """Check our own dependencies: the database, and Redis and SMTP when configured."""
    readiness = await health.readiness()
    status = 503 if readiness.status == "unavailable" else 200
    return JSONResponse(readiness.as_dict(), status_code=status)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: {"description": "PINELAB_METRICS_TOKEN is set and the bearer token differs"},
        404: {"description": "Metrics are served on PINELAB_METRICS_PORT instead"},
    },
)
async def metrics(
    settings: SettingsDep,
    db: DatabaseDep,
    process_metrics: MetricsDep,
    authorization: Annotated[str | None, Header(max_length=512)] = None,
) -> Response:
    """Expose the metrics in the Prometheus text format (bearer PINELAB_METRICS_TOKEN if set)."""
    if settings.metrics_port is not None:
        raise ResourceNotFoundError("Metrics endpoint")
    if settings.metrics_token and not hmac.compare_digest(
        (authorization or "").encode(), f"Bearer {settings.metrics_token}".encode()
    ):
        raise AuthenticationError("Metrics need the bearer token PINELAB_METRICS_TOKEN")
    await refresh_quietly(process_metrics, db)
    return Response(process_metrics.render(), media_type=CONTENT_TYPE)


@admin_router.get("/health", summary="Health detail for the dashboard")
async def admin_health(
    _: CurrentAdmin,
    settings: SettingsDep,
    db: DatabaseDep,
    health: HealthDep,
    worker: WorkerStatusDep,
) -> AdminHealthRead:
    """Show every check (brokers included) with its error, the worker, the queue, the version."""
    own, brokers = await health.readiness(), await health.broker_reachability()
    readiness = Readiness([*own.checks, *brokers.checks], checked_at=own.checked_at)
    stats = await queue_stats(db)
    return AdminHealthRead.model_validate(
        {
            **readiness.as_dict(detail=True),
            "version": __version__,
            "env": settings.env,
            "database": "sqlite" if db.is_sqlite else "postgresql",
            "uptime_seconds": round(time.monotonic() - _STARTED, 3),
            "worker": WorkerRead(enabled=settings.worker_enabled, running=worker.running),
            "queue": QueueRead(**stats.__dict__),
        }
    )


@docs_router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Serve Swagger UI from the bundled assets (no CDN)."""
    return get_swagger_ui_html(
        openapi_url=str(request.app.openapi_url),
        title="PineLab API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )


@docs_router.get("/redoc")
async def redoc() -> HTMLResponse:
    """Serve ReDoc from the bundled assets (no CDN, no web fonts)."""
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="PineLab API",
        redoc_js_url="/docs/assets/redoc.standalone.js",
        redoc_favicon_url="/docs/assets/favicon-32x32.png",
        with_google_fonts=False,
    )


@docs_router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    """Serve one bundled Swagger UI / ReDoc file."""
    if name not in VENDOR_FILES:
        raise ResourceNotFoundError("Asset")
    return FileResponse(VENDOR_DIR / name, headers={"Cache-Control": "public, max-age=86400"})
