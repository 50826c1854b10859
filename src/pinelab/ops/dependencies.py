"""What the ops routes need, as the composition root built it: metrics, health, the worker."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request

from pinelab.ops.health import HealthChecker
from pinelab.ops.metrics import Metrics


class WorkerStatus(Protocol):
    """Whether this process's worker runs (the admin health detail shows it)."""

    @property
    def running(self) -> bool:
        """Tell whether the worker's loops run in this process."""
        ...


async def get_metrics(request: Request) -> Metrics:
    """Return this process's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_health_checker(request: Request) -> HealthChecker:
    """Return this process's health checker (it caches and shares probe runs)."""
    checker: HealthChecker = request.app.state.health
    return checker


async def get_worker_status(request: Request) -> WorkerStatus:
    """Return this process's worker, to tell whether it runs."""
    worker: WorkerStatus = request.app.state.worker
    return worker


MetricsDep = Annotated[Metrics, Depends(get_metrics)]
HealthDep = Annotated[HealthChecker, Depends(get_health_checker)]
WorkerStatusDep = Annotated[WorkerStatus, Depends(get_worker_status)]
