"""Who is asking (the bearer token's live session and user, verified or admin) and their limits."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pinelab.accounts import sessions, two_factor
from pinelab.accounts.exceptions import EmailNotVerified, TwoFactorRequired
from pinelab.accounts.models import User
from pinelab.accounts.recovery import RecoveryLimits
from pinelab.accounts.security import ACCESS_AUDIENCE, decode_jwt
from pinelab.api.deps import DatabaseDep, SecretKeyDep, SettingsDep
from pinelab.api.pagination import MAX_ROW_ID
from pinelab.errors import AuthenticationError, AuthorizationError
from pinelab.ops.dependencies import RateLimitsDep
from pinelab.ops.ratelimit import Limit
from pinelab.vault import Vault

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/auth/login")
_INVALID_TOKEN = "Invalid or expired access token"  # noqa: S105 - a message, not a secret


async def current_user(
    request: Request,
    db: DatabaseDep,
    secret_key: SecretKeyDep,
    limits: RateLimitsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """Return the active user of the access token's live session (else 401), rate limited."""
    if credentials is None:
        raise AuthenticationError("Missing bearer token")
    claims = decode_jwt(credentials.credentials, audience=ACCESS_AUDIENCE, key=secret_key)
    user_id, session_id = _ids(claims)
    async with db.session() as session:
        found = await sessions.active_session(session, user_id=user_id, session_id=session_id)
    if found is None:
        raise AuthenticationError(_INVALID_TOKEN)
    await limits.user.check(str(user_id), "Too many requests; try again later")
    if found.due_for_touch:
        async with db.transaction() as session:
            await sessions.touch(session, session_id)
    request.state.session_id = session_id
    structlog.contextvars.bind_contextvars(user_id=user_id)
    return found.user


def _ids(claims: dict[str, object] | None) -> tuple[int, int]:
    subject = claims.get("sub") if claims else None
    session_id = claims.get("sid") if claims else None
    if not isinstance(subject, str) or not (subject.isascii() and subject.isdigit()):
        raise AuthenticationError(_INVALID_TOKEN)
    user_id = int(subject)
    if not isinstance(session_id, int) or not 1 <= session_id <= MAX_ROW_ID:
        raise AuthenticationError(_INVALID_TOKEN)
    if not 1 <= user_id <= MAX_ROW_ID:
        raise AuthenticationError(_INVALID_TOKEN)
    return user_id, session_id


async def current_admin(
    user: Annotated[User, Depends(current_user)], db: DatabaseDep, settings: SettingsDep
) -> User:
    """Return the current user when an admin (with 2FA on, if required), else answer 403."""
    if user.role != "admin":
        raise AuthorizationError("Administrator role required")
    if settings.require_2fa_for_admins:
        async with db.session() as session:
            if not await two_factor.is_enabled(session, user.id):
                raise TwoFactorRequired
    return user


async def get_login_limiter(limits: RateLimitsDep) -> Limit:
    """Return the limit of login attempts per account."""
    return limits.login_account


async def get_vault(request: Request) -> Vault:
    """Return the vault that seals TOTP secrets."""
    vault: Vault = request.app.state.vault
    return vault


async def get_current_session_id(
    request: Request, user: Annotated[User, Depends(current_user)]
) -> int:
    """Return the id of the session the access token belongs to."""
    session_id: int = request.state.session_id
    return session_id


CurrentUser = Annotated[User, Depends(current_user)]
CurrentAdmin = Annotated[User, Depends(current_admin)]
LoginLimiterDep = Annotated[Limit, Depends(get_login_limiter)]
VaultDep = Annotated[Vault, Depends(get_vault)]
CurrentSessionIdDep = Annotated[int, Depends(get_current_session_id)]


async def current_verified_user(user: Annotated[User, Depends(current_user)]) -> User:
    """Return the current user when their email is verified, else answer 403 EmailNotVerified."""
    if user.email_verified_at is None:
        raise EmailNotVerified
    return user


async def get_recovery_limits(limits: RateLimitsDep) -> RecoveryLimits:
    """Return the limits of the verification, reset and password-change endpoints."""
    return RecoveryLimits(per_address=limits.recovery_address, per_email=limits.account_email)


VerifiedUser = Annotated[User, Depends(current_verified_user)]
RecoveryLimitsDep = Annotated[RecoveryLimits, Depends(get_recovery_limits)]
