"""Retry policy: capped exponential backoff with full jitter, honouring Retry-After.

The worker applies a policy between the attempts of a durable job.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


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

    def delay_after(self, attempt: int, exc: BaseException) -> float:
        """Return the wait after `exc` ended attempt `attempt`, honouring its Retry-After."""
        return self.delay(attempt, retry_after=retry_after_of(exc))


def retry_after_of(exc: BaseException) -> float | None:
    """Return the delay an error asks for (its `retry_after` attribute), if any."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
