"""Fault injection for broker emulators: a plan of scheduled faults, an ASGI layer that applies
them, and a uvicorn server on 127.0.0.1 that a test can stop (connections refused) and restart.

A fault is written as data, e.g. `{"kind": "status", "status": 429, "retry_after": 2,
"count": 1, "path_prefix": "/v2/orders"}`. Kinds:

- `latency`: wait `delay` seconds, then answer normally.
- `status`: answer `status` at once with a JSON error body (and Retry-After when given);
  the request never reaches the venue.
- `timeout`: answer nothing for `delay` seconds, then drop the connection. With
  `when="before"` the venue never sees the request; with `when="after"` it has processed it.
- `drop_response_after_accept`: let the venue process the request (an order is stored),
  then close the connection without answering.
- `refuse`: stop listening, so connections are refused, until the plan is cleared.

Each fault applies to the next `count` requests whose path starts with `path_prefix` (and
whose method is `method`, when given), in the order the faults were added.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["latency", "refuse", "status", "timeout", "drop_response_after_accept"]
KINDS: frozenset[str] = frozenset(
    {"latency", "refuse", "status", "timeout", "drop_response_after_accept"}
)


@dataclass
class Fault:
    """One scheduled fault."""

    kind: FaultKind
    count: int = 1
    path_prefix: str = ""
    method: str | None = None
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    when: Literal["before", "after"] = "before"
    body: Mapping[str, Any] | None = None

    def matches(self, method: str, path: str) -> bool:
        """Tell whether the fault applies to a request."""
        if self.count <= 0 or not path.startswith(self.path_prefix):
            return False
        return self.method is None or self.method.upper() == method.upper()


class FaultPlan:
    """The faults scheduled for a server; safe to change from the test while it serves."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.refusal_listener: Callable[[bool], None] | None = None

    def add(self, kind: FaultKind, **options: Any) -> Fault:
        """Schedule one fault and return it."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(kind=kind, **options)
        with self._lock:
            self._faults.append(fault)
        if kind == "refuse" and self.refusal_listener is not None:
            self.refusal_listener(True)
        return fault

    def extend(self, specs: Iterable[Mapping[str, Any]]) -> list[Fault]:
        """Schedule faults written as dicts ({"kind": ..., ...})."""
        return [self.add(**dict(spec)) for spec in specs]

    def take(self, method: str, path: str) -> Fault | None:
        """Consume and return the first fault that applies to a request."""
        with self._lock:
            for fault in self._faults:
                if fault.kind != "refuse" and fault.matches(method, path):
                    fault.count -= 1
                    return fault
        return None

    @property
    def pending(self) -> list[Fault]:
        """Return the faults that still have requests left to spoil."""
        with self._lock:
            return [fault for fault in self._faults if fault.count > 0]

    def clear(self) -> None:
        """Drop every fault; a refusing server listens again."""
        with self._lock:
            refusing = any(fault.kind == "refuse" for fault in self._faults)
            self._faults.clear()
        if refusing and self.refusal_listener is not None:
            self.refusal_listener(False)


class FaultInjector:
    """An ASGI layer that applies a FaultPlan before (or after) the venue app sees a request."""

    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a request, spoiled by the first fault that applies to it."""
        fault = None
        if scope["type"] == "http":
            fault = self.plan.take(scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.kind == "latency":
            await asyncio.sleep(fault.delay)
            await self.app(scope, receive, send)
        elif fault.kind == "status":
            await _answer(send, fault)
        elif fault.kind == "timeout":
            if fault.when == "after":
                await self.app(scope, receive, _discard)
            await asyncio.sleep(fault.delay)
            await _hang_up(send)
        else:
            await self.app(scope, receive, _discard)
            await _hang_up(send)


async def _discard(message: Message) -> None:
    """Swallow the venue's answer: the client will never get it."""


async def _answer(send: Send, fault: Fault) -> None:
    body = dict(fault.body or {"code": fault.status * 100_000, "message": _reason(fault.status)})
    headers = [(b"content-type", b"application/json")]
    if fault.retry_after is not None:
        headers.append((b"retry-after", str(fault.retry_after).encode()))
    await send({"type": "http.response.start", "status": fault.status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _reason(status: int) -> str:
    return "rate limit exceeded" if status == 429 else f"injected fault {status}"


async def _hang_up(send: Send) -> None:
    """Close the client's connection without a word (needs uvicorn's protocol object)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("hanging up needs a uvicorn server (h11 or httptools)")
    transport.close()
    await asyncio.sleep(0.05)  # let uvicorn see the disconnect before the app returns


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class BackgroundServer:
    """Serve an ASGI app (behind a FaultInjector) with uvicorn in a thread on 127.0.0.1."""

    def __init__(self, app: ASGIApp, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.plan.refusal_listener = self._on_refusal
        self.app = FaultInjector(app, self.plan)
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the base URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Tell whether the server is listening."""
        return self._server is not None

    def start(self) -> None:
        """Listen on the server's port (again, after a stop)."""
        if self._server is not None:
            return
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            http="h11",
            ws="none",
            lifespan="off",
            loop="asyncio",
            log_level="critical",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"emulator-{self.port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"emulator could not start on port {self.port}")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop listening: new connections are refused."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=10)

    def _on_refusal(self, refusing: bool) -> None:
        if refusing:
            self.stop()
        else:
            self.start()
