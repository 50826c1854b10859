"""`pinelab worker` in-process: it serves with its startup heap frozen and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import os
import signal

from pinelab.config import Settings
from pinelab.main import run_worker
from tests.waiting import eventually


async def test_the_standalone_worker_runs_with_its_startup_heap_frozen(settings: Settings) -> None:
    gc.unfreeze()
    running = asyncio.create_task(run_worker(settings))
    # frozen once the signal handlers are in place
    await eventually(
        lambda: gc.get_freeze_count() or running.done(), what="the worker to freeze its heap"
    )
    assert gc.get_freeze_count() > 50_000
    os.kill(os.getpid(), signal.SIGTERM)  # handled by the worker's own handler
    assert await asyncio.wait_for(running, timeout=30) == 0
    assert gc.get_freeze_count() == 0
