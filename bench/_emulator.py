"""Serve the Alpaca emulator of tests/fakes in a process of its own, for bench/latency.py.

    BENCH_ALPACA_KEYS='[["PK...", "secret"], ...]' python bench/_emulator.py READY_FILE

It listens on a free 127.0.0.1 port with no fault planned (latency 0) and ample cash, writes
its URL to READY_FILE once it listens, and serves until SIGTERM or SIGINT. Its own process, so
the benchmark's client does not share its interpreter lock. Each order it keeps has the time
it was received (`created_at`, this machine's clock), read back with GET /v2/orders. On exit
it writes how many requests it served, by method and route, to READY_FILE.requests.json.

Every key pair given is an account at this one venue (one set of books): PineLab paces each
Alpaca account to Alpaca's 200 requests a minute, so 100 alerts/s need some 50 accounts. A
layer in front of the emulator lets each pair through as the emulator's own; any other pair
gets the emulator's 401.
"""

import json
import os
import signal
import sys
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.alpaca_emulator import AlpacaEmulator
from tests.fakes.faults import BackgroundServer

KEY, SECRET = b"apca-api-key-id", b"apca-api-secret-key"


def accounts(
    app: ASGIApp, pairs: dict[str, str], own: tuple[str, str], counts: Counter[str]
) -> ASGIApp:
    """Return `app` behind a layer that presents any of `pairs` as the emulator's `own` pair,
    counting the requests by method and route (order ids left out)."""

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            counts[f"{scope['method']} {'/'.join(scope['path'].split('/')[:3])}"] += 1
            headers = dict(scope["headers"])
            key = headers.get(KEY, b"").decode()
            if key in pairs and pairs[key] == headers.get(SECRET, b"").decode():
                headers[KEY], headers[SECRET] = own[0].encode(), own[1].encode()
                scope = dict(scope, headers=list(headers.items()))
        await app(scope, receive, send)

    return layer


def serve(ready: Path) -> None:
    """Serve until told to stop."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    pairs = dict(json.loads(os.environ["BENCH_ALPACA_KEYS"]))
    own = next(iter(pairs.items()))
    emulator = AlpacaEmulator(api_key=own[0], api_secret=own[1], cash=Decimal(10) ** 12)
    counts: Counter[str] = Counter()
    server = BackgroundServer(accounts(emulator.server.app, pairs, own, counts))
    server.start()
    try:
        pending = ready.with_suffix(".tmp")
        pending.write_text(server.url)
        pending.rename(ready)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        ready.with_suffix(".requests.json").write_text(json.dumps(counts))


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
