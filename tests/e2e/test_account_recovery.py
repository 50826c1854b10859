"""Email verification, password reset and change over HTTP, every email delivered to a real SMTP
server (aiosmtpd) and its link read back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from sqlalchemy import func, select
from structlog.testing import capture_logs

from pinelab.accounts.models import AccountToken, User
from pinelab.accounts.recovery import PRUNE_ACCOUNT_TOKENS, prune_account_tokens
from pinelab.clock import FrozenClock
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.models import Job
from tests.fakes.faults import free_port
from tests.mailbox import Inbox, html_of, text_of, to, wait_for_token
from tests.waiting import eventually

API = "/api/v1/auth"
PASSWORD = "blue-harbour-lantern-42"
NEW_PASSWORD = "seven-quiet-otters-swim-north"
SENDER = "no-reply@pinelab.test"
PAPER = {"kind": "paper", "label": "Paper", "starting_cash": "10000"}
CLIENT_IP = "203.0.113.7"  # the test client's address (tests/conftest.py)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A real SMTP server on localhost that keeps what it receives."""
    handler = Inbox()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def settings(settings: Settings, inbox: Inbox) -> Settings:
    """The test's settings, sending email to the inbox's server (no TLS on localhost)."""
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": inbox.port,
            "smtp_tls": "none",
            "smtp_from": f"PineLab <{SENDER}>",
            "public_url": "https://pinelab.example.net",
            "retry_base_delay_seconds": 0.05,
            "retry_max_delay_seconds": 0.1,
            "max_retry_attempts": 3,
        }
    )


def mails(inbox: Inbox) -> list[EmailMessage]:
    return list(inbox.messages)


async def register(client: httpx.AsyncClient, email: str) -> None:
    answer = await client.post(f"{API}/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    assert answer.json()["email_verified"] is False


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(f"{API}/login", json={"email": email, "password": password})


async def bearer(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    answer = await login(client, email, password)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def verified_user(client: httpx.AsyncClient, inbox: Inbox, email: str) -> dict[str, str]:
    await register(client, email)
    token = await wait_for_token(lambda: mails(inbox), email, "verify-email")
    assert (await client.post(f"{API}/verify-email", json={"token": token})).status_code == 200
    return await bearer(client, email)


def assert_error(answer: httpx.Response, status: int, error: str, field: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error, body
    if field is not None:
        assert [detail["field"] for detail in body["details"]] == [field]


async def queue_drained(db: Database) -> bool:
    async with db.session() as session:
        waiting = await session.scalar(
            select(func.count()).select_from(Job).where(Job.status.in_(("queued", "running")))
        )
    return waiting == 0


# ----------------------------------------------------------------------------- verification


async def test_sign_up_mails_a_link_that_verifies_the_address_once(
    client: httpx.AsyncClient, inbox: Inbox
) -> None:
    await register(client, "ana@example.com")
    token = await wait_for_token(lambda: mails(inbox), "ana@example.com", "verify-email")
    message = to(mails(inbox), "ana@example.com")[0]
    assert message["From"] == f"PineLab <{SENDER}>"
    assert inbox.envelopes[0] == (SENDER, ["ana@example.com"])
    assert "https://pinelab.example.net/verify-email?token=" in text_of(message)
    assert "48 hours" in text_of(message)
    assert "<a href=" in html_of(message)
    assert len(token) == 43  # 32 random bytes, URL-safe base64

    verified = await client.post(f"{API}/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True
    me = await client.get(f"{API}/me", headers=await bearer(client, "ana@example.com"))
    assert me.json()["email_verified"] is True
    again = await client.post(f"{API}/verify-email", json={"token": token})
    assert_error(again, 422, "InvalidAccountToken", "token")


async def test_unverified_user_signs_in_but_cannot_add_broker_accounts_or_strategies(
    client: httpx.AsyncClient, inbox: Inbox
) -> None:
    await register(client, "ben@example.com")
    headers = await bearer(client, "ben@example.com")
    assert (await client.get(f"{API}/me", headers=headers)).status_code == 200
    account = await client.post("/api/v1/broker-accounts", json=PAPER, headers=headers)
    assert_error(account, 403, "EmailNotVerified")
    assert "resend-verification" in account.json()["message"]
    strategy = await client.post(
        "/api/v1/strategies",
        json={"name": "S", "broker_account_ids": [1], "sizing": {"type": "fixed", "value": "1"}},
        headers=headers,
    )
    assert_error(strategy, 403, "EmailNotVerified")
    listed = await client.get("/api/v1/broker-accounts", headers=headers)
    assert listed.status_code == 200
    assert listed.json()["items"] == []

    token = await wait_for_token(lambda: mails(inbox), "ben@example.com", "verify-email")
    assert (await client.post(f"{API}/verify-email", json={"token": token})).status_code == 200
    account = await client.post("/api/v1/broker-accounts", json=PAPER, headers=headers)
    assert account.status_code == 201, account.text


async def test_resend_answers_the_same_for_any_address_and_only_the_newest_link_works(
    app: FastAPI, client: httpx.AsyncClient, inbox: Inbox
) -> None:
    await register(client, "cleo@example.com")
    first = await wait_for_token(lambda: mails(inbox), "cleo@example.com", "verify-email")
    answers = [
        await client.post(f"{API}/resend-verification", json={"email": address})
        for address in ("nobody@example.com", "CLEO@example.com")
    ]
    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()

    second = await wait_for_token(lambda: mails(inbox), "cleo@example.com", "verify-email", after=1)
    await eventually(lambda: queue_drained(app.state.db), what="the email jobs to finish")
    assert to(mails(inbox), "nobody@example.com") == []
    stale = await client.post(f"{API}/verify-email", json={"token": first})
    assert_error(stale, 422, "InvalidAccountToken", "token")
    assert (await client.post(f"{API}/verify-email", json={"token": second})).status_code == 200

    # A verified address gets no more verification emails.
    resent = await client.post(f"{API}/resend-verification", json={"email": "cleo@example.com"})
    assert resent.json() == answers[0].json()
    await eventually(lambda: queue_drained(app.state.db), what="the email job to finish")
    assert len(to(mails(inbox), "cleo@example.com")) == 2


async def test_verification_link_expires_after_48_hours(
    client: httpx.AsyncClient, inbox: Inbox, frozen_clock: FrozenClock
) -> None:
    await register(client, "dina@example.com")
    token = await wait_for_token(lambda: mails(inbox), "dina@example.com", "verify-email")
    frozen_clock.advance(48 * 3600)
    expired = await client.post(f"{API}/verify-email", json={"token": token})
    assert_error(expired, 422, "InvalidAccountToken", "token")


async def test_resend_is_rate_limited_per_address(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        answer = await client.post(f"{API}/resend-verification", json={"email": "eve@example.com"})
        assert answer.status_code == 202, answer.text
    limited = await client.post(f"{API}/resend-verification", json={"email": "eve@example.com"})
    assert_error(limited, 429, "RateLimitExceeded")
    assert int(limited.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("verify-email", {}, "token"),
        ("verify-email", {"token": ""}, "token"),
        ("verify-email", {"token": "x" * 257}, "token"),
        ("resend-verification", {"email": 7}, "email"),
        ("request-reset", {}, "email"),
        ("validate-reset-token", {"token": None}, "token"),
        ("reset-password", {"token": "abc"}, "new_password"),
    ],
)
async def test_malformed_bodies_answer_422_naming_the_field(
    client: httpx.AsyncClient, path: str, body: dict[str, object], field: str
) -> None:
    answer = await client.post(f"{API}/{path}", json=body)
    assert answer.status_code == 422, answer.text
    assert field in {detail["field"] for detail in answer.json()["details"]}


# ----------------------------------------------------------------------------- reset


async def test_password_reset_sets_the_new_password_revokes_sessions_and_confirms(
    client: httpx.AsyncClient, inbox: Inbox
) -> None:
    await verified_user(client, inbox, "finn@example.com")
    session = (await login(client, "finn@example.com")).json()
    asked = await client.post(f"{API}/request-reset", json={"email": "finn@example.com"})
    unknown = await client.post(f"{API}/request-reset", json={"email": "ghost@example.com"})
    assert (asked.status_code, unknown.status_code) == (202, 202)
    assert asked.json() == unknown.json()

    token = await wait_for_token(lambda: mails(inbox), "finn@example.com", "reset-password")
    reset_mail = next(
        m for m in to(mails(inbox), "finn@example.com") if "reset" in m["Subject"].lower()
    )
    assert CLIENT_IP in text_of(reset_mail)  # the requesting address
    assert "24 hours" in text_of(reset_mail)
    valid = await client.post(f"{API}/validate-reset-token", json={"token": token})
    assert valid.status_code == 200, valid.text
    assert valid.json()["valid"] is True

    weak = await client.post(
        f"{API}/reset-password", json={"token": token, "new_password": "finn@example.com"}
    )
    assert_error(weak, 422, "WeakPassword", "password")
    done = await client.post(
        f"{API}/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.text

    refreshed = await client.post(
        f"{API}/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 401  # every session was revoked
    assert (await login(client, "finn@example.com")).status_code == 401
    assert (await login(client, "finn@example.com", NEW_PASSWORD)).status_code == 200
    reused = await client.post(
        f"{API}/reset-password", json={"token": token, "new_password": "another-" + NEW_PASSWORD}
    )
    assert_error(reused, 422, "InvalidAccountToken", "token")
    checked = await client.post(f"{API}/validate-reset-token", json={"token": token})
    assert_error(checked, 422, "InvalidAccountToken", "token")

    def confirmation() -> list[EmailMessage]:
        return [m for m in to(mails(inbox), "finn@example.com") if "changed" in m["Subject"]]

    notice = (await eventually(confirmation, what="the password-changed email"))[0]
    assert CLIENT_IP in text_of(notice)
    assert "signed out" in html_of(notice)
    assert to(mails(inbox), "ghost@example.com") == []


async def test_only_the_newest_reset_link_works_and_it_expires_after_24_hours(
    client: httpx.AsyncClient, inbox: Inbox, frozen_clock: FrozenClock
) -> None:
    await verified_user(client, inbox, "gus@example.com")
    for _ in range(2):
        asked = await client.post(f"{API}/request-reset", json={"email": "gus@example.com"})
        assert asked.status_code == 202
    first = await wait_for_token(lambda: mails(inbox), "gus@example.com", "reset-password")
    second = await wait_for_token(
        lambda: mails(inbox), "gus@example.com", "reset-password", after=1
    )
    stale = await client.post(f"{API}/validate-reset-token", json={"token": first})
    assert_error(stale, 422, "InvalidAccountToken", "token")
    frozen_clock.advance(24 * 3600 - 1)
    assert (
        await client.post(f"{API}/validate-reset-token", json={"token": second})
    ).status_code == 200
    frozen_clock.advance(1)
    expired = await client.post(
        f"{API}/reset-password", json={"token": second, "new_password": NEW_PASSWORD}
    )
    assert_error(expired, 422, "InvalidAccountToken", "token")
    assert (await login(client, "gus@example.com")).status_code == 200


async def test_request_reset_is_rate_limited_per_email_whether_or_not_it_exists(
    client: httpx.AsyncClient,
) -> None:
    for address in ("hal@example.com", "nobody@example.com"):
        for _ in range(3):
            answer = await client.post(f"{API}/request-reset", json={"email": address})
            assert answer.status_code == 202
        limited = await client.post(f"{API}/request-reset", json={"email": address})
        assert_error(limited, 429, "RateLimitExceeded")
        assert "Retry-After" in limited.headers


async def test_expired_and_spent_tokens_are_removed_by_the_periodic_job(
    app: FastAPI, client: httpx.AsyncClient, inbox: Inbox, frozen_clock: FrozenClock
) -> None:
    assert PRUNE_ACCOUNT_TOKENS in app.state.worker.scheduler.tasks
    await verified_user(client, inbox, "ivy@example.com")  # one spent verification token
    await register(client, "jon@example.com")  # one live one
    await wait_for_token(lambda: mails(inbox), "jon@example.com", "verify-email")
    db: Database = app.state.db

    async def tokens() -> int:
        async with db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(AccountToken)) or 0)

    assert await tokens() == 2
    assert await prune_account_tokens(db) == 0  # the spent one is kept a day
    frozen_clock.advance(24 * 3600 + 1)
    assert await prune_account_tokens(db) == 1
    frozen_clock.advance(24 * 3600)
    assert await prune_account_tokens(db) == 1
    assert await tokens() == 0


# ----------------------------------------------------------------------------- change


async def test_change_password_keeps_this_client_signed_in_and_ends_the_others(
    client: httpx.AsyncClient, inbox: Inbox
) -> None:
    headers = await verified_user(client, inbox, "kim@example.com")
    other = (await login(client, "kim@example.com")).json()
    wrong = await client.post(
        f"{API}/change-password",
        json={"current_password": "not-the-password-at-all", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert_error(wrong, 422, "WrongCurrentPassword", "current_password")
    weak = await client.post(
        f"{API}/change-password",
        json={"current_password": PASSWORD, "new_password": "kim@example.com"},
        headers=headers,
    )
    assert_error(weak, 422, "WeakPassword", "password")
    changed = await client.post(
        f"{API}/change-password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert (await client.get(f"{API}/me", headers=fresh)).status_code == 200
    renewed = await client.post(
        f"{API}/refresh", json={"refresh_token": changed.json()["refresh_token"]}
    )
    assert renewed.status_code == 200
    # Last: a revoked token presented again counts as reuse and ends every session.
    stale = await client.post(f"{API}/refresh", json={"refresh_token": other["refresh_token"]})
    assert stale.status_code == 401
    assert (await login(client, "kim@example.com", NEW_PASSWORD)).status_code == 200

    def confirmation() -> list[EmailMessage]:
        return [m for m in to(mails(inbox), "kim@example.com") if "changed" in m["Subject"]]

    await eventually(confirmation, what="the password-changed email")


async def test_change_password_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        f"{API}/change-password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert_error(answer, 401, "AuthenticationError")


# ----------------------------------------------------------------------------- delivery


async def test_a_temporary_smtp_refusal_is_retried_and_the_link_still_works(
    client: httpx.AsyncClient, inbox: Inbox
) -> None:
    inbox.refusals = ["451 4.3.0 try again later", "421 4.7.0 busy"]
    await register(client, "lou@example.com")
    token = await wait_for_token(lambda: mails(inbox), "lou@example.com", "verify-email")
    assert inbox.refused == 2
    assert len(to(mails(inbox), "lou@example.com")) == 1
    assert (await client.post(f"{API}/verify-email", json={"token": token})).status_code == 200


async def test_an_email_refused_for_good_becomes_a_dead_letter_without_its_token(
    app: FastAPI, client: httpx.AsyncClient, inbox: Inbox
) -> None:
    admin = await verified_user(client, inbox, "root@example.com")
    me = (await client.get(f"{API}/me", headers=admin)).json()
    db: Database = app.state.db
    async with db.transaction() as session:
        user = await session.get(User, me["id"])
        assert user is not None
        user.role = "admin"

    inbox.refusals = ["550 5.1.1 mailbox unavailable"]
    asked = await client.post(f"{API}/request-reset", json={"email": "root@example.com"})
    assert asked.status_code == 202

    async def dead_letters() -> list[dict[str, object]]:
        answer = await client.get("/api/v1/admin/dead-letters", headers=admin)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, object]] = answer.json()["items"]
        return items

    letters = await eventually(dead_letters, what="the dead letter of the refused email")
    assert [letter["kind"] for letter in letters] == ["account_email"]
    assert "550" in str(letters[0])
    detail = await client.get(f"/api/v1/admin/dead-letters/{letters[0]['id']}", headers=admin)
    # The queue holds who and why, never a usable token.
    assert detail.json()["payload"] == {
        "message": "reset_password",
        "user_id": None,
        "email": "root@example.com",
        "ip": CLIENT_IP,
    }
    assert inbox.refused == 1


async def test_no_password_or_token_reaches_a_log_line_or_an_answer(
    client: httpx.AsyncClient,
    inbox: Inbox,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[httpx.Response] = []
    third = "ninth-bright-harbour-of-cranes"

    async def post(path: str, body: dict[str, str], **kwargs: Any) -> httpx.Response:
        answer = await client.post(f"{API}/{path}", json=body, **kwargs)
        answers.append(answer)
        return answer

    with capture_logs() as logs:
        await post("register", {"email": "max@example.com", "password": PASSWORD})
        verify = await wait_for_token(lambda: mails(inbox), "max@example.com", "verify-email")
        await post("verify-email", {"token": verify})
        await post("request-reset", {"email": "max@example.com"})
        reset = await wait_for_token(lambda: mails(inbox), "max@example.com", "reset-password")
        await post("validate-reset-token", {"token": reset})
        await post("reset-password", {"token": reset, "new_password": NEW_PASSWORD})
        signed_in = await post("login", {"email": "max@example.com", "password": NEW_PASSWORD})
        headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        await post(
            "change-password",
            {"current_password": NEW_PASSWORD, "new_password": third},
            headers=headers,
        )
        await eventually(
            lambda: len(to(mails(inbox), "max@example.com")) == 4, what="the two confirmations"
        )
    assert [answer.status_code for answer in answers] == [201, 200, 202, 200, 200, 200, 200]

    printed = capfd.readouterr()
    # PineLab's records; the SMTP server's own (mail.log) print the messages it receives.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    seen = "\n".join([*(a.text for a in answers[:-2]), repr(logs), *ours, printed.err])
    assert "password_reset" in seen  # the flow was logged, and the log was read
    tokens = [answers[-2].json()["refresh_token"], answers[-1].json()["refresh_token"]]
    for secret in (PASSWORD, NEW_PASSWORD, third, verify, reset, *tokens):
        assert secret not in seen


async def test_a_sign_in_from_a_new_device_is_emailed_once(
    app: FastAPI, client: httpx.AsyncClient, inbox: Inbox
) -> None:
    await verified_user(client, inbox, "nia@example.com")  # the first sign-in is no news
    phone = {"User-Agent": "PineLab-Phone/1.0"}
    for _ in range(2):
        answer = await client.post(
            f"{API}/login", json={"email": "nia@example.com", "password": PASSWORD}, headers=phone
        )
        assert answer.status_code == 200, answer.text
    await eventually(lambda: queue_drained(app.state.db), what="the email jobs to finish")
    notices = [m for m in to(mails(inbox), "nia@example.com") if "New sign-in" in m["Subject"]]
    assert len(notices) == 1
    assert "PineLab-Phone/1.0" in text_of(notices[0])
    assert CLIENT_IP in html_of(notices[0])


async def test_a_sign_in_with_2fa_from_a_new_device_is_emailed_when_the_second_step_opens_it(
    app: FastAPI, client: httpx.AsyncClient, inbox: Inbox, frozen_clock: FrozenClock
) -> None:
    headers = await verified_user(client, inbox, "oto@example.com")
    setup = await client.post(f"{API}/2fa/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    secret = parse_qs(urlsplit(setup.json()["otpauth_uri"]).query)["secret"][0]
    phone_app = pyotp.TOTP(secret)
    enabled = await client.post(
        f"{API}/2fa/enable", json={"code": phone_app.at(frozen_clock.now())}, headers=headers
    )
    assert enabled.status_code == 200, enabled.text
    frozen_clock.advance(30)  # the enabling code's step is spent

    tablet = {"User-Agent": "PineLab-Tablet/2.0"}
    first = await client.post(
        f"{API}/login", json={"email": "oto@example.com", "password": PASSWORD}, headers=tablet
    )
    assert first.json()["two_factor_required"] is True, first.text
    await eventually(lambda: queue_drained(app.state.db), what="the email jobs to finish")

    def notices() -> list[EmailMessage]:
        return [m for m in to(mails(inbox), "oto@example.com") if "New sign-in" in m["Subject"]]

    assert notices() == []  # the password alone opens no session: no news yet

    second = await client.post(
        f"{API}/login/2fa",
        json={"challenge": first.json()["challenge"], "code": phone_app.at(frozen_clock.now())},
        headers=tablet,
    )
    assert second.status_code == 200, second.text
    await eventually(lambda: queue_drained(app.state.db), what="the email jobs to finish")
    assert len(notices()) == 1
    assert "PineLab-Tablet/2.0" in text_of(notices()[0])
