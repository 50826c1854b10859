"""Account services against a real (migrated) database: users, logins, refresh sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from pinelab.accounts import security, service
from pinelab.accounts.exceptions import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidEmail,
    WeakPassword,
)
from pinelab.accounts.models import AuthSession, User
from pinelab.clock import FrozenClock
from pinelab.db import Database
from pinelab.errors import DuplicateResourceError, RateLimitExceeded, ValidationFailed
from pinelab.ops.ratelimit import Limit, RateLimitStore

PASSWORD = "blue-harbour-lantern-42"
SECRET = "unit-test-signing-key-0123456789-abcdefghijklmnop"
POLICY = service.TokenPolicy(secret_key=SECRET, access_ttl_seconds=900, refresh_ttl_seconds=3600)
ORIGIN = service.SessionOrigin(ip_address="198.51.100.4", user_agent="pytest")


def login_limit() -> Limit:
    """The login limit as the app builds it by default: 10 a minute per account."""
    return RateLimitStore().limit("login", 10)


async def make_user(db: Database, email: str = "trader@example.com", **kwargs: Any) -> User:
    async with db.transaction() as session:
        return await service.create_user(session, email=email, password=PASSWORD, **kwargs)


async def login(
    db: Database,
    email: str = "trader@example.com",
    password: str = PASSWORD,
    limiter: Limit | None = None,
    origin: service.SessionOrigin = ORIGIN,
) -> service.IssuedTokens:
    """Log in the way the HTTP route does: check credentials, then open the session."""
    async with db.session() as session:
        verified = await service.check_credentials(
            session,
            email=email,
            password=password,
            limiter=limiter or login_limit(),
        )
    async with db.transaction() as session:
        return await service.start_session(session, login=verified, policy=POLICY, origin=origin)


async def rotate(db: Database, refresh_token: str) -> service.IssuedTokens | None:
    async with db.transaction() as session:
        return await service.rotate_refresh_token(
            session, refresh_token=refresh_token, policy=POLICY, origin=ORIGIN
        )


async def sessions_of(db: Database, user_id: int) -> list[AuthSession]:
    async with db.session() as session:
        result = await session.execute(
            select(AuthSession).where(AuthSession.user_id == user_id).order_by(AuthSession.id)
        )
        return list(result.scalars())


async def stored_user(db: Database, user_id: int) -> User:
    async with db.session() as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


# --- create_user ---------------------------------------------------------------------------


async def test_created_user_has_a_lower_case_email_and_an_argon2id_hash(db: Database) -> None:
    user = await make_user(db, "  Trader@Example.COM ")
    stored = await stored_user(db, user.id)
    assert stored.email == "trader@example.com"
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert security.verify_password(PASSWORD, stored.password_hash)[0]
    assert (stored.role, stored.is_active, stored.email_verified_at) == ("user", True, None)


async def test_create_user_can_make_a_verified_admin(
    db: Database, frozen_clock: FrozenClock
) -> None:
    user = await make_user(db, role="admin", verified=True)
    stored = await stored_user(db, user.id)
    assert stored.role == "admin"
    assert stored.email_verified_at == frozen_clock.now()


async def test_email_taken_in_any_letter_case_is_a_duplicate(db: Database) -> None:
    await make_user(db, "trader@example.com")
    with pytest.raises(EmailAlreadyRegistered) as caught:
        await make_user(db, "TRADER@example.com")
    assert isinstance(caught.value, DuplicateResourceError)
    async with db.session() as session:
        assert len((await session.execute(select(User))).scalars().all()) == 1


@pytest.mark.parametrize(
    ("email", "password", "role", "error"),
    [
        ("not-an-email", PASSWORD, "user", InvalidEmail),
        ("trader@example.com", "too-short", "user", WeakPassword),
        ("trader@example.com", "trader@example.com", "user", WeakPassword),
        ("trader@example.com", PASSWORD, "superuser", ValidationFailed),
    ],
)
async def test_invalid_user_is_refused_and_nothing_is_stored(
    db: Database, email: str, password: str, role: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        async with db.transaction() as session:
            await service.create_user(session, email=email, password=password, role=role)
    async with db.session() as session:
        assert (await session.execute(select(User))).first() is None


# --- login ---------------------------------------------------------------------------------


async def test_login_issues_an_access_token_for_the_user_and_stores_only_a_refresh_hash(
    db: Database, frozen_clock: FrozenClock
) -> None:
    user = await make_user(db)
    issued = await login(db, "TRADER@example.com")

    claims = security.decode_jwt(issued.access_token, audience=security.ACCESS_AUDIENCE, key=SECRET)
    assert claims is not None
    assert claims["sub"] == str(user.id)
    assert claims["exp"] == int(frozen_clock.now().timestamp()) + 900
    assert issued.expires_in == 900
    [stored] = await sessions_of(db, user.id)
    assert stored.refresh_token_hash == security.hash_opaque_token(issued.refresh_token)
    assert issued.refresh_token not in stored.refresh_token_hash
    assert stored.expires_at == frozen_clock.now() + timedelta(seconds=3600)
    assert (stored.ip_address, stored.user_agent, stored.revoked_at) == (
        "198.51.100.4",
        "pytest",
        None,
    )


async def test_access_token_is_not_valid_for_another_audience_or_key(db: Database) -> None:
    await make_user(db)
    token = (await login(db)).access_token
    assert security.decode_jwt(token, audience="pinelab:reset", key=SECRET) is None
    assert security.decode_jwt(token, audience=security.ACCESS_AUDIENCE, key="x" * 48) is None


async def test_unknown_email_and_wrong_password_fail_alike_after_verifying_a_hash(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_user(db)
    verified_hashes: list[str | None] = []
    real_verify: Callable[[str, str | None], tuple[bool, str | None]] = security.verify_password

    def spy(password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        verified_hashes.append(stored_hash)
        return real_verify(password, stored_hash)

    monkeypatch.setattr(security, "verify_password", spy)
    with pytest.raises(InvalidCredentials) as wrong_password:
        await login(db, password="not-the-right-password")
    with pytest.raises(InvalidCredentials) as unknown_email:
        await login(db, email="nobody@example.com")
    with pytest.raises(InvalidCredentials) as malformed_email:
        await login(db, email="not an email")

    assert wrong_password.value.message == unknown_email.value.message
    assert unknown_email.value.message == malformed_email.value.message
    assert verified_hashes[0] is not None
    assert verified_hashes[1:] == [None, None]


async def test_inactive_user_cannot_log_in_even_with_the_right_password(db: Database) -> None:
    user = await make_user(db)
    async with db.transaction() as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.is_active = False
    with pytest.raises(InvalidCredentials):
        await login(db)
    assert await sessions_of(db, user.id) == []


async def test_login_rehashes_a_password_hashed_with_outdated_parameters(db: Database) -> None:
    user = await make_user(db)
    weak_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    async with db.transaction() as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.password_hash = weak_hash

    await login(db)

    rehashed = (await stored_user(db, user.id)).password_hash
    assert rehashed != weak_hash
    assert not PasswordHasher().check_needs_rehash(rehashed)
    assert security.verify_password(PASSWORD, rehashed)[0]


async def test_login_checked_before_a_password_change_opens_no_session(db: Database) -> None:
    user = await make_user(db)
    async with db.session() as session:
        verified = await service.check_credentials(
            session, email="trader@example.com", password=PASSWORD, limiter=login_limit()
        )
    async with db.transaction() as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.password_hash = security.hash_password("a-brand-new-passphrase")

    with pytest.raises(InvalidCredentials):
        async with db.transaction() as session:
            await service.start_session(session, login=verified, policy=POLICY)
    assert await sessions_of(db, user.id) == []


async def test_eleventh_login_attempt_in_a_minute_is_rate_limited_per_account(
    db: Database,
) -> None:
    await make_user(db)
    await make_user(db, email="other@example.com")
    limiter = login_limit()
    for _ in range(10):
        with pytest.raises(InvalidCredentials):
            await login(db, password="wrong-password-again", limiter=limiter)

    with pytest.raises(RateLimitExceeded) as caught:
        await login(db, limiter=limiter)
    assert caught.value.retry_after >= 1
    other_address = service.SessionOrigin(ip_address="192.0.2.99")
    with pytest.raises(RateLimitExceeded):
        await login(db, limiter=limiter, origin=other_address)
    assert (await login(db, email="other@example.com", limiter=limiter)).access_token


# --- refresh rotation ----------------------------------------------------------------------


async def test_refresh_rotates_the_session_and_the_new_token_works(db: Database) -> None:
    user = await make_user(db)
    first = await login(db)

    second = await rotate(db, first.refresh_token)
    assert second is not None
    assert second.refresh_token != first.refresh_token
    assert second.user_id == user.id
    old, new = await sessions_of(db, user.id)
    assert old.revoked_at is not None
    assert new.revoked_at is None
    assert await rotate(db, second.refresh_token) is not None


async def test_reused_refresh_token_revokes_every_session_of_its_owner(db: Database) -> None:
    user = await make_user(db)
    other_device = await login(db)
    stolen = await login(db)
    rotated = await rotate(db, stolen.refresh_token)
    assert rotated is not None

    assert await rotate(db, stolen.refresh_token) is None

    assert all(row.revoked_at is not None for row in await sessions_of(db, user.id))
    assert await rotate(db, rotated.refresh_token) is None
    assert await rotate(db, other_device.refresh_token) is None


async def test_reuse_leaves_other_users_sessions_alone(db: Database) -> None:
    await make_user(db, "victim@example.com")
    bystander = await make_user(db, "bystander@example.com")
    bystander_tokens = await login(db, "bystander@example.com")
    victim_tokens = await login(db, "victim@example.com")
    await rotate(db, victim_tokens.refresh_token)
    await rotate(db, victim_tokens.refresh_token)

    [live] = await sessions_of(db, bystander.id)
    assert live.revoked_at is None
    assert await rotate(db, bystander_tokens.refresh_token) is not None


async def test_unknown_refresh_token_is_refused(db: Database) -> None:
    assert await rotate(db, security.new_opaque_token()) is None


async def test_expired_refresh_token_is_refused_without_revoking_other_sessions(
    db: Database, frozen_clock: FrozenClock
) -> None:
    user = await make_user(db)
    old = await login(db)
    frozen_clock.advance(3000)
    recent = await login(db)
    frozen_clock.advance(601)

    assert await rotate(db, old.refresh_token) is None
    assert await rotate(db, old.refresh_token) is None
    assert await rotate(db, recent.refresh_token) is not None
    assert len(await sessions_of(db, user.id)) == 3


async def test_refresh_for_a_deactivated_user_is_refused(db: Database) -> None:
    user = await make_user(db)
    issued = await login(db)
    async with db.transaction() as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.is_active = False
    assert await rotate(db, issued.refresh_token) is None


# --- logout --------------------------------------------------------------------------------


async def test_logout_revokes_only_that_session_and_is_idempotent(db: Database) -> None:
    user = await make_user(db)
    leaving = await login(db)
    staying = await login(db)

    for _ in range(2):
        async with db.transaction() as session:
            await service.logout(session, refresh_token=leaving.refresh_token)
    async with db.transaction() as session:
        await service.logout(session, refresh_token=security.new_opaque_token())

    ended, live = await sessions_of(db, user.id)
    assert ended.revoked_at is not None
    assert live.revoked_at is None
    assert await rotate(db, staying.refresh_token) is not None
