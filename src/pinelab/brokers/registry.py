"""One live adapter per broker account, built on first use and closed at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pinelab.brokers.base import Broker
from pinelab.brokers.exceptions import BrokerAuthFailed
from pinelab.brokers.models import BrokerAccount
from pinelab.brokers.paper import PaperBroker
from pinelab.config import Settings
from pinelab.db import Database


class BrokerRegistry:
    """Build and cache the `Broker` for each broker account."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        build: Callable[[BrokerAccount], Broker] | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self.build = build or self.build_default
        self._brokers: dict[int, tuple[object, Broker]] = {}
        self._lock = asyncio.Lock()

    async def get(self, account: BrokerAccount) -> Broker:
        """Return the adapter for an account, rebuilding it when the account changed."""
        version = (account.kind, account.updated_at)
        cached = self._brokers.get(account.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        async with self._lock:
            cached = self._brokers.get(account.id)
            if cached is not None and cached[0] == version:
                return cached[1]
            if cached is not None:
                await cached[1].close()
            broker = self.build(account)
            self._brokers[account.id] = (version, broker)
            return broker

    def build_default(self, account: BrokerAccount) -> Broker:
        """Build the adapter for an account from its kind."""
        if account.kind == "paper":
            return PaperBroker(
                self._db,
                broker_account_id=account.id,
                starting_cash=account.starting_cash,
                commission_per_order=account.commission_per_order,
                slippage_bps=account.slippage_bps,
            )
        raise BrokerAuthFailed(f"broker kind {account.kind!r} is not supported")

    def forget(self, account_id: int) -> None:
        """Drop a cached adapter (the account was changed or archived)."""
        self._brokers.pop(account_id, None)

    async def close(self) -> None:
        """Close every adapter."""
        brokers, self._brokers = self._brokers, {}
        for _, broker in brokers.values():
            await broker.close()
