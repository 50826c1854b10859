"""Rate limits on the `limits` library: moving windows in Redis (shared) or in memory.

With `PINELAB_REDIS_URL` set every process counts in the same Redis keys, so a limit holds
across API processes and machines; without it each process counts alone, in memory. Keys are
SHA-256 digests of what they count (an email, an address, a token's strategy), so Redis never
holds them in clear. When the store cannot be reached the request is let through and a warning
logged: an outage of Redis must not take logins and alerts down with it.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from pinelab.errors import RateLimitExceeded

if TYPE_CHECKING:
    from pinelab.config import Settings

log = structlog.get_logger(__name__)

NAMESPACE = "pinelab"
ACCOUNT_EMAIL_BURST = 3


class RateLimitStore:
    """The counting store of one process: Redis when a URL is given, else memory."""

    def __init__(self, redis_url: str = "") -> None:
        storage: Storage
        if redis_url:
            storage = storage_from_string(  # type: ignore[assignment]
                f"async+{redis_url}",
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=NAMESPACE,
            )
        else:
            storage = storage_from_string("async+memory://")  # type: ignore[assignment]
        self.shared = bool(redis_url)
        self._strategy = MovingWindowRateLimiter(storage)

    def limit(self, name: str, amount: int, *, per_seconds: int = 60) -> Limit:
        """Return the limit `name`: `amount` hits per `per_seconds` for each key (0: off)."""
        return Limit(self, name, amount, per_seconds)

    async def hit(self, limit: Limit, key: str, *, count: bool = True) -> int | None:
        """Count one hit on `key` (or only look, with `count=False`); return seconds to wait
        when the limit is used up, else None."""
        item = RateLimitItemPerSecond(limit.amount, limit.per_seconds, namespace=NAMESPACE)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            allowed = await (self._strategy.hit if count else self._strategy.test)(
                item, limit.name, digest
            )
            if allowed:
                return None
            stats = await self._strategy.get_window_stats(item, limit.name, digest)
        except StorageError as exc:
            log.warning("rate_limit_store_unreachable", limit=limit.name, error=type(exc).__name__)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))


@dataclass(frozen=True)
class Limit:
    """One named limit on a store: `amount` hits per `per_seconds` for each key."""

    store: RateLimitStore
    name: str
    amount: int
    per_seconds: int = 60

    async def hit(self, key: str) -> int | None:
        """Count one hit; return seconds to wait when over the limit, else None."""
        if self.amount <= 0:
            return None
        return await self.store.hit(self, key)

    async def check(self, key: str, message: str, *, count: bool = True) -> None:
        """Count one hit (or only look, with `count=False`); raise RateLimitExceeded (429 with
        Retry-After) when the limit is used up."""
        retry_after = await self.store.hit(self, key, count=count) if self.amount > 0 else None
        if retry_after is not None:
            raise RateLimitExceeded(message, retry_after=retry_after)


@dataclass(frozen=True)
class RateLimits:
    """Every limit PineLab applies, on one store (docs/security.md lists them)."""

    store: RateLimitStore
    address: Limit  # every unauthenticated endpoint, per client address
    sign_in_address: Limit  # register, login and its second step, per client address
    login_account: Limit  # login attempts per account (email)
    user: Limit  # the authenticated API, per user
    two_factor: Limit  # 2FA codes tried, per account
    webhook_token: Limit  # alerts per webhook token (its strategy)
    webhook_bad_token: Limit  # unknown webhook tokens, per client address
    recovery_address: Limit  # verification, reset and password-change requests, per address
    account_email: Limit  # verification and reset emails asked for, per email address

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        """Build the limits the settings ask for, in Redis when a URL is set."""
        store = RateLimitStore(settings.redis_url)
        return cls(
            store=store,
            address=store.limit("address", settings.rate_limit_ip_per_minute),
            sign_in_address=store.limit("sign-in", settings.rate_limit_auth_ip_per_minute),
            login_account=store.limit("login", settings.rate_limit_login_account_per_minute),
            user=store.limit("user", settings.rate_limit_user_per_minute),
            two_factor=store.limit("2fa", settings.rate_limit_two_factor_per_minute),
            webhook_token=store.limit("webhook", settings.webhook_rate_per_minute),
            webhook_bad_token=store.limit(
                "webhook-bad-token", settings.webhook_bad_token_rate_per_minute
            ),
            recovery_address=store.limit("recovery", settings.rate_limit_recovery_ip_per_minute),
            # Three at once, then the per-minute rate on average: a window of three minutes.
            account_email=store.limit(
                "account-email",
                ACCOUNT_EMAIL_BURST * settings.rate_limit_account_email_per_minute,
                per_seconds=ACCOUNT_EMAIL_BURST * 60,
            ),
        )
