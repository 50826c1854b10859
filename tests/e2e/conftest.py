"""HTTP fixtures: users registered and logged in through the API, an admin among them."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from pinelab.accounts.models import User
from pinelab.db import Database
from pinelab.notify.email import OUTBOX_DIR
from tests.factories import Seeded, seed_strategy
from tests.mailbox import verify_through_outbox

PASSWORD = "correct-horse-battery-staple-42"

UserFactory = Callable[[], Awaitable[dict[str, str]]]

_emails = itertools.count(1)


@pytest.fixture
def user_factory(app: FastAPI, client: httpx.AsyncClient) -> UserFactory:
    """Return a function that registers a new user, verifies its email (the link in the
    outbox's email), logs it in and returns its auth headers."""
    outbox = app.state.settings.data_dir / OUTBOX_DIR

    async def create_user() -> dict[str, str]:
        email = f"trader{next(_emails)}@example.com"
        registered = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        await verify_through_outbox(client, outbox, email)
        login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['access_token']}"}

    return create_user


@pytest.fixture
async def auth_headers(user_factory: UserFactory) -> dict[str, str]:
    """Auth headers of a freshly registered, logged-in user."""
    return await user_factory()


@pytest.fixture
async def admin_headers(
    app: FastAPI, client: httpx.AsyncClient, user_factory: UserFactory
) -> dict[str, str]:
    """Auth headers of a freshly registered user made an admin."""
    headers = await user_factory()
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    db: Database = app.state.db
    async with db.transaction() as session:
        user = await session.get(User, me.json()["id"])
        assert user is not None
        user.role = "admin"
    return headers


def error_fields(response: httpx.Response) -> set[str]:
    """Return the fields a 422 answer names."""
    return {detail["field"] for detail in response.json()["details"]}


@pytest.fixture
async def seeded(app: FastAPI) -> Seeded:
    """A user with a paper account and a strategy bound to it, seeded in the app's database."""
    return await seed_strategy(app.state.db)
