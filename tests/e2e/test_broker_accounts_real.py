"""Alpaca and CCXT broker accounts over HTTP: write-only credentials, encrypted at rest, checked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text, update
from structlog.testing import capture_logs

from pinelab.brokers.models import BrokerAccount
from pinelab.config import Settings
from pinelab.db import Database
from tests.e2e.conftest import UserFactory, error_fields
from tests.fakes.alpaca_emulator import AlpacaEmulator
from tests.fakes.alpaca_emulator import running_emulator as running_alpaca
from tests.fakes.ccxt_emulator import CryptocomEmulator
from tests.fakes.ccxt_emulator import running_emulator as running_cryptocom

URL = "/api/v1/broker-accounts"
ALPACA_KEY = "PKDISTINCTIVEKEY7Q3Z"
ALPACA_SECRET = "zebra-quartz-0wl-SECRET-5d8f1a2b3c4d"
OKX_SECRET = "okx-api-secret-never-in-clear-77aa"
OKX_PASSWORD = "okx-passphrase-never-in-clear-91"


@pytest.fixture
def alpaca() -> Iterator[AlpacaEmulator]:
    with running_alpaca() as emulator:
        yield emulator


@pytest.fixture
def cryptocom() -> Iterator[CryptocomEmulator]:
    with running_cryptocom() as emulator:
        yield emulator


@pytest.fixture
def settings(settings: Settings, alpaca: AlpacaEmulator, cryptocom: CryptocomEmulator) -> Settings:
    """The test settings, with Alpaca and Crypto.com reached at their emulators."""
    gateways = {"alpaca": alpaca.url, "ccxt:cryptocom": cryptocom.url}
    return settings.model_copy(update={"broker_base_urls": gateways})


def alpaca_body(emulator: AlpacaEmulator | None = None, **overrides: Any) -> dict[str, Any]:
    credentials = {
        "api_key": emulator.api_key if emulator else ALPACA_KEY,
        "api_secret": emulator.api_secret if emulator else ALPACA_SECRET,
    }
    return {"kind": "alpaca", "label": "Alpaca paper", "credentials": credentials} | overrides


def cryptocom_body(emulator: CryptocomEmulator, **overrides: Any) -> dict[str, Any]:
    credentials = {"api_key": emulator.api_key, "api_secret": emulator.api_secret}
    return {
        "kind": "ccxt",
        "label": "Crypto.com sandbox",
        "exchange": "cryptocom",
        "credentials": credentials,
    } | overrides


def okx_body() -> dict[str, Any]:
    credentials = {"api_key": "okx-key-1234", "api_secret": OKX_SECRET, "password": OKX_PASSWORD}
    return {"kind": "ccxt", "label": "OKX", "exchange": "okx", "credentials": credentials}


async def create(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> Any:
    response = await client.post(URL, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_alpaca_account_is_created_without_calling_alpaca_and_shows_only_a_hint(
    client: httpx.AsyncClient, auth_headers: dict[str, str], alpaca: AlpacaEmulator
) -> None:
    body = await create(client, auth_headers, alpaca_body())

    assert alpaca.requests == []
    assert (body["kind"], body["exchange"], body["paper"]) == ("alpaca", None, True)
    assert body["credentials_hint"] == "…" + ALPACA_KEY[-4:]
    assert "credentials" not in body
    assert ALPACA_KEY not in json.dumps(body)


async def test_ccxt_account_is_shown_as_kind_ccxt_with_its_exchange(
    client: httpx.AsyncClient, auth_headers: dict[str, str], cryptocom: CryptocomEmulator
) -> None:
    created = await create(client, auth_headers, cryptocom_body(cryptocom))

    fetched = (await client.get(f"{URL}/{created['id']}", headers=auth_headers)).json()
    listed = (await client.get(URL, headers=auth_headers)).json()["items"]
    assert (fetched["kind"], fetched["exchange"], fetched["paper"]) == ("ccxt", "cryptocom", True)
    assert listed == [fetched]
    assert cryptocom.requests == []


async def test_raw_database_holds_no_credential_in_clear(
    client: httpx.AsyncClient, auth_headers: dict[str, str], app: FastAPI, settings: Settings
) -> None:
    await create(client, auth_headers, alpaca_body())
    await create(client, auth_headers, okx_body())
    secrets = [ALPACA_KEY, ALPACA_SECRET, OKX_SECRET, OKX_PASSWORD]

    db: Database = app.state.db
    if settings.is_sqlite:
        database_file = Path(db.engine.url.database or "")
        raw = b"".join(
            path.read_bytes()
            for path in (database_file, Path(f"{database_file}-wal"))
            if path.exists()
        )
        assert b"broker_account" in raw  # the test does read the database
    else:
        async with db.session() as session:
            rows = await session.execute(text("SELECT row_to_json(b)::text FROM broker_account b"))
            raw = "\n".join(row[0] for row in rows).encode()
        assert b"v1:" in raw
    for secret in secrets:
        assert secret.encode() not in raw, f"{secret} found in the database"


async def test_no_answer_and_no_log_line_carries_a_secret(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    alpaca: AlpacaEmulator,
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    with capture_logs() as logs:
        created = await client.post(URL, json=alpaca_body(alpaca), headers=auth_headers)
        account = f"{URL}/{created.json()['id']}"
        answers.append(created.text)
        answers.append((await client.post(URL, json=okx_body(), headers=auth_headers)).text)
        answers.append((await client.get(URL, headers=auth_headers)).text)
        answers.append((await client.get(account, headers=auth_headers)).text)
        answers.append((await client.post(f"{account}/test", headers=auth_headers)).text)
        bad = alpaca_body(credentials={"api_key": "short", "api_secret": ALPACA_SECRET})
        answers.append((await client.post(URL, json=bad, headers=auth_headers)).text)
        rejected = {"credentials": {"api_key": ALPACA_KEY, "api_secret": "x"}}
        answers.append((await client.patch(account, json=rejected, headers=auth_headers)).text)

    printed = capfd.readouterr()
    seen = "\n".join([*answers, repr(logs), caplog.text, printed.out, printed.err])
    assert json.loads(answers[4])["ok"] is True
    assert "/broker-accounts" in seen  # the requests were logged, and the log was read
    for secret in (alpaca.api_secret, ALPACA_SECRET, OKX_SECRET, OKX_PASSWORD):
        assert secret not in seen


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (alpaca_body(credentials={"api_key": "PK12", "api_secret": ALPACA_SECRET}),
         "credentials.api_key"),
        (alpaca_body(credentials={"api_key": ALPACA_KEY, "api_secret": "too-short"}),
         "credentials.api_secret"),
        (alpaca_body(credentials={"api_key": "AKLIVEKEY000000001", "api_secret": ALPACA_SECRET}),
         "credentials"),
        (alpaca_body(paper=False), "credentials"),
        (alpaca_body(credentials={"api_key": ALPACA_KEY}), "credentials.api_secret"),
        (alpaca_body(starting_cash="1000"), "starting_cash"),
        ({"kind": "alpaca", "label": "No credentials"}, "credentials"),
        (okx_body() | {"exchange": "nasdaq"}, "exchange"),
        (okx_body() | {"credentials": {"api_key": "k", "api_secret": OKX_SECRET}},
         "credentials"),
        (okx_body() | {"exchange": "kraken"}, "paper"),
        (okx_body() | {"credentials": {"api_key": "", "api_secret": OKX_SECRET}},
         "credentials.api_key"),
    ],
)  # fmt: skip
async def test_invalid_real_account_is_422_naming_the_field_and_never_echoing_it(
    client: httpx.AsyncClient, auth_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await client.post(URL, json=body, headers=auth_headers)

    assert response.status_code == 422, response.text
    assert error_fields(response) == {field}
    assert ALPACA_SECRET not in response.text
    assert OKX_SECRET not in response.text
    assert (await client.get(URL, headers=auth_headers)).json()["items"] == []


async def test_live_account_at_an_exchange_without_sandbox_is_accepted(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    body = await create(client, auth_headers, okx_body() | {"exchange": "kraken", "paper": False})

    assert (body["kind"], body["exchange"], body["paper"]) == ("ccxt", "kraken", False)


async def test_credentials_are_replaced_through_patch_and_used_by_the_next_check(
    client: httpx.AsyncClient, auth_headers: dict[str, str], alpaca: AlpacaEmulator
) -> None:
    wrong = alpaca_body(credentials={"api_key": ALPACA_KEY, "api_secret": ALPACA_SECRET})
    account = await create(client, auth_headers, wrong)
    path = f"{URL}/{account['id']}"
    before = (await client.post(f"{path}/test", headers=auth_headers)).json()

    new = {"api_key": alpaca.api_key, "api_secret": alpaca.api_secret}
    patched = await client.patch(path, json={"credentials": new}, headers=auth_headers)
    after = (await client.post(f"{path}/test", headers=auth_headers)).json()

    assert (before["ok"], before["error"]) == (False, "BrokerAuthFailed")
    assert patched.status_code == 200, patched.text
    assert patched.json()["credentials_hint"] == "…" + alpaca.api_key[-4:]
    assert after["ok"] is True, after


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("alpaca", {"credentials": {"api_key": "PK1", "api_secret": ALPACA_SECRET}},
         "credentials.api_key"),
        ("alpaca", {"credentials": {"api_key": ALPACA_KEY, "api_secret": ALPACA_SECRET,
                                    "password": "x"}}, "credentials.password"),
        ("alpaca", {"starting_cash": "5000"}, "starting_cash"),
        ("alpaca", {"credentials": None}, "credentials"),
        ("okx", {"credentials": {"api_key": "k", "api_secret": "s"}}, "credentials"),
        ("paper", {"credentials": {"api_key": ALPACA_KEY, "api_secret": ALPACA_SECRET}},
         "credentials"),
    ],
)  # fmt: skip
async def test_invalid_credentials_change_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    kind: str,
    change: dict[str, Any],
    field: str,
) -> None:
    bodies = {
        "alpaca": alpaca_body(),
        "okx": okx_body(),
        "paper": {"kind": "paper", "label": "Paper"},
    }
    account = await create(client, auth_headers, bodies[kind])
    path = f"{URL}/{account['id']}"

    response = await client.patch(path, json=change, headers=auth_headers)

    assert response.status_code == 422, response.text
    assert error_fields(response) == {field}
    assert (await client.get(path, headers=auth_headers)).json() == account


async def test_connectivity_check_passes_against_alpaca_and_a_ccxt_sandbox(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    alpaca: AlpacaEmulator,
    cryptocom: CryptocomEmulator,
) -> None:
    for body in (alpaca_body(alpaca), cryptocom_body(cryptocom), {"kind": "paper", "label": "P"}):
        account = await create(client, auth_headers, body)
        response = await client.post(f"{URL}/{account['id']}/test", headers=auth_headers)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["ok"] is True, result
        assert result["error"] is None
        assert result["latency_ms"] >= 0
    assert alpaca.requests
    assert ("POST", "private/user-balance") in cryptocom.requests


async def test_connectivity_check_says_the_broker_is_unreachable(
    client: httpx.AsyncClient, auth_headers: dict[str, str], alpaca: AlpacaEmulator
) -> None:
    account = await create(client, auth_headers, alpaca_body(alpaca))
    alpaca.server.stop()

    result = (await client.post(f"{URL}/{account['id']}/test", headers=auth_headers)).json()

    assert (result["ok"], result["error"], result["retryable"]) == (
        False,
        "BrokerUnavailable",
        True,
    )
    assert "could not reach Alpaca" in result["message"]


async def test_an_exchanges_raw_error_body_never_reaches_the_answer(
    client: httpx.AsyncClient, auth_headers: dict[str, str], cryptocom: CryptocomEmulator
) -> None:
    wrong = {"api_key": cryptocom.api_key, "api_secret": "not-the-secret-0123456789abcdef"}
    account = await create(client, auth_headers, cryptocom_body(cryptocom, credentials=wrong))

    response = await client.post(f"{URL}/{account['id']}/test", headers=auth_headers)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["ok"], result["error"]) == (False, "BrokerAuthFailed")
    assert result["message"] == (
        "cryptocom: the exchange refused the API key or its signature (AuthenticationError)"
    )
    for raw in ("40101", "UNAUTHORIZED", "private/user-balance", '"code"'):
        assert raw not in response.text


async def test_credentials_moved_to_another_account_cannot_be_decrypted_409(
    client: httpx.AsyncClient, auth_headers: dict[str, str], app: FastAPI, alpaca: AlpacaEmulator
) -> None:
    first = await create(client, auth_headers, alpaca_body(alpaca))
    second = await create(client, auth_headers, alpaca_body(alpaca, label="Second"))
    db = app.state.db
    async with db.session() as session:
        stolen = (await session.get_one(BrokerAccount, first["id"])).credentials_encrypted
    async with db.transaction() as session:
        await session.execute(
            update(BrokerAccount)
            .where(BrokerAccount.id == second["id"])
            .values(credentials_encrypted=stolen)
        )

    response = await client.post(f"{URL}/{second['id']}/test", headers=auth_headers)

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "ConflictError"
    assert "cannot be decrypted with the configured keys" in response.json()["message"]


async def test_another_users_account_cannot_be_checked(
    client: httpx.AsyncClient, user_factory: UserFactory, alpaca: AlpacaEmulator
) -> None:
    owner, stranger = await user_factory(), await user_factory()
    account = await create(client, owner, alpaca_body(alpaca))

    response = await client.post(f"{URL}/{account['id']}/test", headers=stranger)

    assert response.status_code == 404
    assert alpaca.requests == []
