"""Garbage collection tuned for a long-running server process while it serves."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

# Allocations between young collections, then young collections per older one (defaults 700,
# 10, 10). Measured at c=64 (bench/README.md): with the defaults, ~125 young collections a
# second took ~3 % of the event loop's time by their own clock; at 20,000 the ratio to the
# baseline went up by 0.02-0.05 in each of three alternating runs, with the same p99.
SERVING_THRESHOLDS: Final = (20_000, 20, 10)


@contextmanager
def startup_heap_frozen() -> Iterator[None]:
    """Serve with the startup heap out of the collector's reach and young collections rarer.

    The objects alive now (modules, app, libraries: ~300k) live as long as the process, so
    collecting them is pointless, and a full collection walked them on the event loop for
    60-150 ms every few seconds under load (c=64 p99 120 ms, 10 ms once frozen): `gc.freeze`
    moves them to the permanent generation. What the process allocates afterwards is collected
    as before, only less often (`SERVING_THRESHOLDS`): a request's objects mostly die by
    reference counting, so each young collection mostly walks the requests still in flight.
    Leaving the block unfreezes the heap and restores the thresholds.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
