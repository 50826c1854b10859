"""Strategies over HTTP: tokens shown once, rotation, archive, isolation and validation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pinelab.strategies.models import Strategy
from pinelab.strategies.tokens import hash_token
from tests.e2e.conftest import UserFactory, error_fields

URL = "/api/v1/strategies"
ALERT = {"ticker": "AAPL", "action": "buy", "quantity": "1", "price": "190"}


async def new_account(client: httpx.AsyncClient, headers: dict[str, str], label: str = "P") -> int:
    response = await client.post(
        "/api/v1/broker-accounts", json={"kind": "paper", "label": label}, headers=headers
    )
    assert response.status_code == 201, response.text
    account_id: int = response.json()["id"]
    return account_id


def strategy_body(account_ids: list[int], **overrides: Any) -> dict[str, Any]:
    return {
        "name": "Trend",
        "broker_account_ids": account_ids,
        "sizing": {"type": "fixed", "value": "2"},
        **overrides,
    }


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], account_ids: list[int], **overrides: Any
) -> Any:
    response = await client.post(URL, json=strategy_body(account_ids, **overrides), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_token_and_webhook_url_once(
    client: httpx.AsyncClient, auth_headers: dict[str, str], app: FastAPI
) -> None:
    account_id = await new_account(client, auth_headers)

    created = await create(client, auth_headers, [account_id], passphrase="open sesame")

    token = created["token"]
    assert len(token) >= 40
    assert created["webhook_url"] == f"{app.state.settings.base_url}/webhooks/{token}"
    assert created["token_hint"] == f"{token[:6]}…"
    assert created["has_passphrase"] is True
    assert "passphrase" not in created
    fetched = await client.get(f"{URL}/{created['id']}", headers=auth_headers)
    listed = await client.get(URL, headers=auth_headers)
    for shown in (fetched.json(), listed.json()["items"][0]):
        assert "token" not in shown
        assert "webhook_url" not in shown
        assert shown["token_hint"] == created["token_hint"]
    assert token not in fetched.text + listed.text


async def test_create_stores_settings_and_only_hashes_of_secrets(
    client: httpx.AsyncClient, auth_headers: dict[str, str], app: FastAPI
) -> None:
    account_id = await new_account(client, auth_headers)

    created = await create(
        client,
        auth_headers,
        [account_id, account_id],
        sizing={"type": "percent_of_equity", "value": "2.5"},
        enabled=False,
        duplicate_window_seconds=15,
        passphrase="open sesame",
        allowed_symbols=[" aapl ", "btcusdt", "AAPL", "binance:ethusdt"],
        max_position_quantity="100",
    )

    assert created["broker_account_ids"] == [account_id]
    assert created["sizing"] == {"type": "percent_of_equity", "value": "2.5"}
    assert created["enabled"] is False
    assert created["duplicate_window_seconds"] == 15
    assert created["allowed_symbols"] == ["AAPL", "BTCUSDT", "ETHUSDT"]  # canonical tickers
    assert Decimal(created["max_position_quantity"]) == 100
    async with app.state.db.session() as session:
        row = (await session.scalars(select(Strategy))).one()
    assert row.token_hash == hash_token(created["token"])
    assert row.passphrase_hash is not None
    assert "open sesame" not in row.passphrase_hash
    stored = " ".join(str(value) for value in vars(row).values())
    assert created["token"] not in stored


async def test_a_new_strategy_takes_resends_within_a_minute_as_duplicates_by_default(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    account_id = await new_account(client, auth_headers)
    created = await create(client, auth_headers, [account_id])
    assert created["duplicate_window_seconds"] == 60


async def test_rotate_token_kills_the_old_token_at_once(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    account_id = await new_account(client, auth_headers)
    created = await create(client, auth_headers, [account_id], enabled=False)
    old = created["token"]
    # Warm the token cache with the old token: the strategy is known (disabled → 409).
    assert (await client.post(f"/webhooks/{old}", json=ALERT)).status_code == 409

    rotated = await client.post(f"{URL}/{created['id']}/rotate-token", headers=auth_headers)

    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["token"]
    assert new != old
    assert rotated.json()["webhook_url"].endswith(f"/webhooks/{new}")
    assert rotated.json()["token_hint"] == f"{new[:6]}…"
    assert (await client.post(f"/webhooks/{old}", json=ALERT)).status_code == 404
    assert (await client.post(f"/webhooks/{new}", json=ALERT)).status_code == 409
    fetched = (await client.get(f"{URL}/{created['id']}", headers=auth_headers)).json()
    assert fetched["token_hint"] == f"{new[:6]}…"
    assert "token" not in fetched


async def test_live_token_accepts_alerts(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    account_id = await new_account(client, auth_headers)
    created = await create(client, auth_headers, [account_id])

    response = await client.post(f"/webhooks/{created['token']}", json=ALERT)

    assert response.status_code == 202, response.text


async def test_patch_takes_effect_on_the_webhook_at_once(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    account_id = await new_account(client, auth_headers)
    created = await create(client, auth_headers, [account_id], enabled=False)
    webhook = f"/webhooks/{created['token']}"
    assert (await client.post(webhook, json=ALERT)).status_code == 409

    patched = await client.patch(
        f"{URL}/{created['id']}", json={"passphrase": "open sesame"}, headers=auth_headers
    )

    assert patched.json()["has_passphrase"] is True
    assert (await client.post(webhook, json=ALERT)).status_code == 401
    with_passphrase = {**ALERT, "passphrase": "open sesame"}
    assert (await client.post(webhook, json=with_passphrase)).status_code == 409
    cleared = await client.patch(
        f"{URL}/{created['id']}", json={"passphrase": None}, headers=auth_headers
    )
    assert cleared.json()["has_passphrase"] is False
    assert (await client.post(webhook, json=ALERT)).status_code == 409


async def test_patch_changes_only_what_is_given(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    first = await new_account(client, auth_headers, "First")
    second = await new_account(client, auth_headers, "Second")
    created = await create(
        client, auth_headers, [first], allowed_symbols=["AAPL"], max_position_quantity="10"
    )

    response = await client.patch(
        f"{URL}/{created['id']}",
        json={
            "name": "Renamed",
            "broker_account_ids": [second, first],
            "sizing": {"type": "notional", "value": "1000"},
            "allowed_symbols": ["msft"],
            "max_position_quantity": None,
            "duplicate_window_seconds": 30,
        },
        headers=auth_headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Renamed"
    assert body["broker_account_ids"] == sorted([first, second])
    assert body["sizing"] == {"type": "notional", "value": "1000"}
    assert body["allowed_symbols"] == ["MSFT"]
    assert body["max_position_quantity"] is None
    assert body["duplicate_window_seconds"] == 30
    assert body["enabled"] is True
    assert body["token_hint"] == created["token_hint"]
    fetched = (await client.get(f"{URL}/{created['id']}", headers=auth_headers)).json()
    assert fetched == body
    narrowed = await client.patch(
        f"{URL}/{created['id']}", json={"broker_account_ids": [second]}, headers=auth_headers
    )
    assert narrowed.json()["broker_account_ids"] == [second]


async def test_delete_archives_and_the_webhook_answers_404(
    client: httpx.AsyncClient, auth_headers: dict[str, str], app: FastAPI
) -> None:
    account_id = await new_account(client, auth_headers)
    created = await create(client, auth_headers, [account_id], enabled=False)
    assert (await client.post(f"/webhooks/{created['token']}", json=ALERT)).status_code == 409

    response = await client.delete(f"{URL}/{created['id']}", headers=auth_headers)

    assert response.status_code == 204
    assert (await client.post(f"/webhooks/{created['token']}", json=ALERT)).status_code == 404
    assert (await client.get(f"{URL}/{created['id']}", headers=auth_headers)).status_code == 404
    assert (await client.get(URL, headers=auth_headers)).json()["items"] == []
    async with app.state.db.session() as session:
        row = await session.get(Strategy, created["id"])
    assert row is not None
    assert row.archived_at is not None


async def test_list_is_newest_first_and_paginates(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    account_id = await new_account(client, auth_headers)
    ids = [(await create(client, auth_headers, [account_id], name=f"S{n}"))["id"] for n in range(3)]

    first = (await client.get(URL, params={"limit": 2}, headers=auth_headers)).json()
    second = (
        await client.get(
            URL, params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth_headers
        )
    ).json()

    assert [item["id"] for item in first["items"] + second["items"]] == list(reversed(ids))
    assert second["next_cursor"] is None


async def test_another_user_sees_404_on_every_route(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    alice = await user_factory()
    bob = await user_factory()
    created = await create(client, alice, [await new_account(client, alice)])
    path = f"{URL}/{created['id']}"

    assert (await client.get(path, headers=bob)).status_code == 404
    assert (await client.patch(path, json={"name": "x"}, headers=bob)).status_code == 404
    assert (await client.post(f"{path}/rotate-token", headers=bob)).status_code == 404
    assert (await client.delete(path, headers=bob)).status_code == 404
    assert (await client.get(URL, headers=bob)).json()["items"] == []
    still = (await client.get(path, headers=alice)).json()
    assert still["name"] == "Trend"
    assert still["token_hint"] == created["token_hint"]


async def test_cannot_bind_another_users_account_and_it_looks_nonexistent(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    alice = await user_factory()
    bob = await user_factory()
    alices_account = await new_account(client, alice)
    bobs_account = await new_account(client, bob)
    unknown = alices_account + bobs_account + 1000

    foreign = await client.post(
        URL, json=strategy_body([bobs_account, alices_account]), headers=bob
    )
    missing = await client.post(URL, json=strategy_body([bobs_account, unknown]), headers=bob)

    assert foreign.status_code == 422
    assert error_fields(foreign) == {"broker_account_ids"}
    assert foreign.json()["error"] == missing.json()["error"]
    assert foreign.json()["message"].replace(str(alices_account), "N") == missing.json()[
        "message"
    ].replace(str(unknown), "N")
    created = await create(client, bob, [bobs_account])
    patched = await client.patch(
        f"{URL}/{created['id']}", json={"broker_account_ids": [alices_account]}, headers=bob
    )
    assert patched.status_code == 422
    assert error_fields(patched) == {"broker_account_ids"}
    fetched = (await client.get(f"{URL}/{created['id']}", headers=bob)).json()
    assert fetched["broker_account_ids"] == [bobs_account]


async def test_cannot_bind_an_archived_account(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    account_id = await new_account(client, auth_headers)
    await client.delete(f"/api/v1/broker-accounts/{account_id}", headers=auth_headers)

    response = await client.post(URL, json=strategy_body([account_id]), headers=auth_headers)

    assert response.status_code == 422
    assert error_fields(response) == {"broker_account_ids"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"broker_account_ids": []}, "broker_account_ids"),
        ({"sizing": {"type": "all_in", "value": "1"}}, "sizing.type"),
        # alert-only quantity types: no default rule (a stop loss, a position to take a share of)
        ({"sizing": {"type": "risk_amount", "value": "100"}}, "sizing.type"),
        ({"sizing": {"type": "percent_of_position", "value": "50"}}, "sizing.type"),
        ({"sizing": {"type": "fixed", "value": "0"}}, "sizing.value"),
        ({"sizing": {"type": "percent_of_equity", "value": "101"}}, "sizing.value"),
        ({"sizing": {"type": "fixed", "value": "1", "x": 1}}, "sizing.x"),
        ({"duplicate_window_seconds": 86401}, "duplicate_window_seconds"),
        ({"duplicate_window_seconds": -1}, "duplicate_window_seconds"),
        ({"passphrase": "short"}, "passphrase"),
        ({"passphrase": "p" * 129}, "passphrase"),
        ({"allowed_symbols": ["AAPL", "no spaces"]}, "allowed_symbols.1"),
        ({"allowed_symbols": []}, "allowed_symbols"),
        ({"max_position_quantity": "0"}, "max_position_quantity"),
        ({"token": "chosen-by-me"}, "token"),
    ],
)
async def test_invalid_create_is_422_naming_the_field(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    overrides: dict[str, Any],
    field: str,
) -> None:
    account_id = await new_account(client, auth_headers)

    response = await client.post(
        URL, json=strategy_body([account_id], **overrides), headers=auth_headers
    )

    assert response.status_code == 422, response.text
    assert error_fields(response) == {field}
    assert (await client.get(URL, headers=auth_headers)).json()["items"] == []


async def test_missing_sizing_is_422_naming_sizing(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    body = strategy_body([await new_account(client, auth_headers)])
    del body["sizing"]

    response = await client.post(URL, json=body, headers=auth_headers)

    assert response.status_code == 422
    assert error_fields(response) == {"sizing"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"enabled": None}, "enabled"),
        ({"broker_account_ids": None}, "broker_account_ids"),
        ({"passphrase": "short"}, "passphrase"),
        ({"webhook_url": "https://example.com"}, "webhook_url"),
    ],
)
async def test_invalid_patch_is_422_naming_the_field(
    client: httpx.AsyncClient, auth_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    created = await create(client, auth_headers, [await new_account(client, auth_headers)])

    response = await client.patch(f"{URL}/{created['id']}", json=body, headers=auth_headers)

    assert response.status_code == 422
    assert error_fields(response) == {field}
