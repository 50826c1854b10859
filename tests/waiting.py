"""Wait for a condition with a deadline, never for a fixed time: the one way tests synchronise."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL = 0.02


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,
    what: str = "the condition",
) -> T:
    """Return the first truthy value of `condition()` (sync or async); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(INTERVAL)


def eventually_blocking(
    condition: Callable[[], T], *, timeout: float = 10.0, what: str = "the condition"
) -> T:
    """`eventually` for synchronous tests and fixtures: block the thread between looks."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(INTERVAL)
    return value
