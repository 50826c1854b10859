"""The auth API over HTTP: register, login, me, refresh rotation, logout, and the 401s."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pinelab.clock import FrozenClock

PASSWORD = "blue-harbour-lantern-42"
ERROR_KEYS = {"error", "message", "details"}


async def register(client: httpx.AsyncClient, email: str = "trader@example.com") -> httpx.Response:
    return await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})


async def login(
    client: httpx.AsyncClient, email: str = "trader@example.com", password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def tokens_for(client: httpx.AsyncClient, email: str = "trader@example.com") -> Any:
    assert (await register(client, email)).status_code == 201
    answer = await login(client, email)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {access_token}"})


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


def assert_error(answer: httpx.Response, status: int, error: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == ERROR_KEYS
    if error is not None:
        assert body["error"] == error


async def test_register_then_login_then_me_shows_the_user(client: httpx.AsyncClient) -> None:
    registered = await register(client, "New.Trader@Example.com")
    assert registered.status_code == 201
    user = registered.json()
    assert set(user) == {"id", "email", "role", "email_verified", "created_at"}
    assert (user["email"], user["role"], user["email_verified"]) == (
        "new.trader@example.com",
        "user",
        False,
    )

    answer = await login(client, "NEW.TRADER@example.com")
    assert answer.status_code == 200
    tokens = answer.json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (tokens["token_type"], tokens["expires_in"]) == ("bearer", 900)

    mine = await me(client, tokens["access_token"])
    assert mine.status_code == 200
    assert mine.json() == user


async def test_each_user_sees_only_themselves(client: httpx.AsyncClient) -> None:
    alice = await tokens_for(client, "alice@example.com")
    bob = await tokens_for(client, "bob@example.com")
    assert (await me(client, alice["access_token"])).json()["email"] == "alice@example.com"
    assert (await me(client, bob["access_token"])).json()["email"] == "bob@example.com"


async def test_registering_a_taken_email_answers_409(client: httpx.AsyncClient) -> None:
    await register(client, "trader@example.com")
    answer = await register(client, "Trader@Example.com")
    assert_error(answer, 409, "EmailAlreadyRegistered")
    assert PASSWORD not in answer.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "trader@example.com", "password": "short"}, "password"),
        ({"email": "trader@example.com", "password": "password1234"}, "password"),
        ({"email": "trader@example.com", "password": "x" * 129}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "trader@example.com"}, "password"),
        ({"email": "trader@example.com", "password": PASSWORD, "role": "admin"}, "role"),
    ],
)
async def test_invalid_registration_answers_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    answer = await client.post("/api/v1/auth/register", json=body)
    assert_error(answer, 422)
    assert field in [detail["field"] for detail in answer.json()["details"]]
    assert (await login(client)).status_code == 401


async def test_wrong_password_and_unknown_email_get_identical_answers(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    wrong_password = await login(client, password="not-the-right-password")
    unknown_email = await login(client, email="nobody@example.com")

    assert_error(wrong_password, 401, "InvalidCredentials")
    assert wrong_password.content == unknown_email.content
    for answer in (wrong_password, unknown_email):
        assert answer.headers["www-authenticate"] == "Bearer"


async def test_eleventh_login_attempt_in_a_minute_answers_429_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    for _ in range(10):
        assert (await login(client, password="wrong-password-again")).status_code == 401

    limited = await login(client)
    assert_error(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert (await login(client, email="someone-else@example.com")).status_code == 401


async def test_refresh_rotates_tokens_and_the_new_ones_work(client: httpx.AsyncClient) -> None:
    first = await tokens_for(client)
    answer = await refresh(client, first["refresh_token"])
    assert answer.status_code == 200
    second = answer.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await me(client, second["access_token"])).status_code == 200
    assert (await refresh(client, second["refresh_token"])).status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_every_session(
    client: httpx.AsyncClient,
) -> None:
    stolen = await tokens_for(client)
    other_device = (await login(client)).json()
    legitimate = (await refresh(client, stolen["refresh_token"])).json()

    assert_error(await refresh(client, stolen["refresh_token"]), 401, "InvalidRefreshToken")

    assert_error(await refresh(client, legitimate["refresh_token"]), 401)
    assert_error(await refresh(client, other_device["refresh_token"]), 401)
    assert (await login(client)).status_code == 200


async def test_logout_ends_the_session_and_is_idempotent(client: httpx.AsyncClient) -> None:
    tokens = await tokens_for(client)
    for _ in range(2):
        answer = await client.post(
            "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
        )
        assert answer.status_code == 204
        assert answer.content == b""
    unknown = await client.post("/api/v1/auth/logout", json={"refresh_token": "never-issued"})
    assert unknown.status_code == 204
    assert_error(await refresh(client, tokens["refresh_token"]), 401)


async def test_access_token_expires_after_its_lifetime(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    tokens = await tokens_for(client)
    frozen_clock.advance(899)
    assert (await me(client, tokens["access_token"])).status_code == 200

    frozen_clock.advance(1)
    assert_error(await me(client, tokens["access_token"]), 401, "AuthenticationError")

    renewed = (await refresh(client, tokens["refresh_token"])).json()
    assert (await me(client, renewed["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic dHJhZGVyOnB3"},
        {
            "Authorization": "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
            "eyJzdWIiOiIxIiwiYXVkIjoicGluZWxhYjphY2Nlc3MiLCJpc3MiOiJwaW5lbGFiIiwiZXhwIjo5OTk5OTk5OTk5fQ."
            "c2lnbmVkLXdpdGgtYW5vdGhlci1rZXk"
        },
    ],
    ids=["missing", "empty", "garbage", "basic", "forged"],
)
async def test_missing_or_bad_bearer_answers_401_with_the_error_body(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await tokens_for(client)
    answer = await client.get("/api/v1/auth/me", headers=headers)
    assert_error(answer, 401)
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_refresh_token_is_not_accepted_as_an_access_token(
    client: httpx.AsyncClient,
) -> None:
    tokens = await tokens_for(client)
    assert_error(await me(client, tokens["refresh_token"]), 401)
    assert_error(await refresh(client, tokens["access_token"]), 401)


async def test_an_admin_marks_a_user_verified_and_others_may_not(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    registered = await register(client, "unverified@example.com")
    user_id = registered.json()["id"]
    assert registered.json()["email_verified"] is False
    token = (await login(client, "unverified@example.com")).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    refused = await client.post(f"/api/v1/admin/users/{user_id}/verify-email", headers=headers)
    assert_error(refused, 403, "AuthorizationError")

    marked = await client.post(f"/api/v1/admin/users/{user_id}/verify-email", headers=admin_headers)
    assert marked.status_code == 200, marked.text
    assert marked.json()["email_verified"] is True
    assert (await me(client, token)).json()["email_verified"] is True
    missing = await client.post("/api/v1/admin/users/999999/verify-email", headers=admin_headers)
    assert_error(missing, 404, "ResourceNotFoundError")
    too_big = await client.post(f"/api/v1/admin/users/{2**63}/verify-email", headers=admin_headers)
    assert too_big.status_code == 422
