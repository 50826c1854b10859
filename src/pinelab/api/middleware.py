"""Per-request plumbing as pure ASGI: request id, log context, metrics, the bare 500.

Every answer carries `X-Request-ID` (the caller's when it is a sane token, else a new one); every
log line of the request carries `request_id` (and `user_id` once the caller is known); every
request is counted by method, route template (never the raw path: webhook paths hold secrets)
and status. An error that escaped every handler is logged here with its stack trace and answered
with the generic 500 body, so the request id is on both. Every request takes this path, the
webhook's included.
"""

from __future__ import annotations

import random
import re
import time
from typing import Final

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pinelab.api.errors import INTERNAL_ERROR, internal_error_body
from pinelab.ops.metrics import UNMATCHED_ROUTE, Metrics

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER: Final = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_BOUND_KEYS: Final = ("request_id", "user_id")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """Return the caller's X-Request-ID when it is a sane token, else a new id."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER and _SANE_ID.fullmatch(value):
            return value.decode("ascii")
    # Unique, not secret: a fast PRNG (no system call per request) is enough for an id.
    return f"{random.getrandbits(128):032x}"


def route_of(scope: Scope) -> str:
    """Return the full template of the route that answered (e.g. /api/v1/signals/{signal_id})."""
    # FastAPI keeps the prefixed template of routes from included routers in its own scope key.
    included = scope.get("fastapi")
    effective = included.get("effective_route_context") if isinstance(included, dict) else None
    path = getattr(effective, "path", None) or getattr(scope.get("route"), "path", None)
    if path is None and "endpoint" in scope:
        path = _plain_route_path(scope)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


def _plain_route_path(scope: Scope) -> str | None:
    """Find the template of a plain Starlette route on the app (FastAPI does not record it)."""
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        if getattr(route, "endpoint", None) is scope["endpoint"]:
            path = getattr(route, "path", None)
            return path if isinstance(path, str) else None
    return None


class RequestContextMiddleware:
    """Give each HTTP request an id, bind it to the logs, and count and time the request."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call; non-HTTP scopes pass through untouched."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        header = request_id_header(request_id)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started:
                raise
            await answer_unhandled(scope, route_of(scope), exc, send, header, self.metrics)
        finally:
            finish_request(self.metrics, scope["method"], route_of(scope), status, started)


def request_id_header(request_id: str) -> tuple[bytes, bytes]:
    """Return the X-Request-ID header every answer carries."""
    return (REQUEST_ID_HEADER, request_id.encode("ascii"))


def finish_request(metrics: Metrics, method: str, route: str, status: int, started: float) -> None:
    """Count and time one answered request and drop its log context."""
    metrics.request_finished(method, route, status, time.perf_counter() - started)
    structlog.contextvars.unbind_contextvars(*_BOUND_KEYS)


async def answer_unhandled(
    scope: Scope,
    route: str,
    exc: Exception,
    send: Send,
    header: tuple[bytes, bytes],
    metrics: Metrics,
) -> None:
    """Log an error that escaped every handler, with its stack, and answer the bare 500."""
    log.error(
        "unhandled_error",
        method=scope["method"],
        route=route,
        error_type=type(exc).__name__,
        exc_info=exc,
    )
    metrics.error(INTERNAL_ERROR)
    body = orjson.dumps(internal_error_body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        header,
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
