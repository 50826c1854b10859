"""Rate limits over HTTP: per address on unauthenticated endpoints (sign-in sprays included),
per account on login, per user on the API; each a 429 in the error format with Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from pinelab.config import Settings
from pinelab.main import create_app

PASSWORD = "copper-meadow-harbor-9071"


@asynccontextmanager
async def started(settings: Settings, **limits: int) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update=limits))
    async with app.router.lifespan_context(app):
        yield app


def client_from(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def assert_limited(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"] == "RateLimitExceeded"
    assert 1 <= int(answer.headers["retry-after"]) <= 60


async def test_an_address_over_its_limit_on_unauthenticated_endpoints_gets_429(
    settings: Settings,
) -> None:
    async with (
        started(settings, rate_limit_ip_per_minute=3) as app,
        client_from(app, "198.51.100.1") as noisy,
        client_from(app, "198.51.100.2") as other,
    ):
        codes = [(await noisy.get("/health/live")).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        assert_limited(await noisy.get("/health/live"))
        refused = await noisy.post("/api/v1/auth/refresh", json={"refresh_token": "x"})
        assert_limited(refused)
        assert (await other.get("/health/live")).status_code == 200


async def test_a_sign_in_spray_over_many_emails_from_one_address_is_stopped(
    settings: Settings,
) -> None:
    async with (
        started(settings, rate_limit_auth_ip_per_minute=5) as app,
        client_from(app, "198.51.100.3") as sprayer,
    ):
        codes = [
            (
                await sprayer.post(
                    "/api/v1/auth/login", json={"email": f"u{n}@example.com", "password": "x"}
                )
            ).status_code
            for n in range(5)
        ]
        assert codes == [401] * 5
        assert_limited(
            await sprayer.post(
                "/api/v1/auth/login", json={"email": "u9@example.com", "password": "x"}
            )
        )
        assert_limited(
            await sprayer.post(
                "/api/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD}
            )
        )


async def test_logins_to_one_account_from_many_addresses_are_limited_per_account(
    settings: Settings,
) -> None:
    async with started(settings, rate_limit_login_account_per_minute=3) as app:
        body = {"email": "target@example.com", "password": "wrong-password-123"}
        for n in range(3):
            async with client_from(app, f"192.0.2.{n}") as attacker:
                assert (await attacker.post("/api/v1/auth/login", json=body)).status_code == 401
        async with client_from(app, "192.0.2.99") as attacker:
            assert_limited(await attacker.post("/api/v1/auth/login", json=body))
            other = {**body, "email": "someone@example.com"}
            assert (await attacker.post("/api/v1/auth/login", json=other)).status_code == 401


async def test_a_user_over_the_api_limit_gets_429_and_others_do_not(settings: Settings) -> None:
    async with (
        started(settings, rate_limit_user_per_minute=3) as app,
        client_from(app, "198.51.100.4") as client,
    ):
        headers = []
        for email in ("busy@example.com", "calm@example.com"):
            body = {"email": email, "password": PASSWORD}
            assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201
            tokens = (await client.post("/api/v1/auth/login", json=body)).json()
            headers.append({"Authorization": f"Bearer {tokens['access_token']}"})

        codes = [
            (await client.get("/api/v1/auth/me", headers=headers[0])).status_code for _ in "abc"
        ]
        assert codes == [200, 200, 200]
        assert_limited(await client.get("/api/v1/strategies", headers=headers[0]))
        assert (await client.get("/api/v1/auth/me", headers=headers[1])).status_code == 200
