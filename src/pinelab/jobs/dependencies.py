"""The jobs package's dependencies: the worker of this process."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pinelab.jobs.worker import Worker


async def get_worker(request: Request) -> Worker:
    """Return the process's worker (its job kinds' replay hooks, and the wake after a replay)."""
    worker: Worker = request.app.state.worker
    return worker


WorkerDep = Annotated[Worker, Depends(get_worker)]
