"""Retry policy: capped exponential backoff with full jitter, honouring Retry-After.

The worker applies a policy between the attempts of a durable job. `retrying`, `retry_call`
and `retry_call_sync` apply one in place, around a single call, for sync and async functions.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar, cast, runtime_checkable

import structlog

from pinelab.brokers.exceptions import RetryableBrokerError

log = structlog.get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (RetryableBrokerError,)

AsyncSleep = Callable[[float], Awaitable[None]]
SyncSleep = Callable[[float], None]


@runtime_checkable
class RetryAfter(Protocol):
    """An error that says how long to wait before trying again (HTTP Retry-After)."""

    retry_after: float | None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a job is tried again."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 300.0

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float:
        """Return seconds to wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay

    def exhausted(self, attempt: int) -> bool:
        """Tell whether `attempt` was the last one allowed."""
        return attempt >= self.max_attempts

    def delay_after(self, attempt: int, exc: BaseException) -> float:
        """Return the wait after `exc` ended attempt `attempt`, honouring its Retry-After."""
        return self.delay(attempt, retry_after=retry_after_of(exc))


def retry_after_of(exc: BaseException) -> float | None:
    """Return the delay an error asks for (its `retry_after` attribute), if any."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


async def retry_call(
    fn: Callable[..., Awaitable[R]],
    *args: Any,
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    sleep: AsyncSleep = asyncio.sleep,
    **kwargs: Any,
) -> R:
    """Await `fn(*args, **kwargs)`, trying again on `retry_on` errors as the policy allows."""
    attempt = 1
    while True:
        try:
            return await fn(*args, **kwargs)
        except retry_on as exc:
            if policy.exhausted(attempt):
                raise
            delay = policy.delay_after(attempt, exc)
            _log_retry(fn, attempt, delay, exc)
        await sleep(delay)
        attempt += 1


def retry_call_sync(
    fn: Callable[..., R],
    *args: Any,
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    sleep: SyncSleep = time.sleep,
    **kwargs: Any,
) -> R:
    """Call `fn(*args, **kwargs)`, trying again on `retry_on` errors as the policy allows."""
    attempt = 1
    while True:
        try:
            return fn(*args, **kwargs)
        except retry_on as exc:
            if policy.exhausted(attempt):
                raise
            delay = policy.delay_after(attempt, exc)
            _log_retry(fn, attempt, delay, exc)
        sleep(delay)
        attempt += 1


def retrying(
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    *,
    sleep: AsyncSleep | SyncSleep | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Return a decorator that retries a sync or async function as the policy allows."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            async_sleep = cast(AsyncSleep, sleep or asyncio.sleep)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await retry_call(
                    fn, *args, policy=policy, retry_on=retry_on, sleep=async_sleep, **kwargs
                )

            return cast(Callable[P, R], async_wrapper)
        sync_sleep = cast(SyncSleep, sleep or time.sleep)

        @functools.wraps(fn)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return retry_call_sync(
                fn, *args, policy=policy, retry_on=retry_on, sleep=sync_sleep, **kwargs
            )

        return sync_wrapper

    return decorate


def _log_retry(fn: Callable[..., object], attempt: int, delay: float, exc: BaseException) -> None:
    name = getattr(fn, "__qualname__", repr(fn))
    log.warning(
        "call_retrying",
        call=name,
        attempt=attempt,
        delay=round(delay, 3),
        error_class=type(exc).__name__,
    )
