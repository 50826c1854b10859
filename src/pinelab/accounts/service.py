"""Accounts: create users, check passwords, open, rotate and close refresh sessions.

Account enumeration. Login answers an unknown email, a wrong password and a disabled
account with the same error, after the same work (a dummy hash is verified when there is
no user), so neither the body nor the time tells them apart; attempts are rate limited per
email and address. Registration, by contrast, answers a taken email with 409: telling the
person why they cannot sign up is worth more here than hiding that an address has an
account, and the register endpoint can be rate limited or closed on a private install.

Refresh tokens are opaque, stored only as SHA-256 hashes, and rotate on every use. A token
presented after it was rotated or revoked means two parties hold it, so every session of
its owner is revoked (OAuth 2.0 Security BCP, refresh token rotation).
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.accounts import security
from pinelab.accounts.exceptions import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidEmail,
)
from pinelab.accounts.models import AuthSession, User
from pinelab.accounts.passwords import check_password_policy
from pinelab.clock import now
from pinelab.errors import ErrorDetail, RateLimitExceeded, ValidationFailed
from pinelab.ops.ratelimit import Limit

log = structlog.get_logger(__name__)

ROLES = frozenset({"user", "admin"})


@dataclass(frozen=True)
class TokenPolicy:
    """How tokens are signed and how long they live."""

    secret_key: str = field(repr=False)
    access_ttl_seconds: int
    refresh_ttl_seconds: int


@dataclass(frozen=True)
class IssuedTokens:
    """The tokens of a fresh or rotated session, shown to the client once."""

    user_id: int
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True)
class SessionOrigin:
    """Where a login comes from, recorded on its session."""

    ip_address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class VerifiedLogin:
    """A login whose password checked out, with a fresh hash when the stored one is outdated."""

    user_id: int
    checked_hash: str = field(repr=False)
    new_hash: str | None = field(default=None, repr=False)


def normalise_email(email: str) -> str:
    """Return the canonical, lower-case form of an email address, or raise InvalidEmail."""
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    return result.normalized.lower()


def _prepared(password: str) -> str:
    # NFKC so that the same password typed on another keyboard or OS still matches.
    return unicodedata.normalize("NFKC", password)


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: str = "user",
    verified: bool = False,
) -> User:
    """Create a user with an argon2id hash; refuse a taken email or a weak password."""
    address = normalise_email(email)
    # zxcvbn is pure Python and takes up to ~0.1 s on a long password: off the event loop.
    await asyncio.to_thread(check_password_policy, password, email=address)
    if role not in ROLES:
        raise ValidationFailed("Unknown role", details=[ErrorDetail("role", "not a role")])
    if await _user_by_email(session, address) is not None:
        raise EmailAlreadyRegistered
    password_hash = await asyncio.to_thread(security.hash_password, _prepared(password))
    user = User(
        email=address,
        password_hash=password_hash,
        role=role,
        is_active=True,
        email_verified_at=now() if verified else None,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise EmailAlreadyRegistered from exc
    log.info("user_created", user_id=user.id, role=role)
    return user


async def hash_new_password(password: str, *, email: str) -> str:
    """Check a new password against the policy (for this email) and return its argon2id hash."""
    await asyncio.to_thread(check_password_policy, password, email=email)
    return await asyncio.to_thread(security.hash_password, _prepared(password))


async def password_matches(user: User, password: str) -> bool:
    """Tell whether a password is the user's current one (argon2 runs off the event loop)."""
    ok, _ = await asyncio.to_thread(
        security.verify_password, _prepared(password), user.password_hash
    )
    return ok


async def revoke_sessions(session: AsyncSession, *, user_id: int) -> None:
    """Revoke every live session of a user (after a password change or reset)."""
    await _revoke_all(session, user_id=user_id, moment=now())


async def check_credentials(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    limiter: Limit,
) -> VerifiedLogin:
    """Check a login attempt (rate limited per account); one answer for every kind of failure."""
    address = _login_address(email)
    retry_after = await limiter.hit(address)
    if retry_after is not None:
        raise RateLimitExceeded("Too many login attempts; try again later", retry_after=retry_after)
    user = await _user_by_email(session, address)
    stored_hash = user.password_hash if user is not None else None
    ok, new_hash = await asyncio.to_thread(
        security.verify_password, _prepared(password), stored_hash
    )
    if user is None or stored_hash is None or not ok or not user.is_active:
        raise InvalidCredentials
    return VerifiedLogin(user_id=user.id, checked_hash=stored_hash, new_hash=new_hash)


async def start_session(
    session: AsyncSession,
    *,
    login: VerifiedLogin,
    policy: TokenPolicy,
    origin: SessionOrigin | None = None,
) -> IssuedTokens:
    """Open a refresh session for a checked login, storing the password's new hash if due."""
    user = await session.get(User, login.user_id)
    # The password or the account may have changed since the check.
    if user is None or not user.is_active or user.password_hash != login.checked_hash:
        raise InvalidCredentials
    if login.new_hash is not None:
        user.password_hash = login.new_hash
    return await _open_session(session, user=user, policy=policy, origin=origin)


async def open_session(
    session: AsyncSession,
    *,
    user_id: int,
    policy: TokenPolicy,
    origin: SessionOrigin | None = None,
) -> IssuedTokens:
    """Open a session for a user who just proved who they are (after a password change)."""
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise InvalidCredentials
    return await _open_session(session, user=user, policy=policy, origin=origin)


async def rotate_refresh_token(
    session: AsyncSession,
    *,
    refresh_token: str,
    policy: TokenPolicy,
    origin: SessionOrigin | None = None,
) -> IssuedTokens | None:
    """Swap a refresh token for new tokens, or return None when it is refused.

    A token used twice revokes every session of its owner; that must stick, so the
    caller commits its transaction whatever the answer.
    """
    found = await _session_by_token(session, refresh_token)
    if found is None:
        return None
    moment = now()
    if found.revoked_at is None and found.expires_at <= moment:
        return None
    if found.revoked_at is not None or not await _revoke(session, found.id, moment):
        await _revoke_all(session, user_id=found.user_id, moment=moment)
        log.warning("refresh_token_reused", user_id=found.user_id, session_id=found.id)
        return None
    user = await session.get(User, found.user_id)
    if user is None or not user.is_active:
        return None
    signed_in_at = found.signed_in_at or found.created_at
    return await _open_session(
        session, user=user, policy=policy, origin=origin, signed_in_at=signed_in_at
    )


async def logout(session: AsyncSession, *, refresh_token: str) -> None:
    """Revoke the session of a refresh token; an unknown or revoked one changes nothing."""
    await session.execute(
        update(AuthSession)
        .where(
            AuthSession.refresh_token_hash == security.hash_opaque_token(refresh_token),
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=now())
    )


def _login_address(email: str) -> str:
    try:
        return normalise_email(email)
    except InvalidEmail:
        # Matches no account; the caller still verifies a dummy hash, so nothing shows.
        return email.strip().lower()


async def _user_by_email(session: AsyncSession, address: str) -> User | None:
    result = await session.execute(select(User).where(User.email == address))
    return result.scalar_one_or_none()


async def _session_by_token(session: AsyncSession, refresh_token: str) -> AuthSession | None:
    token_hash = security.hash_opaque_token(refresh_token)
    result = await session.execute(
        select(AuthSession).where(AuthSession.refresh_token_hash == token_hash)
    )
    return result.scalar_one_or_none()


async def _revoke(session: AsyncSession, session_id: int, moment: datetime) -> bool:
    # Conditional, so two concurrent uses of one token cannot both win.
    result = await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=moment)
    )
    return cast(CursorResult[Any], result).rowcount == 1


async def _revoke_all(session: AsyncSession, *, user_id: int, moment: datetime) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=moment)
    )


async def _open_session(
    session: AsyncSession,
    *,
    user: User,
    policy: TokenPolicy,
    origin: SessionOrigin | None,
    signed_in_at: datetime | None = None,
) -> IssuedTokens:
    refresh_token = security.new_opaque_token()
    origin = origin or SessionOrigin()
    moment = now()
    opened = AuthSession(
        user_id=user.id,
        refresh_token_hash=security.hash_opaque_token(refresh_token),
        created_at=moment,
        expires_at=moment + timedelta(seconds=policy.refresh_ttl_seconds),
        ip_address=origin.ip_address[:64] if origin.ip_address else None,
        user_agent=origin.user_agent[:255] if origin.user_agent else None,
        signed_in_at=signed_in_at or moment,
        last_used_at=moment,
    )
    session.add(opened)
    await session.flush()
    # The access token names its session, so revoking the session stops the token too.
    access_token = security.encode_jwt(
        subject=str(user.id),
        audience=security.ACCESS_AUDIENCE,
        key=policy.secret_key,
        ttl_seconds=policy.access_ttl_seconds,
        claims={"sid": opened.id},
    )
    return IssuedTokens(
        user_id=user.id,
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=policy.access_ttl_seconds,
    )
