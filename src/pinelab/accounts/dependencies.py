"""Who is asking (the bearer token's user, the admin check) and the login limiter."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pinelab.accounts.models import User
from pinelab.accounts.security import ACCESS_AUDIENCE, decode_jwt
from pinelab.api.deps import DatabaseDep, SecretKeyDep
from pinelab.api.pagination import MAX_ROW_ID
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
    user_id = user_id_of(claims) if claims is not None else None
    if user_id is None:
        raise AuthenticationError("Invalid or expired access token")
    async with db.session() as session:
        user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise AuthenticationError("Invalid or expired access token")
    structlog.contextvars.bind_contextvars(user_id=user.id)
    return user


def user_id_of(claims: dict[str, Any]) -> int | None:
    """Return the user id a token's subject names, or None when it names none (a 401)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not (subject.isascii() and subject.isdigit()):
        return None
    user_id = int(subject)
    return user_id if 1 <= user_id <= MAX_ROW_ID else None


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
