"""The request middleware: request ids, log context, metrics, unhandled errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send

from pinelab.api import middleware
from pinelab.api.middleware import RequestContextMiddleware, request_id_from
from pinelab.ops.metrics import Metrics


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer 200 with the log context the app sees."""
    context = structlog.contextvars.get_contextvars()
    body = str(sorted(context.items())).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Fail the way a bug would."""
    raise RuntimeError("database password is hunter2")


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_sane_request_id_is_echoed_and_bound_to_the_logs() -> None:
    app = RequestContextMiddleware(ok_app, metrics=Metrics())
    async with _client(app) as http:
        response = await http.get("/", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert "('request_id', 'abc-123')" in response.text
    assert structlog.contextvars.get_contextvars() == {}


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "bad id\nforged-line", "é"])
def test_a_missing_or_insane_request_id_is_replaced(sent: str | None) -> None:
    headers = [] if sent is None else [(b"x-request-id", sent.encode())]
    generated = request_id_from(headers)
    assert generated != sent
    assert len(generated) == 32


async def test_each_request_gets_its_own_generated_id() -> None:
    app = RequestContextMiddleware(ok_app, metrics=Metrics())
    async with _client(app) as http:
        first, second = await http.get("/"), await http.get("/")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_an_unhandled_error_is_logged_with_its_id_and_answered_with_a_bare_500(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = Metrics()
    app = RequestContextMiddleware(failing_app, metrics=metrics)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        # a fresh logger: one cached by an earlier test would bypass the capture
        monkeypatch.setattr(middleware, "log", structlog.get_logger("middleware-test"))
        async with _client(app) as http:
            response = await http.get("/", headers={"X-Request-ID": "req-9"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-9"
    assert response.json() == {
        "error": "InternalServerError",
        "message": "An unexpected error occurred; it has been logged.",
        "details": [],
    }
    assert "hunter2" not in response.text
    [entry] = [e for e in logs if e["event"] == "unhandled_error"]
    assert entry["request_id"] == "req-9"
    assert isinstance(entry["exc_info"], RuntimeError)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert families["pinelab_errors"].samples[0].labels == {"type": "InternalServerError"}


async def test_unmatched_paths_are_counted_under_one_label() -> None:
    metrics = Metrics()
    app = RequestContextMiddleware(ok_app, metrics=metrics)
    async with _client(app) as http:
        await http.get("/webhooks/secret-token-1")
    text = metrics.render().decode()
    assert 'route="unmatched"' in text
    assert "secret-token-1" not in text
