"""HTTP routes of the accounts package: register, login, refresh, logout and me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from pinelab.accounts import service
from pinelab.accounts.dependencies import CurrentUser
from pinelab.accounts.exceptions import InvalidRefreshToken
from pinelab.accounts.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserRead,
)
from pinelab.api.deps import ContextDep
from pinelab.api.ratelimit import RateLimiter
from pinelab.api.request import client_ip

router = APIRouter(prefix="/auth", tags=["auth"])

LOGIN_LIMITER_KEY = "login_limiter"


def token_policy(context: ContextDep) -> service.TokenPolicy:
    """Return how this process signs tokens and how long they live."""
    return service.TokenPolicy(
        secret_key=context.secret_key,
        access_ttl_seconds=context.settings.access_token_ttl_seconds,
        refresh_ttl_seconds=context.settings.refresh_token_ttl_seconds,
    )


def login_limiter(context: ContextDep) -> RateLimiter:
    """Return the process's login-attempt limiter, creating it on first use."""
    limiter = context.extras.get(LOGIN_LIMITER_KEY)
    if not isinstance(limiter, RateLimiter):
        limiter = context.extras[LOGIN_LIMITER_KEY] = service.new_login_limiter()
    return limiter


def session_origin(request: Request, context: ContextDep) -> service.SessionOrigin:
    """Return the caller's address and user agent, as recorded on a session."""
    return service.SessionOrigin(
        ip_address=client_ip(request, context.settings.trusted_proxies),
        user_agent=request.headers.get("user-agent"),
    )


PolicyDep = Annotated[service.TokenPolicy, Depends(token_policy)]
OriginDep = Annotated[service.SessionOrigin, Depends(session_origin)]


@router.post("/register", status_code=201, responses={409: {"description": "Email taken"}})
async def register(body: RegisterRequest, context: ContextDep) -> UserRead:
    """Create an account; the email must be free and the password pass the policy."""
    async with context.db.transaction() as session:
        user = await service.create_user(session, email=body.email, password=body.password)
    return UserRead.from_user(user)


@router.post(
    "/login",
    responses={401: {"description": "Wrong credentials"}, 429: {"description": "Too many"}},
)
async def login(
    body: LoginRequest,
    context: ContextDep,
    policy: PolicyDep,
    origin: OriginDep,
    limiter: Annotated[RateLimiter, Depends(login_limiter)],
) -> TokenResponse:
    """Exchange email and password for an access token and a refresh token."""
    # Checked outside the write transaction: argon2 is slow and SQLite has a single writer.
    async with context.db.session() as session:
        verified = await service.check_credentials(
            session, email=body.email, password=body.password, limiter=limiter, origin=origin
        )
    async with context.db.transaction() as session:
        issued = await service.start_session(session, login=verified, policy=policy, origin=origin)
    return TokenResponse.from_issued(issued)


@router.post("/refresh", responses={401: {"description": "Refresh token refused"}})
async def refresh(
    body: RefreshRequest, context: ContextDep, policy: PolicyDep, origin: OriginDep
) -> TokenResponse:
    """Trade a refresh token for new tokens; the old refresh token stops working."""
    async with context.db.transaction() as session:
        issued = await service.rotate_refresh_token(
            session, refresh_token=body.refresh_token, policy=policy, origin=origin
        )
    if issued is None:
        raise InvalidRefreshToken
    return TokenResponse.from_issued(issued)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(body: LogoutRequest, context: ContextDep) -> None:
    """End the session of a refresh token (answers 204 whether or not it was live)."""
    async with context.db.transaction() as session:
        await service.logout(session, refresh_token=body.refresh_token)


@router.get("/me", responses={401: {"description": "Missing or invalid access token"}})
async def me(user: CurrentUser) -> UserRead:
    """Return the signed-in user."""
    return UserRead.from_user(user)
