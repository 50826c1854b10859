"""The reconciliation API: users reconcile and read their own runs; admins run and read all."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import UserFactory

URL = "/api/v1/reconciliation-runs"
ADMIN_URL = "/api/v1/admin/reconciliation-runs"


async def _paper_account(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    body = {"kind": "paper", "label": "Paper", "paper": True}
    created = await client.post("/api/v1/broker-accounts", json=body, headers=headers)
    assert created.status_code == 201, created.text
    account_id: int = created.json()["id"]
    return account_id


async def test_user_reconciles_own_accounts_and_reads_the_report(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    account_id = await _paper_account(client, auth_headers)

    created = await client.post(URL, headers=auth_headers)

    assert created.status_code == 201, created.text
    run = created.json()
    assert (run["trigger"], run["status"], run["scope"]) == ("manual", "finished", "user")
    assert (run["accounts"], run["errors"], run["drift"]) == (1, 0, 0)
    assert run["details"]["accounts"][0]["broker_account_id"] == account_id
    listed = (await client.get(URL, headers=auth_headers)).json()
    assert [item["id"] for item in listed["items"]] == [run["id"]]
    shown = await client.get(f"{URL}/{run['id']}", headers=auth_headers)
    assert shown.status_code == 200
    assert shown.json() == run


async def test_one_account_run_covers_only_that_account(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    first = await _paper_account(client, auth_headers)
    await _paper_account(client, auth_headers)

    created = await client.post(URL, json={"broker_account_id": first}, headers=auth_headers)

    assert created.status_code == 201, created.text
    assert (created.json()["scope"], created.json()["accounts"]) == ("account", 1)


async def test_other_users_runs_and_accounts_are_not_found(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    owner, stranger = await user_factory(), await user_factory()
    account_id = await _paper_account(client, owner)
    run_id = (await client.post(URL, headers=owner)).json()["id"]

    assert (await client.get(f"{URL}/{run_id}", headers=stranger)).status_code == 404
    assert (await client.get(URL, headers=stranger)).json()["items"] == []
    foreign = await client.post(URL, json={"broker_account_id": account_id}, headers=stranger)
    assert foreign.status_code == 404
    assert foreign.json()["error"] == "ResourceNotFoundError"


async def test_bad_bodies_and_missing_tokens_are_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    assert (await client.post(URL)).status_code == 401
    unknown = await client.post(URL, json={"account": 1}, headers=auth_headers)
    assert unknown.status_code == 422
    negative = await client.post(URL, json={"broker_account_id": 0}, headers=auth_headers)
    assert negative.status_code == 422


async def test_only_admins_reach_the_admin_runs(
    client: httpx.AsyncClient, auth_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    await _paper_account(client, auth_headers)
    own = (await client.post(URL, headers=auth_headers)).json()

    assert (await client.get(ADMIN_URL, headers=auth_headers)).status_code == 403
    assert (await client.post(ADMIN_URL, headers=auth_headers)).status_code == 403
    everyone = await client.post(ADMIN_URL, headers=admin_headers)
    assert everyone.status_code == 201, everyone.text
    assert (everyone.json()["scope"], everyone.json()["user_id"]) == ("all", None)
    assert everyone.json()["accounts"] == 1
    listed = (await client.get(ADMIN_URL, headers=admin_headers)).json()
    assert [item["id"] for item in listed["items"]] == [everyone.json()["id"], own["id"]]
    shown = await client.get(f"{ADMIN_URL}/{own['id']}", headers=admin_headers)
    assert shown.status_code == 200
    assert (await client.get(f"{ADMIN_URL}/999999", headers=admin_headers)).status_code == 404
