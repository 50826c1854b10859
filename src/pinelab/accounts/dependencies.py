"""Who is asking (the bearer token's user, verified or admin) and the limiters of auth routes."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pinelab.accounts.exceptions import EmailNotVerified
from pinelab.accounts.models import User
from pinelab.accounts.recovery import RecoveryLimits
from pinelab.accounts.security import ACCESS_AUDIENCE, decode_jwt
from pinelab.api.deps import DatabaseDep, SecretKeyDep
from pinelab.errors import AuthenticationError, AuthorizationError
from pinelab.ops.ratelimit import RateLimiter

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/auth/login")


async def current_user(
    db: DatabaseDep,
    secret_key: SecretKeyDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """Return the active user the access token names, or answer 401."""
    if credentials is None:
        raise AuthenticationError("Missing bearer token")
    claims = decode_jwt(credentials.credentials, audience=ACCESS_AUDIENCE, key=secret_key)
    if claims is None:
        raise AuthenticationError("Invalid or expired access token")
    async with db.session() as session:
        user = await session.get(User, int(claims["sub"]))
    if user is None or not user.is_active:
        raise AuthenticationError("Invalid or expired access token")
    structlog.contextvars.bind_contextvars(user_id=user.id)
    return user


async def current_admin(user: Annotated[User, Depends(current_user)]) -> User:
    """Return the current user when an admin, else answer 403."""
    if user.role != "admin":
        raise AuthorizationError("Administrator role required")
    return user


async def get_login_limiter(request: Request) -> RateLimiter:
    """Return the process's limiter of login attempts."""
    limiter: RateLimiter = request.app.state.login_limiter
    return limiter


CurrentUser = Annotated[User, Depends(current_user)]
CurrentAdmin = Annotated[User, Depends(current_admin)]
LoginLimiterDep = Annotated[RateLimiter, Depends(get_login_limiter)]


async def current_verified_user(user: Annotated[User, Depends(current_user)]) -> User:
    """Return the current user when their email is verified, else answer 403 EmailNotVerified."""
    if user.email_verified_at is None:
        raise EmailNotVerified
    return user


async def get_recovery_limits(request: Request) -> RecoveryLimits:
    """Return the process's limits of the verification and reset endpoints."""
    limits: RecoveryLimits = request.app.state.recovery_limits
    return limits


VerifiedUser = Annotated[User, Depends(current_verified_user)]
RecoveryLimitsDep = Annotated[RecoveryLimits, Depends(get_recovery_limits)]
