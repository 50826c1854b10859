"""Limits on what a client may send: the body cap, and the connection deadlines uvicorn lacks.

`BodyLimitMiddleware` caps every request body while it streams in: a declared `Content-Length`
over the cap is answered 413 before anything is read; otherwise the bytes are counted as the app
reads them, and the read that crosses the cap raises `BodyTooLarge` (a 413 in the one error body,
with `Connection: close` so the rest is never read). Routes that stream and cap their own body
(the webhook, which records an oversized alert as rejected) are listed as exempt.

`GuardedHttpToolsProtocol` is uvicorn's httptools protocol (the fast one) plus what uvicorn's
settings do not offer: its `timeout_keep_alive` only runs between requests and restarts on every
byte received, so a client that connects and sends nothing, or trickles its headers or body,
would hold the connection for ever; and httptools bounds no header size. Here a fresh connection
gets the keep-alive timeout too, each request must arrive whole (headers and body) within
`request_timeout` of its first byte or the connection is closed, and a request line plus headers
over `max_header_bytes` is a 400. (uvicorn's h11 protocol bounds headers itself, but costs about
a third more CPU per request.)
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Final

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from pinelab.api.errors import BodyTooLarge, too_large_body

log = structlog.get_logger(__name__)

PROTOCOL: Final = "pinelab.api.limits:GuardedHttpToolsProtocol"


def declared_length(scope: Scope) -> int | None:
    """Return the request's Content-Length, or None when absent or malformed."""
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
def configured_limits() -> tuple[float, int]:
    """Return the request deadline and the header cap, read once per process (each worker's)."""
    from pinelab.config import Settings

    settings = Settings()
    return settings.request_timeout_seconds, settings.max_header_bytes


class HeadersTooLarge(Exception):
    """A request line and headers over the cap, found as they are parsed."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a header cap, an idle timeout and a request deadline.

    `pinelab serve` names it by import path (`PROTOCOL`), as uvicorn's worker processes need.
    The header cap is checked twice: on the bytes received while a request's headers are still
    incomplete (a slow or endless header), and on the request line and headers as the parser
    hands them over (headers that arrive whole in one read).
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
        self._header_bytes = 0
        self._in_headers = True  # until the current request's headers are complete
        self._parsed_header_bytes = 0
        self.request_timeout, self.max_header_bytes = configured_limits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the keep-alive timeout at once: a connection that sends nothing is closed."""
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the deadline with the connection."""
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse; refuse headers that grow past the cap before they are even complete."""
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._in_headers
            and self._header_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            self.send_400_response("Request header fields too large")

    def on_message_begin(self) -> None:
        """A request's first byte: it must arrive whole within the deadline."""
        super().on_message_begin()
        self._in_headers = True  # its bytes are counted since the last request completed
        self._parsed_header_bytes = 0

    def on_url(self, url: bytes) -> None:
        """Count the request line against the cap (headers complete within one read)."""
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count each header against the cap."""
        self._count_parsed(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_parsed(self, size: int) -> None:
        self._parsed_header_bytes += size
        if self._parsed_header_bytes > self.max_header_bytes:
            # Raised in a parser callback, it stops the parser: uvicorn answers 400 and closes.
            raise HeadersTooLarge
        self._stop_deadline()
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def on_headers_complete(self) -> None:
        """The headers are whole (and within the cap): the body is the body cap's business."""
        self._in_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is whole: the deadline no longer applies."""
        self._stop_deadline()
        self._in_headers, self._header_bytes = True, 0
        super().on_message_complete()

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.warning("request_too_slow", limit_seconds=self.request_timeout, client=self.client)
            self.transport.close()
