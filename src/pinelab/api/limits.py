"""Limits on what a client may send: the body cap, and the connection deadlines uvicorn lacks.

`BodyLimitMiddleware` caps every request body while it streams in: a declared `Content-Length`
over the cap is answered 413 before anything is read; otherwise the bytes are counted as the app
reads them, and the read that crosses the cap raises `BodyTooLarge` (a 413 in the one error body,
with `Connection: close` so the rest is never read). Routes that stream and cap their own body
(the webhook, which records an oversized alert as rejected) are listed as exempt.

`GuardedH11Protocol` is uvicorn's h11 protocol plus what uvicorn's settings do not offer: its
`timeout_keep_alive` only runs between requests and restarts on every byte received, so a client
that connects and sends nothing, or trickles its headers or body, would hold the connection for
ever. Here a fresh connection gets the keep-alive timeout too, and each request must arrive whole
(headers and body) within `request_timeout` of its first byte, or the connection is closed. The
header size limit is h11's own (`h11_max_incomplete_event_size`: larger headers are a 400).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Final

import h11
import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from pinelab.api.errors import BodyTooLarge, too_large_body

log = structlog.get_logger(__name__)

PROTOCOL: Final = "pinelab.api.limits:GuardedH11Protocol"


def declared_length(scope: Scope) -> int | None:
    """Return the request's Content-Length, or None when absent (h11 rejects a malformed one)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimitMiddleware:
    """Refuse a request body over `max_body_bytes` while it streams in (413, error body)."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, exempt_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.cap = max_body_bytes
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with a counting `receive`; answer 413 past the cap."""
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.cap:
            await self._refuse(send)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.cap:
                    exceeded = True
                    raise BodyTooLarge(self.cap)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, tracking_send)
        if exceeded and not started:  # the app swallowed the error without answering
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps(too_large_body(self.cap))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@functools.cache
def configured_request_timeout() -> float:
    """Return PINELAB_REQUEST_TIMEOUT_SECONDS, read once per process (each uvicorn worker's)."""
    from pinelab.config import Settings

    return Settings().request_timeout_seconds


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with an idle timeout from the first byte and a request deadline.

    `pinelab serve` names it by import path (`PROTOCOL`), as uvicorn's worker processes need.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        self.request_timeout = configured_request_timeout()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the keep-alive timeout at once: a connection that sends nothing is closed."""
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        """Start the request's deadline at its first byte; stop it once the request is whole."""
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
            self._stop_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the deadline with the connection."""
        self._stop_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        """Let the next request on this connection start its own deadline."""
        self._stop_deadline()
        super().on_response_complete()

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.warning("request_too_slow", limit_seconds=self.request_timeout, client=self.client)
            self.transport.close()
