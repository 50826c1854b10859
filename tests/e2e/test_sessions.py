"""Sessions over HTTP: the list (device, address, begun, last used), revoking one, and access
tokens that stop at once when their session is revoked or their user disabled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pinelab.accounts.models import User
from pinelab.clock import FrozenClock

PASSWORD = "amber-quarry-signal-5120"


async def login(client: httpx.AsyncClient, email: str, device: str) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"User-Agent": device},
    )
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


async def sign_up(client: httpx.AsyncClient, email: str = "sessions@example.com") -> None:
    answer = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def listed(client: httpx.AsyncClient, tokens: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/auth/sessions", headers=bearer(tokens))
    assert answer.status_code == 200, answer.text
    sessions: list[dict[str, Any]] = answer.json()
    return sessions


async def test_sessions_list_device_address_and_times_and_mark_the_current_one(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    await sign_up(client)
    laptop = await login(client, "sessions@example.com", "Firefox on Linux")
    frozen_clock.advance(600)
    phone = await login(client, "sessions@example.com", "Safari on iPhone")

    sessions = await listed(client, laptop)

    assert [s["device"] for s in sessions] == ["Safari on iPhone", "Firefox on Linux"]
    assert {s["ip_address"] for s in sessions} == {"203.0.113.7"}
    assert [s["current"] for s in sessions] == [False, True]
    assert set(sessions[0]) == {
        "id",
        "device",
        "ip_address",
        "created_at",
        "last_used_at",
        "current",
    }
    assert datetime.fromisoformat(sessions[0]["created_at"]) == frozen_clock.now()
    assert [s["current"] for s in await listed(client, phone)] == [True, False]


async def test_last_used_moves_with_use_and_created_stays_across_refresh(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    await sign_up(client)
    signed_in = frozen_clock.now()
    tokens = await login(client, "sessions@example.com", "curl")
    frozen_clock.advance(120)
    (first,) = await listed(client, tokens)
    assert datetime.fromisoformat(first["last_used_at"]) == frozen_clock.now()

    frozen_clock.advance(300)
    renewed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    (after,) = await listed(client, renewed.json())
    assert datetime.fromisoformat(after["created_at"]) == signed_in
    assert datetime.fromisoformat(after["last_used_at"]) == frozen_clock.now()


async def test_revoking_a_session_stops_its_access_and_refresh_tokens_at_once(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)
    kept = await login(client, "sessions@example.com", "laptop")
    lost = await login(client, "sessions@example.com", "stolen phone")
    lost_id = next(s["id"] for s in await listed(client, kept) if s["device"] == "stolen phone")

    revoked = await client.delete(f"/api/v1/auth/sessions/{lost_id}", headers=bearer(kept))

    assert revoked.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(lost))).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer(kept))).status_code == 200
    assert [s["device"] for s in await listed(client, kept)] == ["laptop"]
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": lost["refresh_token"]}
    )
    assert refreshed.status_code == 401
    # A revoked refresh token coming back is treated as a stolen one: every session ends.
    assert (await client.get("/api/v1/auth/me", headers=bearer(kept))).status_code == 401


async def test_a_session_of_someone_else_or_none_answers_404(client: httpx.AsyncClient) -> None:
    await sign_up(client, "alice@example.com")
    await sign_up(client, "bob@example.com")
    alice = await login(client, "alice@example.com", "a")
    bob = await login(client, "bob@example.com", "b")
    (bobs,) = await listed(client, bob)

    for session_id in (bobs["id"], 999_999):
        answer = await client.delete(f"/api/v1/auth/sessions/{session_id}", headers=bearer(alice))
        assert answer.status_code == 404, answer.text
    assert (await client.get("/api/v1/auth/me", headers=bearer(bob))).status_code == 200
    too_big = await client.delete(f"/api/v1/auth/sessions/{2**70}", headers=bearer(alice))
    assert too_big.status_code == 422


async def test_a_disabled_user_is_refused_at_the_next_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await sign_up(client)
    tokens = await login(client, "sessions@example.com", "laptop")
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens))).status_code == 200
    async with app.state.db.transaction() as session:
        user = (await session.execute(select(User))).scalar_one()
        user.is_active = False

    answer = await client.get("/api/v1/auth/me", headers=bearer(tokens))
    assert answer.status_code == 401
    assert answer.json()["error"] == "AuthenticationError"


async def test_logout_stops_the_sessions_access_token(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    tokens = await login(client, "sessions@example.com", "laptop")
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens))).status_code == 401
