"""Helpers for the end-to-end broker tests: a user, an account and a strategy made over HTTP,
alerts sent to the webhook, and waiting for the worker to act on them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.mailbox import verify_through_outbox
from tests.waiting import eventually

API = "/api/v1"
PASSWORD = "correct-horse-battery-staple-42"
POLL_SECONDS = 20.0

_alert_ids = itertools.count(1)


@dataclass(frozen=True)
class Trader:
    """A signed-in user with one broker account bound to one strategy."""

    client: httpx.AsyncClient
    headers: dict[str, str]
    account_id: int
    strategy_id: int
    token: str

    async def get(self, path: str, **params: Any) -> Any:
        """GET an API path and return its JSON."""
        response = await self.client.get(f"{API}{path}", headers=self.headers, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def alert(self, **fields: Any) -> dict[str, Any]:
        """Send one alert to the webhook and return its signal once the worker is done with it."""
        body = {"id": f"e2e-{next(_alert_ids)}"} | fields
        response = await self.client.post(f"/webhooks/{self.token}", json=body)
        assert response.status_code == 202, response.text
        signal_id = response.json()["signal_id"]

        async def settled() -> dict[str, Any] | None:
            signal: dict[str, Any] = await self.get(f"/signals/{signal_id}")
            return signal if signal["status"] != "accepted" else None

        return await eventually(settled, timeout=POLL_SECONDS, what=f"signal {signal_id}")

    async def orders(self) -> list[dict[str, Any]]:
        """Return the trader's orders, oldest first."""
        items: list[dict[str, Any]] = (await self.get("/orders", limit=100))["items"]
        return sorted(items, key=lambda order: order["id"])

    async def positions(self) -> dict[str, dict[str, Any]]:
        """Return the trader's positions by ticker."""
        items = (await self.get("/positions"))["items"]
        return {position["ticker"]: position for position in items}


async def sign_up(client: httpx.AsyncClient, email: str, outbox: Path) -> dict[str, str]:
    """Register, verify the email (the outbox's link) and log in a user; return its headers."""
    registered = await client.post(
        f"{API}/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    await verify_through_outbox(client, outbox, email)
    login = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def trader_with(
    client: httpx.AsyncClient, account: dict[str, Any], *, outbox: Path
) -> Trader:
    """Sign up, create the broker account (body as the API takes it) and a strategy bound to it."""
    headers = await sign_up(client, "e2e-trader@example.com", outbox)
    created = await client.post(f"{API}/broker-accounts", json=account, headers=headers)
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    checked = await client.post(f"{API}/broker-accounts/{account_id}/test", headers=headers)
    assert checked.json()["ok"] is True, checked.text
    strategy = await client.post(
        f"{API}/strategies",
        json={
            "name": "End to end",
            "broker_account_ids": [account_id],
            "sizing": {"type": "fixed", "value": "1"},
        },
        headers=headers,
    )
    assert strategy.status_code == 201, strategy.text
    body = strategy.json()
    return Trader(client, headers, account_id, body["id"], body["token"])
