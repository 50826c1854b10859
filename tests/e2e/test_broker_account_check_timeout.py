"""POST /broker-accounts/{id}/test against a broker that takes the connection and never answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from pinelab.brokers import service
from pinelab.config import Settings

URL = "/api/v1/broker-accounts"


@pytest.fixture
def silent_host() -> Iterator[str]:
    """A host whose port takes connections into its backlog and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def settings(settings: Settings, silent_host: str) -> Settings:
    """The test settings, with Alpaca reached at the silent host."""
    return settings.model_copy(update={"broker_base_urls": {"alpaca": silent_host}})


async def test_a_broker_that_never_answers_is_reported_as_a_retryable_timeout(
    client: httpx.AsyncClient, auth_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "CHECK_TIMEOUT_SECONDS", 0.25)
    body = {
        "kind": "alpaca",
        "label": "Alpaca paper",
        "credentials": {"api_key": "PKSILENTHOST000001", "api_secret": "silent-secret-0123456789"},
    }
    created = await client.post(URL, json=body, headers=auth_headers)
    assert created.status_code == 201, created.text

    response = await client.post(f"{URL}/{created.json()['id']}/test", headers=auth_headers)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["ok"], result["error"], result["retryable"]) == (False, "Timeout", True)
    assert result["message"] == "no answer within 0.25 s"
    assert result["latency_ms"] >= 250
