"""Email verification, password reset and password change.

Tokens. Each mailed token is 32 random bytes (URL-safe), stored only as its SHA-256, for one
purpose, one use, and a limited time (verification 48 h, reset 24 h by default). Issuing a new
token supersedes the user's live ones of the same purpose, and a password change or reset
spends every outstanding reset token, so an old email stops working. A token is spent with a
conditional UPDATE, so two concurrent uses cannot both succeed.

Enumeration. Asking for a reset or a new verification email answers the same, after the same
work, whether or not the address has an account: the request only queues an `account_email`
job, and the worker looks the address up. The token is made by that job, in its own
transaction, and goes straight into the message: the queue never holds a usable token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.accounts import security, service
from pinelab.accounts.exceptions import InvalidAccountToken, WrongCurrentPassword
from pinelab.accounts.models import AccountToken, AuthSession, User
from pinelab.clock import now
from pinelab.db import Database
from pinelab.errors import RateLimitExceeded, ResourceNotFoundError
from pinelab.jobs import queue
from pinelab.ops.ratelimit import Limit

log = structlog.get_logger(__name__)

ACCOUNT_EMAIL = "account_email"
VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a token purpose, not a secret
PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a message name, not a secret
NEW_DEVICE = "new_device"
PRUNE_ACCOUNT_TOKENS = "prune_account_tokens"
# Spent tokens are kept a day (when and from where a reset was used), then deleted.
SPENT_TOKEN_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class RecoveryLimits:
    """Rate limits of the account-recovery endpoints: per address and per email, per action.

    Both are limits of the process's `RateLimits` (in Redis when configured), keyed by action so
    asking for a reset does not use up verification requests.
    """

    per_address: Limit
    per_email: Limit

    async def check(self, action: str, *, ip: str | None, email: str | None = None) -> None:
        """Count one request; raise RateLimitExceeded when the address or the email is over."""
        waits = [await self.per_address.hit(f"{action}|{ip or '-'}")]
        if email is not None:
            waits.append(await self.per_email.hit(f"{action}|{email.strip().casefold()}"))
        retry_after = max((wait for wait in waits if wait is not None), default=None)
        if retry_after is not None:
            raise RateLimitExceeded("Too many requests; try again later", retry_after=retry_after)


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token (shown once, in the email) and when it expires."""

    token: str
    expires_at: datetime


async def queue_account_email(
    session: AsyncSession,
    message: str,
    *,
    max_attempts: int,
    user_id: int | None = None,
    email: str | None = None,
    ip: str | None = None,
) -> None:
    """Queue an account email for a user id, or for an address that may have no account."""
    payload: dict[str, Any] = {"message": message, "user_id": user_id, "email": email, "ip": ip}
    await queue.enqueue(session, ACCOUNT_EMAIL, payload, max_attempts=max_attempts, user_id=user_id)


async def notice_new_device(
    session: AsyncSession,
    *,
    user_id: int,
    ip: str | None,
    user_agent: str | None,
    max_attempts: int,
) -> bool:
    """Queue a "new sign-in" email when no earlier session of the user had this device.

    A device is the pair (address, user agent) recorded on sessions; a user's first sign-in
    is no news. Call it before opening the new session. True when the email was queued.
    """
    earlier = await session.execute(
        select(AuthSession.ip_address, AuthSession.user_agent)
        .where(AuthSession.user_id == user_id)
        .distinct()
    )
    devices = {(row[0], row[1]) for row in earlier}
    device = (ip[:64] if ip else None, user_agent[:255] if user_agent else None)
    if not devices or device in devices:
        return False
    payload = {"message": NEW_DEVICE, "user_id": user_id, "ip": ip, "user_agent": device[1]}
    await queue.enqueue(session, ACCOUNT_EMAIL, payload, max_attempts=max_attempts, user_id=user_id)
    return True


async def issue_token(
    session: AsyncSession, *, user_id: int, purpose: str, ttl: timedelta, ip: str | None = None
) -> IssuedToken:
    """Issue a one-time token for a purpose; the user's live ones of that purpose are spent."""
    moment = now()
    await _spend_all(session, user_id=user_id, purpose=purpose, moment=moment)
    token = security.new_opaque_token()
    session.add(
        AccountToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=security.hash_opaque_token(token),
            created_at=moment,
            expires_at=moment + ttl,
            requested_ip=ip[:64] if ip else None,
        )
    )
    await session.flush()
    return IssuedToken(token=token, expires_at=moment + ttl)


async def verify_email(session: AsyncSession, *, token: str) -> User:
    """Spend a verification token and mark its user's email verified."""
    found = await _live_token(session, token=token, purpose=VERIFY_EMAIL)
    user = await session.get(User, found.user_id)
    if user is None or not user.is_active or not await _spend(session, found.id):
        raise InvalidAccountToken
    if user.email_verified_at is None:
        user.email_verified_at = now()
    log.info("email_verified", user_id=user.id)
    return user


async def mark_email_verified(session: AsyncSession, *, user_id: int) -> User:
    """Mark a user's email verified (an administrator vouches for it)."""
    user = await session.get(User, user_id)
    if user is None:
        raise ResourceNotFoundError("User", user_id)
    if user.email_verified_at is None:
        user.email_verified_at = now()
        await _spend_all(session, user_id=user.id, purpose=VERIFY_EMAIL, moment=now())
    return user


async def check_reset_token(session: AsyncSession, *, token: str) -> datetime:
    """Return when a live reset token expires, or raise InvalidAccountToken."""
    found = await _live_token(session, token=token, purpose=RESET_PASSWORD)
    user = await session.get(User, found.user_id)
    if user is None or not user.is_active:
        raise InvalidAccountToken
    return found.expires_at


async def reset_password(
    db: Database, *, token: str, new_password: str, ip: str | None, max_attempts: int
) -> User:
    """Spend a reset token and set the new password; every session of the user is revoked."""
    async with db.session() as session:
        found = await _live_token(session, token=token, purpose=RESET_PASSWORD)
        user = await session.get(User, found.user_id)
        if user is None or not user.is_active:
            raise InvalidAccountToken
        email, token_id = user.email, found.id
    # Checked and hashed outside the write transaction: argon2 is slow, SQLite has one writer.
    new_hash = await service.hash_new_password(new_password, email=email)
    async with db.transaction() as session:
        user = await session.get(User, found.user_id)
        if user is None or not await _spend(session, token_id):
            raise InvalidAccountToken
        await _set_password(session, user, new_hash, ip=ip, max_attempts=max_attempts)
    log.info("password_reset", user_id=user.id)
    return user


async def change_password(
    db: Database,
    *,
    user_id: int,
    current_password: str,
    new_password: str,
    ip: str | None,
    max_attempts: int,
) -> User:
    """Change a signed-in user's password; every session is revoked (the caller opens one)."""
    async with db.session() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise ResourceNotFoundError("User", user_id)
        if not await service.password_matches(user, current_password):
            raise WrongCurrentPassword
        email, checked_hash = user.email, user.password_hash
    new_hash = await service.hash_new_password(new_password, email=email)
    async with db.transaction() as session:
        user = await session.get(User, user_id)
        if user is None or user.password_hash != checked_hash:
            raise WrongCurrentPassword  # changed meanwhile: the current password is no more
        await _set_password(session, user, new_hash, ip=ip, max_attempts=max_attempts)
    log.info("password_changed", user_id=user_id)
    return user


async def prune_account_tokens(db: Database) -> int:
    """Delete expired tokens and tokens spent over a day ago; return how many."""
    moment = now()
    async with db.transaction() as session:
        result = await session.execute(
            delete(AccountToken).where(
                or_(
                    AccountToken.expires_at <= moment,
                    AccountToken.used_at <= moment - SPENT_TOKEN_RETENTION,
                )
            )
        )
    deleted = cast(CursorResult[Any], result).rowcount
    log.info("account_tokens_pruned", count=deleted)
    return deleted


async def _set_password(
    session: AsyncSession, user: User, new_hash: str, *, ip: str | None, max_attempts: int
) -> None:
    """Store the new hash, spend reset tokens, revoke sessions and queue the confirmation."""
    user.password_hash = new_hash
    await _spend_all(session, user_id=user.id, purpose=RESET_PASSWORD, moment=now())
    await service.revoke_sessions(session, user_id=user.id)
    await queue_account_email(
        session, PASSWORD_CHANGED, user_id=user.id, ip=ip, max_attempts=max_attempts
    )


async def _live_token(session: AsyncSession, *, token: str, purpose: str) -> AccountToken:
    result = await session.execute(
        select(AccountToken).where(
            AccountToken.token_hash == security.hash_opaque_token(token),
            AccountToken.purpose == purpose,
        )
    )
    found = result.scalar_one_or_none()
    if found is None or found.used_at is not None or found.expires_at <= now():
        raise InvalidAccountToken
    return found


async def _spend(session: AsyncSession, token_id: int) -> bool:
    # Conditional, so two concurrent uses of one token cannot both win.
    result = await session.execute(
        update(AccountToken)
        .where(
            AccountToken.id == token_id,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now(),
        )
        .values(used_at=now())
    )
    return cast(CursorResult[Any], result).rowcount == 1


async def _spend_all(
    session: AsyncSession, *, user_id: int, purpose: str, moment: datetime
) -> None:
    await session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=moment)
    )
