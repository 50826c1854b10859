"""HTTP fixtures: users registered and logged in through the API."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import httpx
import pytest

PASSWORD = "correct-horse-battery-staple-42"

UserFactory = Callable[[], Awaitable[dict[str, str]]]

_emails = itertools.count(1)


@pytest.fixture
def user_factory(client: httpx.AsyncClient) -> UserFactory:
    """Return a function that registers and logs in a new user and returns its auth headers."""

    async def create_user() -> dict[str, str]:
        email = f"trader{next(_emails)}@example.com"
        registered = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['access_token']}"}

    return create_user


@pytest.fixture
async def auth_headers(user_factory: UserFactory) -> dict[str, str]:
    """Auth headers of a freshly registered, logged-in user."""
    return await user_factory()
