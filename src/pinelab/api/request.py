"""Reading requests safely: a capped body and the real client address."""

from __future__ import annotations

import ipaddress

from fastapi import Request
from starlette.requests import ClientDisconnect

from pinelab.errors import BusinessLogicError


class RequestAborted(BusinessLogicError):
    """The client went away before its body arrived (answered 400, logged quietly)."""


async def read_capped_body(request: Request, cap: int) -> tuple[bytes, bool]:
    """Read at most `cap` bytes of the body; return (body, whether it was cut)."""
    try:
        return await _read(request, cap)
    except ClientDisconnect as exc:
        raise RequestAborted("The client disconnected before sending its whole body") from exc


async def _read(request: Request, cap: int) -> tuple[bytes, bool]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) <= cap:
        return await request.body(), False
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def client_ip(request: Request, trusted_proxies: list[str]) -> str | None:
    """Return the client address, believing X-Forwarded-For only from a trusted proxy."""
    peer = request.client.host if request.client else None
    if peer is None or not trusted_proxies or peer not in trusted_proxies:
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer
