"""What the ops routes need, as the composition root built it: metrics, health, the worker."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request

from pinelab.api.deps import SettingsDep
from pinelab.api.request import client_ip
from pinelab.ops.health import HealthChecker
from pinelab.ops.metrics import Metrics
from pinelab.ops.ratelimit import RateLimits


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


async def get_rate_limits(request: Request) -> RateLimits:
    """Return this process's rate limits (on Redis when configured, so shared)."""
    limits: RateLimits = request.app.state.rate_limits
    return limits


RateLimitsDep = Annotated[RateLimits, Depends(get_rate_limits)]


async def limit_by_address(request: Request, settings: SettingsDep, limits: RateLimitsDep) -> None:
    """Count a request to an unauthenticated endpoint against its client address (429 past it)."""
    address = client_ip(request, settings.trusted_proxies) or "unknown"
    await limits.address.check(address, "Too many requests from this address; try again later")


async def limit_sign_in_by_address(
    request: Request, settings: SettingsDep, limits: RateLimitsDep
) -> None:
    """Count a sign-in or sign-up against its client address, on top of `limit_by_address`."""
    address = client_ip(request, settings.trusted_proxies) or "unknown"
    await limits.sign_in_address.check(
        address, "Too many sign-in attempts from this address; try again later"
    )
