"""In-process token-bucket rate limits (per strategy, per source address)."""

from __future__ import annotations

import math
import time


class RateLimiter:
    """A token bucket per key: `rate_per_minute` sustained, `burst` at once; 0 disables it."""

    def __init__(
        self, rate_per_minute: int, *, burst: int | None = None, max_keys: int = 100_000
    ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, rate_per_minute // 6))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def hit(self, key: str) -> int | None:
        """Take one token for `key`; return seconds to wait when none is left, else None."""
        if self.rate <= 0:
            return None
        moment = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, moment))
        tokens = min(self.burst, tokens + (moment - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, moment)
            return max(1, math.ceil((1 - tokens) / self.rate))
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1, moment)
        return None
