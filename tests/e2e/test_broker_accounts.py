"""Broker accounts over HTTP: create, list, read, change, archive, isolation and validation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pinelab.brokers.models import BrokerAccount, PaperAccount
from pinelab.trading.models import Order
from tests.e2e.conftest import UserFactory, error_fields

URL = "/api/v1/broker-accounts"


def paper(**overrides: Any) -> dict[str, Any]:
    """Return a valid paper-account body with some fields replaced."""
    return {"kind": "paper", "label": "Paper 1", "paper": True, **overrides}


async def create(client: httpx.AsyncClient, headers: dict[str, str], **overrides: Any) -> Any:
    response = await client.post(URL, json=paper(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_applies_defaults_and_returns_decimals_as_strings(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    body = await create(client, auth_headers, label="  Main paper  ")

    assert body["kind"] == "paper"
    assert body["label"] == "Main paper"
    assert body["paper"] is True
    assert Decimal(body["starting_cash"]) == Decimal(100000)
    assert Decimal(body["commission_per_order"]) == 0
    assert Decimal(body["slippage_bps"]) == 0
    assert "credentials_encrypted" not in body


async def test_create_keeps_exact_decimals(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    body = await create(
        client,
        auth_headers,
        starting_cash="2500.55",
        commission_per_order="0.35",
        slippage_bps=12.5,
    )

    fetched = (await client.get(f"{URL}/{body['id']}", headers=auth_headers)).json()
    assert Decimal(fetched["starting_cash"]) == Decimal("2500.55")
    assert Decimal(fetched["commission_per_order"]) == Decimal("0.35")
    assert Decimal(fetched["slippage_bps"]) == Decimal("12.5")


async def test_requests_without_a_token_are_refused(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 401
    assert (await client.post(URL, json=paper())).status_code == 401


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "ibkr"}, "kind"),
        ({"kind": 7}, "kind"),
        ({"label": ""}, "label"),
        ({"label": "x" * 101}, "label"),
        ({"starting_cash": "0"}, "starting_cash"),
        ({"starting_cash": "-5"}, "starting_cash"),
        ({"starting_cash": "NaN"}, "starting_cash"),
        ({"commission_per_order": "-0.01"}, "commission_per_order"),
        ({"slippage_bps": "1000.01"}, "slippage_bps"),
        ({"slippage_bps": -1}, "slippage_bps"),
        ({"paper": False}, "paper"),
        ({"api_key": "nope"}, "api_key"),
    ],
)
async def test_invalid_create_is_422_naming_the_field(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    overrides: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(URL, json=paper(**overrides), headers=auth_headers)

    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert error_fields(response) == {field}
    assert (await client.get(URL, headers=auth_headers)).json()["items"] == []


async def test_missing_kind_is_422_naming_kind(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.post(URL, json={"label": "No kind"}, headers=auth_headers)

    assert response.status_code == 422
    assert error_fields(response) == {"kind"}
    assert "paper" in response.json()["details"][0]["message"]


async def test_list_is_newest_first_and_paginates(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    ids = [(await create(client, auth_headers, label=f"A{n}"))["id"] for n in range(5)]

    first = (await client.get(URL, params={"limit": 2}, headers=auth_headers)).json()
    second = (
        await client.get(
            URL, params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth_headers
        )
    ).json()
    third = (
        await client.get(
            URL, params={"limit": 2, "cursor": second["next_cursor"]}, headers=auth_headers
        )
    ).json()

    seen = [item["id"] for page in (first, second, third) for item in page["items"]]
    assert seen == list(reversed(ids))
    assert third["next_cursor"] is None


async def test_bad_cursor_is_422_naming_cursor(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.get(URL, params={"cursor": "garbage!"}, headers=auth_headers)

    assert response.status_code == 422
    assert error_fields(response) == {"cursor"}


async def test_patch_changes_label_and_costs_only(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    account = await create(client, auth_headers, commission_per_order="1")

    response = await client.patch(
        f"{URL}/{account['id']}",
        json={"label": "Renamed", "slippage_bps": "5"},
        headers=auth_headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == "Renamed"
    assert Decimal(body["slippage_bps"]) == 5
    assert Decimal(body["commission_per_order"]) == 1
    fetched = (await client.get(f"{URL}/{account['id']}", headers=auth_headers)).json()
    assert fetched == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": None}, "label"),
        ({"kind": "paper"}, "kind"),
        ({"commission_per_order": "-1"}, "commission_per_order"),
        ({"slippage_bps": 5000}, "slippage_bps"),
    ],
)
async def test_invalid_patch_is_422_naming_the_field(
    client: httpx.AsyncClient, auth_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    account = await create(client, auth_headers)

    response = await client.patch(f"{URL}/{account['id']}", json=body, headers=auth_headers)

    assert response.status_code == 422
    assert error_fields(response) == {field}


async def test_starting_cash_changes_while_no_orders_and_resets_paper_cash(
    client: httpx.AsyncClient, auth_headers: dict[str, str], app: FastAPI
) -> None:
    account = await create(client, auth_headers)
    async with app.state.db.transaction() as session:
        session.add(PaperAccount(broker_account_id=account["id"], cash=Decimal(100000)))

    response = await client.patch(
        f"{URL}/{account['id']}", json={"starting_cash": "5000"}, headers=auth_headers
    )

    assert response.status_code == 200, response.text
    assert Decimal(response.json()["starting_cash"]) == 5000
    async with app.state.db.session() as session:
        paper_account = await session.get(PaperAccount, account["id"])
    assert paper_account is not None
    assert paper_account.cash == Decimal(5000)


async def test_starting_cash_cannot_change_once_the_account_has_orders(
    client: httpx.AsyncClient, auth_headers: dict[str, str], app: FastAPI
) -> None:
    account = await create(client, auth_headers)
    await _place_order_record(app, account["id"])

    response = await client.patch(
        f"{URL}/{account['id']}",
        json={"starting_cash": "5000", "label": "Should not stick"},
        headers=auth_headers,
    )

    assert response.status_code == 409
    assert error_fields(response) == {"starting_cash"}
    fetched = (await client.get(f"{URL}/{account['id']}", headers=auth_headers)).json()
    assert Decimal(fetched["starting_cash"]) == 100000
    assert fetched["label"] == "Paper 1"
    relabel = await client.patch(
        f"{URL}/{account['id']}", json={"label": "ok"}, headers=auth_headers
    )
    assert relabel.status_code == 200


async def test_delete_archives_hides_and_keeps_the_row(
    client: httpx.AsyncClient, auth_headers: dict[str, str], app: FastAPI
) -> None:
    kept = await create(client, auth_headers, label="Kept")
    gone = await create(client, auth_headers, label="Gone")
    await _place_order_record(app, gone["id"])

    response = await client.delete(f"{URL}/{gone['id']}", headers=auth_headers)

    assert response.status_code == 204
    assert response.content == b""
    listed = (await client.get(URL, headers=auth_headers)).json()["items"]
    assert [item["id"] for item in listed] == [kept["id"]]
    assert (await client.get(f"{URL}/{gone['id']}", headers=auth_headers)).status_code == 404
    assert (await client.delete(f"{URL}/{gone['id']}", headers=auth_headers)).status_code == 404
    async with app.state.db.session() as session:
        row = await session.get(BrokerAccount, gone["id"])
        orders = (await session.scalars(select(Order))).all()
    assert row is not None
    assert row.archived_at is not None
    assert len(orders) == 1


async def test_delete_unbinds_the_account_from_strategies(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    first = await create(client, auth_headers, label="First")
    second = await create(client, auth_headers, label="Second")
    strategy = await client.post(
        "/api/v1/strategies",
        json={
            "name": "Both",
            "broker_account_ids": [first["id"], second["id"]],
            "sizing": {"type": "fixed", "value": "1"},
        },
        headers=auth_headers,
    )
    assert strategy.status_code == 201, strategy.text

    await client.delete(f"{URL}/{first['id']}", headers=auth_headers)

    fetched = await client.get(f"/api/v1/strategies/{strategy.json()['id']}", headers=auth_headers)
    assert fetched.json()["broker_account_ids"] == [second["id"]]


async def test_another_user_sees_404_and_changes_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    alice = await user_factory()
    bob = await user_factory()
    account = await create(client, alice)
    path = f"{URL}/{account['id']}"

    assert (await client.get(path, headers=bob)).status_code == 404
    assert (await client.patch(path, json={"label": "mine"}, headers=bob)).status_code == 404
    assert (await client.delete(path, headers=bob)).status_code == 404
    assert (await client.get(URL, headers=bob)).json()["items"] == []
    missing = await client.get(f"{URL}/999999", headers=bob)
    assert missing.status_code == 404
    assert missing.json()["error"] == (await client.get(path, headers=bob)).json()["error"]
    assert (await client.get(path, headers=alice)).json()["label"] == "Paper 1"


async def _place_order_record(app: FastAPI, broker_account_id: int) -> None:
    async with app.state.db.transaction() as session:
        account = await session.get(BrokerAccount, broker_account_id)
        assert account is not None
        session.add(
            Order(
                user_id=account.user_id,
                broker_account_id=broker_account_id,
                client_order_id=f"test-{broker_account_id}",
                ticker="AAPL",
                symbol="AAPL",
                side="buy",
                order_type="market",
                time_in_force="day",
                quantity=Decimal(1),
                status="new",
            )
        )
