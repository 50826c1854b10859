"""TOTP 2FA over HTTP: setup, enable, the login challenge, replay and drift, backup codes,
throttling, disable, and the admins' requirement. The test plays the authenticator app: it
reads the secret from the otpauth URI, as a phone scanning the QR code would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy import func, select

from pinelab.accounts.models import User
from pinelab.accounts.two_factor_models import LoginChallenge, TwoFactor
from pinelab.clock import FrozenClock
from pinelab.config import Settings
from pinelab.jobs.models import Job
from pinelab.main import PRUNE_LOGIN_CHALLENGES, create_app, encrypted_columns
from pinelab.vault import EncryptionKey
from pinelab.vault.cipher import key_id_of
from pinelab.vault.rotation import rotate_secrets

PASSWORD = "violet-canyon-ledger-7731"
EMAIL = "two.factor@example.com"
ERROR_KEYS = {"error", "message", "details"}

pytestmark = pytest.mark.usefixtures("frozen_clock")


class Phone:
    """The authenticator app: codes of the secret it scanned, at the test's clock."""

    def __init__(self, otpauth_uri: str, clock: FrozenClock) -> None:
        self.totp = pyotp.TOTP(parse_qs(urlsplit(otpauth_uri).query)["secret"][0])
        self.clock = clock

    def code(self, *, offset_steps: int = 0) -> str:
        return self.totp.at(self.clock.now() + timedelta(seconds=30 * offset_steps))


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def sign_up(client: httpx.AsyncClient, email: str = EMAIL) -> dict[str, str]:
    registered = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    return bearer((await login(client, email)).json())


async def login(client: httpx.AsyncClient, email: str = EMAIL) -> httpx.Response:
    answer = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return answer


async def second_step(client: httpx.AsyncClient, challenge: str, code: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login/2fa", json={"challenge": challenge, "code": code})


async def challenge_of(client: httpx.AsyncClient, email: str = EMAIL) -> str:
    body = (await login(client, email)).json()
    assert body["two_factor_required"] is True
    assert "access_token" not in body
    return str(body["challenge"])


async def turn_on(
    client: httpx.AsyncClient, headers: dict[str, str], clock: FrozenClock
) -> tuple[Phone, list[str]]:
    setup = await client.post("/api/v1/auth/2fa/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    phone = Phone(setup.json()["otpauth_uri"], clock)
    enabled = await client.post(
        "/api/v1/auth/2fa/enable", json={"code": phone.code()}, headers=headers
    )
    assert enabled.status_code == 200, enabled.text
    clock.advance(30)  # the enabling code's step is spent
    return phone, enabled.json()["backup_codes"]


def assert_error(answer: httpx.Response, status: int, error: str) -> None:
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == ERROR_KEYS
    assert answer.json()["error"] == error


async def test_setup_answers_an_otpauth_uri_and_a_locally_made_qr_svg(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    setup = await client.post("/api/v1/auth/2fa/setup", headers=headers)

    assert setup.status_code == 200
    assert setup.headers["cache-control"] == "no-store"
    uri = urlsplit(setup.json()["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert uri.path == "/PineLab:two.factor%40example.com"
    assert parse_qs(uri.query)["issuer"] == ["PineLab"]
    assert setup.json()["qr_svg"].startswith("<svg")
    assert "<path" in setup.json()["qr_svg"]
    # Not on until a code proves the app has the secret: login still answers tokens.
    assert "access_token" in (await login(client)).json()


async def test_enable_answers_ten_backup_codes_then_login_needs_the_second_step(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, backup_codes = await turn_on(client, headers, frozen_clock)

    assert len(backup_codes) == len(set(backup_codes)) == 10
    challenge = await challenge_of(client)
    answer = await second_step(client, challenge, phone.code())
    assert answer.status_code == 200, answer.text
    me = await client.get("/api/v1/auth/me", headers=bearer(answer.json()))
    assert me.json()["email"] == EMAIL


async def test_enable_refuses_a_wrong_code_and_needs_setup_first(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    before_setup = await client.post(
        "/api/v1/auth/2fa/enable", json={"code": "123456"}, headers=headers
    )
    assert_error(before_setup, 409, "TwoFactorStateConflict")
    setup = await client.post("/api/v1/auth/2fa/setup", headers=headers)
    phone = Phone(setup.json()["otpauth_uri"], frozen_clock)
    wrong = str((int(phone.code()) + 1) % 1_000_000).zfill(6)

    refused = await client.post("/api/v1/auth/2fa/enable", json={"code": wrong}, headers=headers)

    assert_error(refused, 422, "InvalidTwoFactorCode")
    assert refused.json()["details"][0]["field"] == "code"
    assert "access_token" in (await login(client)).json()
    again = await client.post("/api/v1/auth/2fa/setup", headers=headers)
    assert again.status_code == 200  # still pending: a new secret may be asked for


async def test_a_code_is_accepted_once_and_an_older_one_never_after_a_newer(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, _ = await turn_on(client, headers, frozen_clock)
    code = phone.code()
    assert (await second_step(client, await challenge_of(client), code)).status_code == 200

    replayed = await second_step(client, await challenge_of(client), code)
    assert_error(replayed, 422, "InvalidTwoFactorCode")
    earlier = await second_step(client, await challenge_of(client), phone.code(offset_steps=-1))
    assert_error(earlier, 422, "InvalidTwoFactorCode")
    frozen_clock.advance(30)
    assert (await second_step(client, await challenge_of(client), phone.code())).status_code == 200


async def test_one_step_of_clock_drift_is_allowed_either_way_and_no_more(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, _ = await turn_on(client, headers, frozen_clock)
    frozen_clock.advance(120)
    for offset in (-2, 2):
        far = await second_step(client, await challenge_of(client), phone.code(offset_steps=offset))
        assert_error(far, 422, "InvalidTwoFactorCode")

    behind = await second_step(client, await challenge_of(client), phone.code(offset_steps=-1))
    ahead = await second_step(client, await challenge_of(client), phone.code(offset_steps=1))
    assert (behind.status_code, ahead.status_code) == (200, 200)


async def test_a_backup_code_logs_in_once(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    _, backup_codes = await turn_on(client, headers, frozen_clock)

    used = await second_step(client, await challenge_of(client), backup_codes[0].upper())
    assert used.status_code == 200, used.text
    again = await second_step(client, await challenge_of(client), backup_codes[0])
    assert_error(again, 422, "InvalidTwoFactorCode")
    other = await second_step(client, await challenge_of(client), backup_codes[1].replace("-", ""))
    assert other.status_code == 200


async def test_a_challenge_is_single_use_and_expires(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, backup_codes = await turn_on(client, headers, frozen_clock)
    challenge = await challenge_of(client)
    assert (await second_step(client, challenge, phone.code())).status_code == 200

    reused = await second_step(client, challenge, backup_codes[0])
    assert_error(reused, 401, "InvalidLoginChallenge")
    stale = await challenge_of(client)
    frozen_clock.advance(301)
    assert_error(await second_step(client, stale, phone.code()), 401, "InvalidLoginChallenge")
    forged = await second_step(client, "not-a-challenge", phone.code())
    assert_error(forged, 401, "InvalidLoginChallenge")


async def test_wrong_codes_use_up_the_challenge_then_the_account_is_throttled(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, _ = await turn_on(client, headers, frozen_clock)
    challenge = await challenge_of(client)
    wrong = str((int(phone.code()) + 1) % 1_000_000).zfill(6)
    for _ in range(5):
        assert_error(await second_step(client, challenge, wrong), 422, "InvalidTwoFactorCode")

    assert_error(await second_step(client, challenge, phone.code()), 401, "InvalidLoginChallenge")
    throttled = await second_step(client, await challenge_of(client), phone.code())
    assert_error(throttled, 429, "RateLimitExceeded")
    assert int(throttled.headers["retry-after"]) >= 1


async def test_disable_needs_a_valid_code_then_login_answers_tokens_again(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    _, backup_codes = await turn_on(client, headers, frozen_clock)

    refused = await client.post(
        "/api/v1/auth/2fa/disable", json={"code": "000000"}, headers=headers
    )
    assert_error(refused, 422, "InvalidTwoFactorCode")
    disabled = await client.post(
        "/api/v1/auth/2fa/disable", json={"code": backup_codes[3]}, headers=headers
    )
    assert disabled.status_code == 204
    assert "access_token" in (await login(client)).json()
    again = await client.post("/api/v1/auth/2fa/disable", json={"code": "000000"}, headers=headers)
    assert_error(again, 409, "TwoFactorStateConflict")


async def test_regenerated_backup_codes_replace_the_old_ones(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, old_codes = await turn_on(client, headers, frozen_clock)
    by_backup_code = await client.post(
        "/api/v1/auth/2fa/backup-codes", json={"code": old_codes[0]}, headers=headers
    )
    assert_error(by_backup_code, 422, "InvalidTwoFactorCode")  # a TOTP code is asked for

    fresh = await client.post(
        "/api/v1/auth/2fa/backup-codes", json={"code": phone.code()}, headers=headers
    )
    assert fresh.status_code == 200
    new_codes = fresh.json()["backup_codes"]
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    stale = await second_step(client, await challenge_of(client), old_codes[1])
    assert_error(stale, 422, "InvalidTwoFactorCode")
    assert (await second_step(client, await challenge_of(client), new_codes[1])).status_code == 200


async def test_setup_is_refused_while_2fa_is_on_and_codes_are_validated(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    await turn_on(client, headers, frozen_clock)
    assert_error(
        await client.post("/api/v1/auth/2fa/setup", headers=headers), 409, "TwoFactorStateConflict"
    )
    malformed = await client.post(
        "/api/v1/auth/2fa/disable", json={"code": "12ab<script>"}, headers=headers
    )
    assert_error(malformed, 422, "ValidationError")
    assert malformed.json()["details"][0]["field"] == "code"
    anonymous = await client.post("/api/v1/auth/2fa/setup")
    assert_error(anonymous, 401, "AuthenticationError")


async def test_the_secret_is_sealed_and_no_secret_or_code_is_logged_or_shown_again(
    app: FastAPI, client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    answers: list[str] = []
    with structlog.testing.capture_logs() as logs:
        headers = await sign_up(client)
        setup = await client.post("/api/v1/auth/2fa/setup", headers=headers)
        phone = Phone(setup.json()["otpauth_uri"], frozen_clock)
        secret = phone.totp.secret
        code = phone.code()
        enabled = await client.post("/api/v1/auth/2fa/enable", json={"code": code}, headers=headers)
        backup_codes = enabled.json()["backup_codes"]
        frozen_clock.advance(30)
        challenge = await challenge_of(client)
        second = await second_step(client, challenge, phone.code())
        answers += [second.text, (await client.get("/api/v1/auth/me", headers=headers)).text]
        answers.append((await client.get("/api/v1/auth/sessions", headers=headers)).text)

    logged = repr(logs)
    for secret_text in (secret, code, challenge, *backup_codes):
        assert secret_text not in logged
        assert all(secret_text not in answer for answer in answers)
    async with app.state.db.session() as session:
        row = (await session.execute(select(TwoFactor))).scalar_one()
    assert row.secret_encrypted.startswith("v1:")
    assert secret not in row.secret_encrypted


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            setattr(http, "app", application)  # noqa: B010 - the test reaches the database
            yield http


async def test_admins_must_turn_2fa_on_when_the_setting_requires_it(
    settings: Settings, frozen_clock: FrozenClock
) -> None:
    required = settings.model_copy(update={"require_2fa_for_admins": True})
    async with app_client(required) as client:
        headers = await sign_up(client)
        async with client.app.state.db.transaction() as session:  # type: ignore[attr-defined]
            user = (await session.execute(select(User))).scalar_one()
            user.role = "admin"

        blocked = await client.get("/api/v1/admin/health", headers=headers)
        assert_error(blocked, 403, "TwoFactorRequired")
        assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
        phone, _ = await turn_on(client, headers, frozen_clock)
        assert (await client.get("/api/v1/admin/health", headers=headers)).status_code == 200
        kept = await client.post(
            "/api/v1/auth/2fa/disable", json={"code": phone.code()}, headers=headers
        )
        assert_error(kept, 403, "TwoFactorRequired")


async def test_the_periodic_job_removes_expired_challenges_only(
    app: FastAPI, client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, _ = await turn_on(client, headers, frozen_clock)
    await challenge_of(client)
    frozen_clock.advance(301)
    live = await challenge_of(client)

    prune = app.state.worker.job_types[PRUNE_LOGIN_CHALLENGES]
    await prune.run(Job(kind=PRUNE_LOGIN_CHALLENGES, payload={}))

    async with app.state.db.session() as session:
        left = (await session.execute(select(func.count()).select_from(LoginChallenge))).scalar()
    assert left == 1
    assert (await second_step(client, live, phone.code())).status_code == 200


async def test_rotate_key_re_encrypts_totp_secrets_and_codes_still_work(
    app: FastAPI, client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, _ = await turn_on(client, headers, frozen_clock)
    vault = app.state.vault
    vault.use(vault.ring.promoted(EncryptionKey.generate()))

    report = await rotate_secrets(app.state.db, vault, encrypted_columns())

    assert report.rotated == 1
    async with app.state.db.session() as session:
        row = (await session.execute(select(TwoFactor))).scalar_one()
    assert key_id_of(row.secret_encrypted) == vault.primary_key_id
    assert (await second_step(client, await challenge_of(client), phone.code())).status_code == 200


async def test_a_secret_no_configured_key_opens_is_a_409_not_a_500(
    app: FastAPI, client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, _ = await turn_on(client, headers, frozen_clock)
    async with app.state.db.transaction() as session:
        row = (await session.execute(select(TwoFactor))).scalar_one()
        row.secret_encrypted = row.secret_encrypted[:-4] + "AAAA"

    answer = await second_step(client, await challenge_of(client), phone.code())

    assert_error(answer, 409, "TwoFactorStateConflict")
    assert "decrypted" in answer.json()["message"]


async def test_a_password_change_or_a_disabled_account_kills_a_pending_challenge(
    app: FastAPI, client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    headers = await sign_up(client)
    phone, _ = await turn_on(client, headers, frozen_clock)
    first, second = await challenge_of(client), await challenge_of(client)

    async def change(**values: Any) -> None:
        async with app.state.db.transaction() as session:
            user = (await session.execute(select(User))).scalar_one()
            for name, value in values.items():
                setattr(user, name, value)

    await change(is_active=False)
    assert_error(await second_step(client, first, phone.code()), 401, "InvalidLoginChallenge")
    await change(is_active=True, password_hash="$argon2id$changed-elsewhere")
    assert_error(await second_step(client, second, phone.code()), 401, "InvalidLoginChallenge")
