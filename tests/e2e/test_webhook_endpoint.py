"""The webhook is a route like any other: the middleware's request id, metrics and bare 500,
the one error body, and its own failure answers."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from pinelab.api import middleware
from pinelab.signals.models import Signal
from tests.factories import Seeded

ALERT = {"ticker": "AAPL", "action": "buy", "quantity": "1", "price": "10", "id": "e1", "time": "t"}


async def _signals(app: FastAPI) -> int:
    async with app.state.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Signal)) or 0)


def _webhook_requests(app: FastAPI) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(app.state.metrics.render().decode()):
        for sample in family.samples:
            if sample.name == "pinelab_http_requests_total":
                counts[f"{sample.labels['route']} {sample.labels['status']}"] = sample.value
    return counts


async def test_webhook_answers_carry_a_request_id_and_count_under_the_route_template(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    accepted = await client.post(
        f"/webhooks/{seeded.token}", json=ALERT, headers={"X-Request-ID": "tv-42"}
    )
    unknown = await client.post("/webhooks/no-such-token", json=ALERT)
    assert accepted.status_code == 202
    assert accepted.headers["x-request-id"] == "tv-42"
    assert accepted.headers["content-type"] == "application/json"
    assert unknown.status_code == 404
    assert len(unknown.headers["x-request-id"]) == 32
    counts = _webhook_requests(app)
    assert counts["/webhooks/{token} 202"] == 1
    assert counts["/webhooks/{token} 404"] == 1
    assert not any(seeded.token in key for key in counts)  # the secret never becomes a label


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/webhooks/abc", 405),
        ("POST", "/webhooks/abc/extra", 404),
        ("POST", "/webhooks/", 404),
    ],
)
async def test_other_methods_and_paths_under_webhooks_get_the_one_error_body(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path, json=ALERT)
    assert response.status_code == status
    assert set(response.json()) == {"error", "message", "details"}
    assert "x-request-id" in response.headers


async def test_a_database_that_cannot_store_the_alert_is_503_and_nothing_is_acknowledged(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = app.state.ingestor.writer

    async def disk_full(*_: Any, **__: Any) -> Any:
        raise OperationalError("INSERT INTO signal", {}, sqlite3.OperationalError("disk is full"))

    monkeypatch.setattr(writer, "write", disk_full)  # the batch holding the alert fails
    response = await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "ServiceUnavailable"
    assert "not accepted" in body["message"]
    assert "disk" not in body["message"]  # the cause is logged, not returned
    assert response.headers["retry-after"] == "1"
    monkeypatch.undo()
    assert await _signals(app) == 0
    retried = await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    assert retried.status_code == 202  # once the database is back, the same alert is taken


async def test_a_body_sent_in_chunks_is_read_whole(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    async def chunks() -> Any:
        for part in (b"buy ", b"AAPL ", b"3 price=", b"10"):
            yield part

    response = await client.post(
        f"/webhooks/{seeded.token}", content=chunks(), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 202, response.text
    async with app.state.db.session() as session:
        signal = await session.get(Signal, response.json()["signal_id"])
    assert signal is not None
    assert signal.raw_body == "buy AAPL 3 price=10"


async def test_a_bug_in_ingestion_is_a_bare_500_with_the_request_id_logged_and_counted(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingestor = app.state.ingestor

    async def broken(**_: Any) -> Any:
        raise RuntimeError("secret detail: postgresql://app:hunter2@db/x")

    monkeypatch.setattr(ingestor, "ingest", broken)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        # a fresh logger: one cached by an earlier test would bypass the capture
        monkeypatch.setattr(middleware, "log", structlog.get_logger("webhook-test"))
        response = await client.post(
            f"/webhooks/{seeded.token}", json=ALERT, headers={"X-Request-ID": "boom-2"}
        )
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-2"
    assert response.json()["error"] == "InternalServerError"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert _webhook_requests(app)["/webhooks/{token} 500"] == 1
    [entry] = [e for e in logs if e["event"] == "unhandled_error"]
    assert entry["request_id"] == "boom-2"
    assert entry["route"] == "/webhooks/{token}"  # the template: the token is a secret
    assert isinstance(entry["exc_info"], RuntimeError)
