"""Operating the service over HTTP: health, metrics, request ids, error bodies, docs, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from pinelab.accounts import service as accounts
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.main import create_app
from pinelab.ops.health import HealthChecker
from tests.e2e.conftest import PASSWORD
from tests.factories import Seeded, seed_strategy, settled_signal
from tests.fakes.faults import free_port

ALERT = {"ticker": "AAPL", "action": "buy", "quantity": "2", "price": "100", "id": "ops-1"}


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Start an app with these settings and yield it with a client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, http


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Return every sample of a Prometheus exposition, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_liveness_answers_with_a_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.json() == {"status": "ok"}
    assert len(response.headers["x-request-id"]) == 32


async def test_readiness_is_200_with_the_database_latency(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["database"]["ok"] is True


async def test_readiness_is_503_when_the_database_is_down(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    broken = Database("sqlite+aiosqlite:////nonexistent-dir/pinelab.db")
    app.state.health = HealthChecker(settings, broken)
    response = await client.get("/health/ready")
    await broken.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {
        "ok": False,
        "required": True,
        "latency_ms": body["checks"]["database"]["latency_ms"],
        "error": "OperationalError",
    }


async def _admin_headers(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    async with app.state.db.transaction() as session:
        await accounts.create_user(
            session, email="ops@example.com", password=PASSWORD, role="admin", verified=True
        )
    login = await client.post(
        "/api/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_anonymous_readiness_reaches_no_broker_and_admins_see_them(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    probed: list[str] = []

    async def probe(kind: str, paper: bool) -> None:
        probed.append(kind)

    app.state.health.broker_probes = {"paper": probe, "alpaca": probe, "ccxt": probe}
    for _ in range(3):
        response = await client.get("/health/ready")
        assert response.status_code == 200
        assert not any(name.startswith("broker") for name in response.json()["checks"])
    assert probed == []
    admin = await client.get("/api/v1/admin/health", headers=await _admin_headers(app, client))
    assert admin.status_code == 200, admin.text
    assert admin.json()["checks"]["broker:paper"]["ok"] is True
    assert probed == ["paper"]


async def test_admin_health_shows_the_detail_to_admins_only(
    app: FastAPI, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    assert (await client.get("/api/v1/admin/health", headers=auth_headers)).status_code == 403
    assert (await client.get("/api/v1/admin/health")).status_code == 401
    response = await client.get("/api/v1/admin/health", headers=await _admin_headers(app, client))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["worker"] == {"enabled": True, "running": True}
    assert set(body["queue"]) == {"queued", "running", "dead", "oldest_age_seconds"}
    assert body["database"] in ("sqlite", "postgresql")


async def test_metrics_count_alerts_orders_latency_queue_and_errors(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    seeded = await seed_strategy(app.state.db)
    accepted = await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    await client.post(f"/webhooks/{seeded.token}", json={**ALERT, "id": "x", "quantity": "NaN"})
    await client.post("/webhooks/wrong-token-0123456789", json=ALERT)
    await settled_signal(app.state.db, accepted.json()["signal_id"])
    text = (await client.get("/metrics")).text
    found = samples(text)
    assert found[("pinelab_alerts_received_total", frozenset())] == 4
    for outcome in ("accepted", "duplicate", "rejected"):
        assert found[("pinelab_alerts_total", frozenset({("outcome", outcome)}))] == 1
    assert found[("pinelab_orders_total", frozenset({("status", "new")}))] == 1
    assert found[("pinelab_orders_total", frozenset({("status", "filled")}))] == 1
    assert found[("pinelab_alert_to_submit_seconds_count", frozenset())] == 1
    assert found[("pinelab_errors_total", frozenset({("type", "UnknownWebhook")}))] == 1
    assert ("pinelab_job_queue_depth", frozenset({("status", "queued")})) in found
    assert ("pinelab_job_queue_oldest_age_seconds", frozenset()) in found
    webhook = {("method", "POST"), ("route", "/webhooks/{token}"), ("status", "202")}
    assert found[("pinelab_http_requests_total", frozenset(webhook))] == 2
    assert seeded.token not in text


async def test_metrics_need_the_token_when_one_is_set(settings: Settings) -> None:
    guarded = settings.model_copy(update={"metrics_token": "scrape-me-0123456789"})
    async with running(guarded) as (_, http):
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me-0123456789"})
        assert right.status_code == 200
        assert "pinelab_http_requests_total" in right.text


async def test_metrics_can_live_on_their_own_port(settings: Settings) -> None:
    port = free_port()
    separate = settings.model_copy(update={"metrics_port": port})
    async with running(separate) as (_, http):
        assert (await http.get("/metrics")).status_code == 404
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper:
            scraped = await scraper.get("/metrics")
            other = await scraper.get("/")
    assert scraped.status_code == 200
    assert "pinelab_job_queue_depth" in scraped.text
    assert other.status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("get", "/api/v1/signals", None, 401, "AuthenticationError"),
        ("get", "/api/v1/nothing-here", None, 404, "ResourceNotFoundError"),
        ("post", "/api/v1/auth/login", {"email": 1}, 422, "ValidationError"),
        ("delete", "/health/live", None, 405, "MethodNotAllowed"),
    ],
)
async def test_every_error_has_the_one_body_and_a_request_id(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    error: str,
) -> None:
    response = await client.request(method, path, json=body, headers={"X-Request-ID": "trace-42"})
    assert response.status_code == status
    assert response.headers["x-request-id"] == "trace-42"
    payload = response.json()
    assert set(payload) == {"error", "message", "details"}
    assert payload["error"] == error
    for detail in payload["details"]:
        assert set(detail) == {"field", "message", "type"}


async def test_an_unhandled_error_answers_a_bare_500_with_the_request_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def explode() -> None:
        raise RuntimeError("secret detail: postgresql://app:hunter2@db/x")

    app.add_api_route("/api/v1/explode", explode)
    response = await client.get("/api/v1/explode", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-1"
    assert response.json()["error"] == "InternalServerError"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    metrics = samples((await client.get("/metrics")).text)
    assert metrics[("pinelab_errors_total", frozenset({("type", "InternalServerError")}))] == 1


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_their_assets_from_the_app_not_a_cdn(
    client: httpx.AsyncClient, page: str
) -> None:
    html = (await client.get(page)).text
    assert "/docs/assets/" in html
    assert "cdn" not in html.lower()
    assert "fonts.googleapis" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        served = await client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200
        assert len(served.content) > 10_000
    assert (await client.get("/docs/assets/..%2Fpinelab.db")).status_code == 404


async def test_openapi_documents_versions_errors_limits_auth_and_examples(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "Versioning" in document["info"]["description"]
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    unversioned = {"/webhooks/{token}", "/health/live", "/health/ready", "/metrics"}
    for path, item in document["paths"].items():
        assert path.startswith("/api/v1/") or path in unversioned, path
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert "500" in responses, label
            if operation.get("security"):
                assert "401" in responses, label
            for code, response in responses.items():
                if code[0] in "45" and (path, code) != ("/health/ready", "503"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, label
            _assert_examples(operation, label)
    webhook = document["paths"]["/webhooks/{token}"]["post"]
    assert "429" in webhook["responses"]
    assert "per strategy" in webhook["x-rate-limit"]
    assert "x-rate-limit" in document["paths"]["/api/v1/auth/login"]["post"]


def _assert_examples(operation: dict[str, Any], label: str) -> None:
    request = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if request is not None:
        assert "example" in request or "examples" in request, label
    for code, response in operation["responses"].items():
        body = response.get("content", {}).get("application/json")
        if code.startswith("2") and body is not None and body.get("schema"):
            assert "example" in body or "examples" in body, label


async def test_nul_characters_are_a_4xx_on_every_database(
    app: FastAPI, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    label = await client.post(
        "/api/v1/broker-accounts", json={"kind": "paper", "label": "a\u0000b"}, headers=auth_headers
    )
    assert label.status_code in (201, 422), label.text
    query = await client.get("/api/v1/fills", params={"ticker": "A\u0000"}, headers=auth_headers)
    assert query.status_code in (200, 422), query.text
    seeded = await seed_strategy(app.state.db)
    alert = await client.post(
        f"/webhooks/{seeded.token}",
        content=b"buy AAPL 1 \x00",
        headers={"content-type": "text/plain"},
    )
    assert alert.status_code == 422
    assert alert.json()["signal_id"] > 0
