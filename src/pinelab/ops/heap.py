"""Keep what startup built out of garbage collection while a long-running process serves."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def startup_heap_frozen() -> Iterator[None]:
    """Move the objects alive now (modules, app, libraries: ~300k) out of the collector's reach.

    A full collection walks every tracked object; over the startup heap that took 60-150 ms on
    the event loop, every few seconds under load (c=64 p99 120 ms, 10 ms once frozen; see
    docs/architecture.md). Those objects live as long as the process, so collecting them is
    pointless: `gc.freeze` moves them to the permanent generation. What the process allocates
    afterwards is collected as before; leaving the block unfreezes them.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
