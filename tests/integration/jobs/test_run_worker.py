"""`pinelab worker` in-process: it serves with its startup heap frozen and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import os
import signal

from pinelab.config import Settings
from pinelab.main import run_worker  # bridged until the merge


async def test_the_standalone_worker_runs_with_its_startup_heap_frozen(settings: Settings) -> None:
    gc.unfreeze()
    running = asyncio.create_task(run_worker(settings))
    for _ in range(500):  # frozen once the signal handlers are in place
        if gc.get_freeze_count() or running.done():
            break
        await asyncio.sleep(0.01)
    assert gc.get_freeze_count() > 50_000
    os.kill(os.getpid(), signal.SIGTERM)  # handled by the worker's own handler
    assert await asyncio.wait_for(running, timeout=30) == 0
    assert gc.get_freeze_count() == 0
