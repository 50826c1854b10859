"""HTTP routes of the accounts package: register, login, refresh, logout and me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from pinelab.accounts import service
from pinelab.accounts.dependencies import CurrentUser, LoginLimiterDep
from pinelab.accounts.exceptions import InvalidRefreshToken
from pinelab.accounts.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserRead,
)
from pinelab.api.deps import DatabaseDep, SecretKeyDep, SettingsDep
from pinelab.api.request import client_ip

router = APIRouter(prefix="/auth", tags=["auth"])


async def token_policy(settings: SettingsDep, secret_key: SecretKeyDep) -> service.TokenPolicy:
    """Return how this process signs tokens and how long they live."""
    return service.TokenPolicy(
        secret_key=secret_key,
        access_ttl_seconds=settings.access_token_ttl_seconds,
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
    )


async def session_origin(request: Request, settings: SettingsDep) -> service.SessionOrigin:
    """Return the caller's address and user agent, as recorded on a session."""
    return service.SessionOrigin(
        ip_address=client_ip(request, settings.trusted_proxies),
        user_agent=request.headers.get("user-agent"),
    )


PolicyDep = Annotated[service.TokenPolicy, Depends(token_policy)]
OriginDep = Annotated[service.SessionOrigin, Depends(session_origin)]


@router.post("/register", status_code=201, responses={409: {"description": "Email taken"}})
async def register(body: RegisterRequest, db: DatabaseDep) -> UserRead:
    """Create an account; the email must be free and the password pass the policy."""
    async with db.transaction() as session:
        user = await service.create_user(session, email=body.email, password=body.password)
    return UserRead.from_user(user)


@router.post(
    "/login",
    responses={401: {"description": "Wrong credentials"}, 429: {"description": "Too many"}},
)
async def login(
    body: LoginRequest,
    db: DatabaseDep,
    policy: PolicyDep,
    origin: OriginDep,
    limiter: LoginLimiterDep,
) -> TokenResponse:
    """Exchange email and password for an access token and a refresh token."""
    # Checked outside the write transaction: argon2 is slow and SQLite has a single writer.
    async with db.session() as session:
        verified = await service.check_credentials(
            session, email=body.email, password=body.password, limiter=limiter, origin=origin
        )
    async with db.transaction() as session:
        issued = await service.start_session(session, login=verified, policy=policy, origin=origin)
    return TokenResponse.from_issued(issued)


@router.post("/refresh", responses={401: {"description": "Refresh token refused"}})
async def refresh(
    body: RefreshRequest, db: DatabaseDep, policy: PolicyDep, origin: OriginDep
) -> TokenResponse:
    """Trade a refresh token for new tokens; the old refresh token stops working."""
    async with db.transaction() as session:
        issued = await service.rotate_refresh_token(
            session, refresh_token=body.refresh_token, policy=policy, origin=origin
        )
    if issued is None:
        raise InvalidRefreshToken
    return TokenResponse.from_issued(issued)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(body: LogoutRequest, db: DatabaseDep) -> None:
    """End the session of a refresh token (answers 204 whether or not it was live)."""
    async with db.transaction() as session:
        await service.logout(session, refresh_token=body.refresh_token)


@router.get("/me", responses={401: {"description": "Missing or invalid access token"}})
async def me(user: CurrentUser) -> UserRead:
    """Return the signed-in user."""
    return UserRead.from_user(user)
