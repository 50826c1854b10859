"""Webhook tokens: generated once, stored only as a hash, looked up by that hash.

The lookup is by SHA-256 of the token through a unique index, so no comparison ever runs over
the secret itself (constant time with respect to the token). A short-lived in-process cache keeps
the database out of the hot path; changes to a strategy invalidate it locally and the TTL bounds
staleness across processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import bindparam, select

from pinelab.accounts.security import hash_opaque_token, new_opaque_token
from pinelab.brokers.models import BrokerAccount
from pinelab.db import Database
from pinelab.strategies.models import Strategy, StrategyBrokerAccount

CACHE_TTL_SECONDS = 2.0
CACHE_MAX_ENTRIES = 10_000

# A miss costs these two statements (each strategy's entry is reloaded every TTL under load).
_BY_TOKEN = select(
    Strategy.id,
    Strategy.user_id,
    Strategy.enabled,
    Strategy.passphrase_hash,
    Strategy.duplicate_window_seconds,
    Strategy.sizing_type,
    Strategy.sizing_value,
).where(Strategy.token_hash == bindparam("digest"), Strategy.archived_at.is_(None))
_ACCOUNTS = (
    select(
        BrokerAccount.id,
        BrokerAccount.kind,
        BrokerAccount.archived_at.is_(None).label("live"),
    )
    .join(StrategyBrokerAccount, StrategyBrokerAccount.broker_account_id == BrokerAccount.id)
    .where(StrategyBrokerAccount.strategy_id == bindparam("strategy_id"))
    .order_by(BrokerAccount.id)
)


# A webhook token is an opaque token like a refresh or reset token: one definition of how one
# is made and of the only form in which it is stored.
new_token = new_opaque_token
hash_token = hash_opaque_token


def hash_passphrase(passphrase: str, *, key: str) -> str:
    """Return the stored (keyed) form of a passphrase: a database dump cannot test guesses."""
    return hmac.new(key.encode(), passphrase.encode(), hashlib.sha256).hexdigest()


def passphrase_matches(passphrase: str | None, stored: str, *, key: str) -> bool:
    """Check a passphrase against its stored form in constant time."""
    if passphrase is None:
        return False
    return hmac.compare_digest(hash_passphrase(passphrase, key=key), stored)


@dataclass(frozen=True)
class StrategySnapshot:
    """What ingestion needs to know about a strategy, cached briefly."""

    id: int
    user_id: int
    enabled: bool
    passphrase_hash: str | None
    duplicate_window_seconds: int
    broker_account_ids: tuple[int, ...]
    sizing_type: str
    sizing_value: Decimal
    # (id, kind) of each bound account still live: what the door checks an alert against.
    live_accounts: tuple[tuple[int, str], ...] = ()


class TokenDirectory:
    """Find strategies by webhook token, with a small TTL cache (negative answers included)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[str, tuple[float, StrategySnapshot | None]] = {}
        # One query per token at a time: concurrent misses wait for the same answer.
        self._loading: dict[str, asyncio.Future[StrategySnapshot | None]] = {}
        self._generation = 0

    async def lookup(self, token: str) -> StrategySnapshot | None:
        """Return the live strategy a token names, or None."""
        digest = hash_token(token)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        loading = self._loading.get(digest)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[StrategySnapshot | None] = asyncio.get_running_loop().create_future()
        self._loading[digest] = future
        generation = self._generation
        try:
            snapshot = await self._load(digest)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, an unwatched future stays quiet
            raise
        finally:
            del self._loading[digest]
        future.set_result(snapshot)
        if generation == self._generation:  # not invalidated while loading
            if len(self._cache) >= CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (time.monotonic() + CACHE_TTL_SECONDS, snapshot)
        return snapshot

    def invalidate(self) -> None:
        """Forget every cached answer (a strategy changed in this process)."""
        self._generation += 1
        self._cache.clear()

    async def _load(self, digest: str) -> StrategySnapshot | None:
        async with self._db.session() as session:
            row = (await session.execute(_BY_TOKEN, {"digest": digest})).one_or_none()
            if row is None:
                return None
            rows = (await session.execute(_ACCOUNTS, {"strategy_id": row.id})).all()
            return StrategySnapshot(
                **row._asdict(),
                broker_account_ids=tuple(each.id for each in rows),
                live_accounts=tuple((each.id, each.kind) for each in rows if each.live),
            )
