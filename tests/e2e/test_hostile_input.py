"""Hostile input through the API: a safe 4xx in the one error body, and nothing stored."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from pinelab.accounts.models import User
from pinelab.accounts.security import ACCESS_AUDIENCE, ALGORITHM, encode_jwt
from pinelab.config import Settings
from pinelab.db import Database

MAX_ID = 2**63 - 1


async def _users(app: FastAPI) -> int:
    db: Database = app.state.db
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


def _assert_too_large(response: httpx.Response, cap: int) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "PayloadTooLarge"
    assert str(cap) in body["message"]
    assert [d["field"] for d in body["details"]] == ["body"]
    assert response.headers["connection"] == "close"
    assert response.headers["x-request-id"]


async def test_declared_body_over_the_cap_is_413_before_it_is_read(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    cap = settings.max_body_bytes
    big = b'{"email": "big@example.com", "password": "' + b"x" * cap + b'"}'
    response = await client.post(
        "/api/v1/auth/register", content=big, headers={"content-type": "application/json"}
    )
    _assert_too_large(response, cap)
    assert await _users(app) == 0


async def test_streamed_body_over_the_cap_is_413_after_at_most_the_cap(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    cap = settings.max_body_bytes
    sent = 0
    chunk = b" " * 65536

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"email": "stream@example.com", "password": "correct-horse-battery-staple"'
        while sent < 50 * cap:  # a 50 MB body, with no Content-Length
            sent += len(chunk)
            yield chunk

    response = await client.post(
        "/api/v1/auth/login", content=endless(), headers={"content-type": "application/json"}
    )
    _assert_too_large(response, cap)
    assert sent <= cap + 2 * len(chunk)  # reading stopped at the cap, the rest never read


async def test_body_under_the_cap_reaches_validation(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    padded = b'{"email": "x", "password": "y"' + b" " * (settings.max_body_bytes - 100) + b"}"
    response = await client.post(
        "/api/v1/auth/register", content=padded, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(f"id:{MAX_ID + 1}".encode()).decode(),
        base64.urlsafe_b64encode(b"id:99999999999999999999999999").decode(),
        base64.urlsafe_b64encode(b"id:-5").decode(),
        base64.urlsafe_b64encode(b"id:0").decode(),
        "not-base64!",
    ],
)
@pytest.mark.parametrize(
    "path", ["/api/v1/signals", "/api/v1/orders", "/api/v1/strategies", "/api/v1/broker-accounts"]
)
async def test_out_of_range_cursor_is_422_naming_cursor(
    client: httpx.AsyncClient, auth_headers: dict[str, str], path: str, cursor: str
) -> None:
    response = await client.get(path, params={"cursor": cursor}, headers=auth_headers)
    assert response.status_code == 422, response.text
    assert {d["field"] for d in response.json()["details"]} == {"cursor"}


@pytest.mark.parametrize("limit", ["0", "-1", "201", "99999999999999999999999", "ten"])
async def test_out_of_range_limit_is_422_naming_limit(
    client: httpx.AsyncClient, auth_headers: dict[str, str], limit: str
) -> None:
    response = await client.get("/api/v1/signals", params={"limit": limit}, headers=auth_headers)
    assert response.status_code == 422, response.text
    assert {d["field"] for d in response.json()["details"]} == {"limit"}


@pytest.mark.parametrize("path_id", ["0", "-1", str(MAX_ID + 1), "1e3", "abc"])
async def test_out_of_range_id_is_422(
    client: httpx.AsyncClient, auth_headers: dict[str, str], path_id: str
) -> None:
    response = await client.get(f"/api/v1/signals/{path_id}", headers=auth_headers)
    assert response.status_code == 422, response.text


def _session_id(headers: dict[str, str]) -> int:
    token = headers["Authorization"].removeprefix("Bearer ")
    session_id: int = jwt.decode(token, options={"verify_signature": False})["sid"]
    return session_id


@pytest.mark.parametrize("subject", ["admin", "1.5", "", " 1", str(MAX_ID + 1), "-1"])
async def test_signed_token_whose_subject_is_not_a_user_id_is_401(
    client: httpx.AsyncClient, settings: Settings, auth_headers: dict[str, str], subject: str
) -> None:
    # The session id is a live session's: only the subject is wrong.
    token = encode_jwt(
        subject=subject,
        audience=ACCESS_AUDIENCE,
        key=str(settings.secret_key),
        ttl_seconds=300,
        claims={"sid": _session_id(auth_headers)},
    )
    response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "AuthenticationError"


async def test_signed_token_with_a_non_string_subject_is_401(
    client: httpx.AsyncClient, settings: Settings, auth_headers: dict[str, str]
) -> None:
    valid = auth_headers["Authorization"].removeprefix("Bearer ")
    assert (await client.get("/api/v1/auth/me", headers=auth_headers)).status_code == 200
    claims = jwt.decode(valid, options={"verify_signature": False})
    claims["sub"] = {"id": 1}
    token = jwt.encode(claims, str(settings.secret_key), algorithm=ALGORITHM)
    response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
