"""The startup heap is kept out of garbage collection while a process serves, and only then."""

from __future__ import annotations

import gc

import pytest

from pinelab.ops.heap import SERVING_THRESHOLDS, startup_heap_frozen


def test_objects_alive_at_entry_are_frozen_and_unfrozen_on_exit() -> None:
    gc.unfreeze()
    kept = [object() for _ in range(10)]  # lists are tracked by the collector
    with startup_heap_frozen():
        assert gc.get_freeze_count() > len(kept)
        assert not any(obj is kept for obj in gc.get_objects())  # no longer walked
        later: list[object] = []
        assert any(obj is later for obj in gc.get_objects())  # new objects still are
    assert gc.get_freeze_count() == 0


def test_young_collections_are_rarer_while_serving_and_restored_after() -> None:
    before = gc.get_threshold()
    with startup_heap_frozen():
        assert gc.get_threshold() == SERVING_THRESHOLDS
        assert SERVING_THRESHOLDS[0] > before[0]
    assert gc.get_threshold() == before


def test_an_error_inside_still_unfreezes() -> None:
    gc.unfreeze()
    with pytest.raises(RuntimeError), startup_heap_frozen():
        raise RuntimeError("the server failed")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() != SERVING_THRESHOLDS
