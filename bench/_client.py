"""A minimal HTTP/1.1 alert sender on asyncio streams: a paced stream and a burst.

Keep-alive connections, one request at a time on each. httpx took ~3.9 ms of CPU per request on
a slow VM, three quarters of a core at 200 alerts/s, taken from the server it measured on a
2-core machine; this takes ~0.7 ms.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from _common import describe_ms, percentiles


@dataclass
class Sent:
    """One alert: when it was due (paced) or written (burst), when answered, and the answer."""

    index: int
    sent: float  # time.perf_counter()
    answered: float
    status: int  # 0: no answer

    @property
    def latency_ms(self) -> float:
        """Return the time to the answer in ms."""
        return (self.answered - self.sent) * 1000


def alert(alert_id: str) -> bytes:
    """Return a canonical alert with a distinct id and a price (so a paper market order fills)."""
    body = {
        "ticker": "AAPL",
        "action": "buy",
        "quantity": 1,
        "price": 190.25,
        "id": alert_id,
        "time": "2026-01-02T15:30:00Z",
    }
    return json.dumps(body).encode()


@dataclass
class Answers:
    """What the client saw: answers by status code, latency of the 202s, the slowest of all."""

    sent: int
    codes: dict[int, int]
    latency_ms: dict[str, float]
    slowest_ms: float
    seconds: float | None = None  # from the first request written to the last answer

    @property
    def accepted(self) -> int:
        """Return how many were answered 202."""
        return self.codes.get(202, 0)

    def describe(self) -> str:
        """Summarise on a line."""
        took = f" in {self.seconds:.2f} s" if self.seconds is not None else ""
        return (
            f"{self.sent} sent{took}, answers {self.codes}, slowest {self.slowest_ms:.1f} ms, "
            f"202s: {describe_ms(self.latency_ms)}"
        )


def summary(sent: Sequence[Sent], seconds: float | None = None) -> Answers:
    """Return what the client saw of these alerts."""
    codes: dict[int, int] = {}
    for one in sent:
        codes[one.status] = codes.get(one.status, 0) + 1
    accepted = [one.latency_ms for one in sent if one.status == 202]
    slowest = round(max((one.latency_ms for one in sent), default=0.0), 2)
    return Answers(len(sent), codes, percentiles(accepted), slowest, seconds)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class Sender:
    """Keep-alive connections to one server; POSTs alerts to /webhooks/<token>."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[_Connection] = []

    async def open(self, count: int) -> None:
        """Open `count` connections ahead (a burst then starts on all of them at once)."""
        self.idle.extend(await asyncio.gather(*(self._connect() for _ in range(count))))

    async def post(self, index: int, token: str, alert_id: str, sent: float | None = None) -> Sent:
        """Post one alert; `sent` is when it was due (default: now)."""
        body = alert(alert_id)
        request = (
            f"POST /webhooks/{token} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        started = time.perf_counter() if sent is None else sent
        # Oldest idle connection first, so none sits unused long enough for the server to close it.
        connection = self.idle.pop(0) if self.idle else None
        try:
            if connection is not None:
                try:
                    status = await self._exchange(connection, request)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                        raise
                    # Closed by the server while idle, before it read this request: a new one.
                    connection.writer.close()
                    connection = None
            if connection is None:
                connection = await self._connect()
                status = await self._exchange(connection, request)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            if connection is not None:
                connection.writer.close()  # in an unknown state: not reused
            return Sent(index, started, time.perf_counter(), 0)
        self.idle.append(connection)
        return Sent(index, started, time.perf_counter(), status)

    def close(self) -> None:
        """Close the idle connections."""
        for connection in self.idle:
            connection.writer.close()
        self.idle.clear()

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(reader, writer)

    async def _exchange(self, connection: _Connection, request: bytes) -> int:
        connection.writer.write(request)
        return await asyncio.wait_for(_read_answer(connection.reader), timeout=10.0)


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 answer with a Content-Length; return its status."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    for line in head.split("\r\n"):
        if line.lower().startswith("content-length:"):
            await reader.readexactly(int(line.split(":", 1)[1]))
            return status
    raise ValueError("an answer without Content-Length")


def send_paced(
    base_url: str, tokens: Sequence[str], rate: float, duration: float, tag: str
) -> list[Sent]:
    """Send `rate` alerts/s for `duration` s on a fixed schedule (open loop), tokens in turn.

    A slow answer does not delay the next alert: each is sent when due, on an idle connection
    or a new one. Latency is measured from when the alert was due.
    """

    async def stream() -> list[Sent]:
        sender = Sender(base_url)
        start = time.perf_counter() + 0.2
        tasks = []
        try:
            for index in range(int(rate * duration)):
                due = start + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                token = tokens[index % len(tokens)]
                post = sender.post(index, token, f"paced-{tag}-{index}", sent=due)
                tasks.append(asyncio.create_task(post))
            return list(await asyncio.gather(*tasks))
        finally:
            sender.close()

    return asyncio.run(stream())


def send_burst(
    base_url: str, tokens: Sequence[str], count: int, connections: int, tag: str
) -> tuple[list[Sent], float]:
    """Send `count` alerts as fast as answers come, over `connections` connections opened ahead.

    Alerts go to the tokens in turn. Return each alert's record and the seconds from the first
    request written to the last answer.
    """

    async def burst() -> tuple[list[Sent], float]:
        sender = Sender(base_url)
        await sender.open(connections)
        indexes = iter(range(count))
        results: list[Sent] = []

        async def connection() -> None:
            for index in indexes:
                token = tokens[index % len(tokens)]
                results.append(await sender.post(index, token, f"burst-{tag}-{index}"))

        started = time.perf_counter()
        try:
            await asyncio.gather(*(connection() for _ in range(connections)))
        finally:
            sender.close()
        return sorted(results, key=lambda one: one.index), time.perf_counter() - started

    return asyncio.run(burst())
