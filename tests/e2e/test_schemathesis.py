"""Fuzz every operation of the OpenAPI document against a live server, authenticated.

Schemathesis generates valid (positive) and invalid (negative) requests from the document; no
answer may be a 5xx, and every answer must match the response schema the document declares.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from pinelab.config import Settings
from pinelab.main import create_app
from tests.conftest import BACKENDS, empty_tables_statement, pg_admin
from tests.e2e.conftest import PASSWORD
from tests.mailbox import verify_through_outbox_blocking
from tests.waiting import eventually_blocking

EXAMPLES_PER_OPERATION = 20
CHECKS = [not_a_server_error, response_schema_conformance]


def _database_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, data_dir / "pinelab.db")
        return f"sqlite+aiosqlite:///{data_dir / 'pinelab.db'}"
    url: str = request.getfixturevalue("postgres_database")
    asyncio.run(pg_admin(url, empty_tables_statement()))
    return url


@pytest.fixture(scope="module")
def fuzz_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The live server's data dir (its outbox holds the verification email)."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", params=BACKENDS)
def live_server(request: pytest.FixtureRequest, fuzz_data_dir: Path) -> Iterator[str]:
    """Serve the app with uvicorn in a thread on a free port; yield its base URL."""
    data_dir = fuzz_data_dir
    # The data dir outlives one backend: the next one's verification email must be the only one.
    shutil.rmtree(data_dir / "outbox", ignore_errors=True)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        data_dir=data_dir,
        database_url=_database_url(request, data_dir),
        secret_key="fuzz-secret-key-that-is-long-enough-for-hs256-0123456789",
        sqlite_synchronous="NORMAL",
        # Fuzzing sends far more than a person would from one address: limits are tested apart.
        rate_limit_ip_per_minute=0,
        rate_limit_auth_ip_per_minute=0,
        rate_limit_login_account_per_minute=0,
        rate_limit_user_per_minute=0,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    eventually_blocking(lambda: server.started, timeout=20, what="the server to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)
    sock.close()


@pytest.fixture(scope="module")
def bearer(live_server: str, fuzz_data_dir: Path) -> str:
    """Register and log in a user with a paper account and a strategy; return its token."""
    with httpx.Client(base_url=live_server, timeout=10) as http:
        credentials = {"email": "fuzzer@example.com", "password": PASSWORD}
        assert http.post("/api/v1/auth/register", json=credentials).status_code == 201
        verify_through_outbox_blocking(http, fuzz_data_dir / "outbox", "fuzzer@example.com")
        token = str(http.post("/api/v1/auth/login", json=credentials).json()["access_token"])
        headers = {"Authorization": f"Bearer {token}"}
        account = http.post(
            "/api/v1/broker-accounts",
            json={"kind": "paper", "label": "Fuzz", "starting_cash": "100000"},
            headers=headers,
        )
        assert account.status_code == 201, account.text
        strategy = http.post(
            "/api/v1/strategies",
            json={
                "name": "Fuzz",
                "broker_account_ids": [account.json()["id"]],
                "sizing": {"type": "fixed", "value": "1"},
            },
            headers=headers,
        )
        assert strategy.status_code == 201, strategy.text
    return token


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_5xx_or_breaks_its_response_schema(
    live_server: str, bearer: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    headers = {"Authorization": f"Bearer {bearer}"}
    failures: list[str] = []
    for operation in operations:
        if operation.path in ("/api/v1/auth/logout", "/api/v1/auth/sessions/{session_id}"):
            continue  # it would end the fuzzing user's session

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_server, headers=headers, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label  # nothing there to break
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert _answered(live_server, "/api/v1/signals", 200) > 0, "the fuzzer never got past auth"


def _answered(base_url: str, route: str, status: int) -> float:
    metrics = httpx.get(f"{base_url}/metrics", timeout=10).text
    prefix = f'pinelab_http_requests_total{{method="GET",route="{route}",status="{status}"}} '
    return sum(
        float(line.removeprefix(prefix)) for line in metrics.splitlines() if line.startswith(prefix)
    )
