"""Reading requests safely: a capped body and the real client address.

The body is read from the raw ASGI `receive`, so a route can stop reading at its cap instead of
buffering whatever the client sends.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request
from starlette.types import Receive

from pinelab.errors import BusinessLogicError


class RequestAborted(BusinessLogicError):
    """The client went away before its body arrived (answered 400, logged quietly)."""


async def receive_capped_body(receive: Receive, cap: int) -> tuple[bytes, bool]:
    """Read at most `cap` bytes of the body from ASGI `receive`; return (body, whether it was cut).

    Reading stops at the cap: the rest is never buffered.
    """
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the whole body in one message: the usual case
        return (body[:cap], True) if len(body) > cap else (body, False)
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":  # http.disconnect
            raise RequestAborted("The client disconnected before sending its whole body")
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
        if not message.get("more_body", False):
            return b"".join(chunks), False
        message = await receive()


def client_ip(request: Request, trusted_proxies: list[str]) -> str | None:
    """Return the client address, believing X-Forwarded-For only from a trusted proxy."""
    peer = request.client.host if request.client else None
    return resolve_client_ip(peer, request.headers.get("x-forwarded-for"), trusted_proxies)


def resolve_client_ip(
    peer: str | None, forwarded_for: str | None, trusted_proxies: list[str]
) -> str | None:
    """Return the client address from the peer and its X-Forwarded-For header."""
    if peer is None or not trusted_proxies or peer not in trusted_proxies:
        return peer
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer
