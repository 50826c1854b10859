"""HTTP routes of the accounts package: sign-up and email verification, login, refresh, logout,
me, password reset and change, and the admin's mark-verified."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from pinelab.accounts import recovery, service
from pinelab.accounts.dependencies import (
    CurrentAdmin,
    CurrentUser,
    LoginLimiterDep,
    RecoveryLimitsDep,
)
from pinelab.accounts.exceptions import InvalidRefreshToken
from pinelab.accounts.schemas import (
    AcceptedResponse,
    ChangePasswordRequest,
    EmailRequest,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    ResetTokenStatus,
    TokenRequest,
    TokenResponse,
    UserRead,
)
from pinelab.api.deps import DatabaseDep, SecretKeyDep, SettingsDep
from pinelab.api.request import client_ip
from pinelab.jobs.dependencies import WorkerDep

router = APIRouter(prefix="/auth", tags=["auth"])
admin_router = APIRouter(prefix="/admin/users", tags=["admin"])

MAX_ID = 2**63 - 1
_TOO_MANY: dict[int | str, dict[str, Any]] = {429: {"description": "Too many requests"}}
_BAD_TOKEN: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid, expired or used token"},
    **_TOO_MANY,
}
EMAIL_ON_ITS_WAY = (
    "If {what} exists for this address, an email is on its way; it can take a few minutes."
)


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
async def register(
    body: RegisterRequest, db: DatabaseDep, settings: SettingsDep, worker: WorkerDep
) -> UserRead:
    """Create an account (the email free, the password past the policy); mail a verification."""
    async with db.transaction() as session:
        user = await service.create_user(session, email=body.email, password=body.password)
        await recovery.queue_account_email(
            session,
            recovery.VERIFY_EMAIL,
            user_id=user.id,
            max_attempts=settings.max_retry_attempts,
        )
    worker.wake()
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
    settings: SettingsDep,
    worker: WorkerDep,
) -> TokenResponse:
    """Exchange email and password for tokens; a sign-in from a new device is emailed."""
    # Checked outside the write transaction: argon2 is slow and SQLite has a single writer.
    async with db.session() as session:
        verified = await service.check_credentials(
            session, email=body.email, password=body.password, limiter=limiter, origin=origin
        )
    async with db.transaction() as session:
        noticed = await recovery.notice_new_device(
            session,
            user_id=verified.user_id,
            ip=origin.ip_address,
            user_agent=origin.user_agent,
            max_attempts=settings.max_retry_attempts,
        )
        issued = await service.start_session(session, login=verified, policy=policy, origin=origin)
    if noticed:
        worker.wake()
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


@router.post("/verify-email", responses=_BAD_TOKEN)
async def verify_email(
    body: TokenRequest, db: DatabaseDep, origin: OriginDep, limits: RecoveryLimitsDep
) -> UserRead:
    """Confirm an email address with the token mailed to it (once, within 48 hours)."""
    limits.check("verify-email", ip=origin.ip_address)
    async with db.transaction() as session:
        user = await recovery.verify_email(session, token=body.token)
    return UserRead.from_user(user)


@router.post("/resend-verification", status_code=202, responses=_TOO_MANY)
async def resend_verification(
    body: EmailRequest,
    db: DatabaseDep,
    settings: SettingsDep,
    origin: OriginDep,
    limits: RecoveryLimitsDep,
    worker: WorkerDep,
) -> AcceptedResponse:
    """Mail a new verification link; the same answer whether or not the address has an account."""
    limits.check("resend-verification", ip=origin.ip_address, email=body.email)
    async with db.transaction() as session:
        await recovery.queue_account_email(
            session,
            recovery.VERIFY_EMAIL,
            email=body.email,
            ip=origin.ip_address,
            max_attempts=settings.max_retry_attempts,
        )
    worker.wake()
    return AcceptedResponse(message=EMAIL_ON_ITS_WAY.format(what="an unverified account"))


@router.post("/request-reset", status_code=202, responses=_TOO_MANY)
async def request_reset(
    body: EmailRequest,
    db: DatabaseDep,
    settings: SettingsDep,
    origin: OriginDep,
    limits: RecoveryLimitsDep,
    worker: WorkerDep,
) -> AcceptedResponse:
    """Mail a password-reset link; the same answer and work whether or not the address exists."""
    limits.check("request-reset", ip=origin.ip_address, email=body.email)
    async with db.transaction() as session:
        await recovery.queue_account_email(
            session,
            recovery.RESET_PASSWORD,
            email=body.email,
            ip=origin.ip_address,
            max_attempts=settings.max_retry_attempts,
        )
    worker.wake()
    return AcceptedResponse(message=EMAIL_ON_ITS_WAY.format(what="an account"))


@router.post("/validate-reset-token", responses=_BAD_TOKEN)
async def validate_reset_token(
    body: TokenRequest, db: DatabaseDep, origin: OriginDep, limits: RecoveryLimitsDep
) -> ResetTokenStatus:
    """Tell whether a reset token can still be used (it is not spent by asking)."""
    limits.check("validate-reset-token", ip=origin.ip_address)
    async with db.session() as session:
        expires_at = await recovery.check_reset_token(session, token=body.token)
    return ResetTokenStatus(expires_at=expires_at)


@router.post("/reset-password", responses=_BAD_TOKEN)
async def reset_password(
    body: ResetPasswordRequest,
    db: DatabaseDep,
    settings: SettingsDep,
    origin: OriginDep,
    limits: RecoveryLimitsDep,
    worker: WorkerDep,
) -> AcceptedResponse:
    """Set a new password with a reset token; every session ends and a confirmation is mailed."""
    limits.check("reset-password", ip=origin.ip_address)
    await recovery.reset_password(
        db,
        token=body.token,
        new_password=body.new_password,
        ip=origin.ip_address,
        max_attempts=settings.max_retry_attempts,
    )
    worker.wake()
    return AcceptedResponse(message="Password changed; sign in with the new one.")


@router.post("/change-password", responses={401: {"description": "Not signed in"}, **_TOO_MANY})
async def change_password(
    body: ChangePasswordRequest,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
    policy: PolicyDep,
    origin: OriginDep,
    limits: RecoveryLimitsDep,
    worker: WorkerDep,
) -> TokenResponse:
    """Change the password; every other session ends, and this client gets fresh tokens."""
    limits.check("change-password", ip=origin.ip_address, email=user.email)
    changed = await recovery.change_password(
        db,
        user_id=user.id,
        current_password=body.current_password,
        new_password=body.new_password,
        ip=origin.ip_address,
        max_attempts=settings.max_retry_attempts,
    )
    async with db.transaction() as session:
        issued = await service.open_session(
            session, user_id=changed.id, policy=policy, origin=origin
        )
    worker.wake()
    return TokenResponse.from_issued(issued)


@admin_router.post("/{user_id}/verify-email", responses={404: {"description": "No such user"}})
async def mark_email_verified(
    user_id: Annotated[int, Path(ge=1, le=MAX_ID)], admin: CurrentAdmin, db: DatabaseDep
) -> UserRead:
    """Mark a user's email address verified (the administrator vouches for it)."""
    async with db.transaction() as session:
        user = await recovery.mark_email_verified(session, user_id=user_id)
    return UserRead.from_user(user)
