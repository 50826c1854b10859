"""Dependencies of the jobs routes: the worker this process built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pinelab.jobs.worker import Worker


async def get_worker(request: Request) -> Worker:
    """Return the worker built at startup (whether or not its loops run in this process)."""
    worker: Worker = request.app.state.worker
    return worker


WorkerDep = Annotated[Worker, Depends(get_worker)]
