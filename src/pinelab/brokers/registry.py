"""One live adapter per broker account, built on first use and closed at shutdown.

Alpaca and CCXT adapters are built with the account's credentials, decrypted from the vault
only here and only in memory. `PINELAB_BROKER_BASE_URLS` points a kind at a self-hosted
gateway (or a test emulator): `{"alpaca": "https://gw", "ccxt:cryptocom": "https://gw2"}`;
for ccxt the URL replaces the scheme and host of each of the exchange's API URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async

from pinelab.brokers.alpaca import AlpacaBroker
from pinelab.brokers.base import Broker
from pinelab.brokers.ccxt import CcxtBroker
from pinelab.brokers.credentials import BrokerCredentials, open_credentials
from pinelab.brokers.exceptions import BrokerAuthFailed, PermanentBrokerError
from pinelab.brokers.models import BrokerAccount
from pinelab.brokers.paper import PaperBroker
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.vault import UndecryptableSecret, Vault, build_vault


class CredentialsUnavailable(PermanentBrokerError):
    """The account's credentials cannot be decrypted with the configured keys."""


class BrokerRegistry:
    """Build and cache the `Broker` for each broker account."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        vault: Vault | None = None,
        build: Callable[[BrokerAccount], Broker] | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self.vault = vault or build_vault(settings)
        self.build = build or self.build_default
        self._brokers: dict[int, tuple[object, Broker]] = {}
        self._retired: list[Broker] = []
        self._lock = asyncio.Lock()

    async def get(self, account: BrokerAccount) -> Broker:
        """Return the adapter for an account, rebuilding it when the account changed."""
        version = (account.kind, account.paper, account.updated_at)
        cached = self._brokers.get(account.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        async with self._lock:
            await self._close_retired()
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
        kind, _, exchange = account.kind.partition(":")
        if kind == "paper":
            return PaperBroker(
                self._db,
                broker_account_id=account.id,
                starting_cash=account.starting_cash,
                commission_per_order=account.commission_per_order,
                slippage_bps=account.slippage_bps,
            )
        if kind == "alpaca":
            credentials = self._credentials(account)
            return AlpacaBroker(
                api_key=credentials.api_key,
                api_secret=credentials.api_secret,
                paper=account.paper,
                base_url=self._settings.broker_base_urls.get(account.kind),
            )
        if kind == "ccxt" and exchange:
            return self._build_ccxt(account, exchange)
        raise BrokerAuthFailed(f"broker kind {account.kind!r} is not supported")

    def _build_ccxt(self, account: BrokerAccount, exchange: str) -> Broker:
        credentials = self._credentials(account)
        gateway = self._settings.broker_base_urls.get(account.kind)
        return CcxtBroker(
            exchange_id=exchange,
            api_key=credentials.api_key,
            api_secret=credentials.api_secret,
            password=credentials.password,
            sandbox=account.paper,
            urls_override=ccxt_gateway_urls(exchange, gateway, sandbox=account.paper)
            if gateway
            else None,
        )

    def _credentials(self, account: BrokerAccount) -> BrokerCredentials:
        try:
            return open_credentials(self.vault, account)
        except UndecryptableSecret as exc:
            raise CredentialsUnavailable(exc.message) from None

    def forget(self, account_id: int) -> None:
        """Drop a cached adapter (the account was changed or archived); it is closed soon."""
        cached = self._brokers.pop(account_id, None)
        if cached is not None:
            self._retired.append(cached[1])

    async def close(self) -> None:
        """Close every adapter."""
        brokers, self._brokers = self._brokers, {}
        for _, broker in brokers.values():
            await broker.close()
        await self._close_retired()

    async def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for broker in retired:
            await broker.close()


def ccxt_gateway_urls(exchange_id: str, gateway: str, *, sandbox: bool) -> dict[str, Any]:
    """Return an exchange's API URLs (sandbox ones if asked) moved onto `gateway`, paths kept."""
    if exchange_id not in ccxt_async.exchanges:
        raise PermanentBrokerError(f"ccxt knows no exchange {exchange_id!r}")
    exchange: Any = getattr(ccxt_async, exchange_id)()  # describes the exchange; opens nothing
    urls = exchange.urls.get("test") if sandbox else exchange.urls.get("api")
    if isinstance(urls, dict):
        return {name: _rebased(url, gateway) for name, url in urls.items()}
    return {"api": _rebased(urls, gateway)}


def _rebased(url: Any, gateway: str) -> Any:
    if isinstance(url, dict):
        return {name: _rebased(value, gateway) for name, value in url.items()}
    if not isinstance(url, str):
        return url
    path = urlsplit(url).path
    return f"{gateway.rstrip('/')}{path}"
