"""HTTP routes of the accounts package: sign-up and email verification, login (with its second
factor), refresh, logout, me, password reset and change, 2FA, sessions, and the admin's
mark-verified."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.accounts import recovery, service, sessions, two_factor
from pinelab.accounts.dependencies import (
    CurrentAdmin,
    CurrentSessionIdDep,
    CurrentUser,
    LoginLimiterDep,
    RecoveryLimitsDep,
    VaultDep,
)
from pinelab.accounts.exceptions import InvalidRefreshToken, InvalidTwoFactorCode
from pinelab.accounts.schemas import (
    AcceptedResponse,
    BackupCodesResponse,
    ChangePasswordRequest,
    EmailRequest,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    ResetTokenStatus,
    SessionRead,
    TokenRequest,
    TokenResponse,
    TwoFactorChallengeResponse,
    TwoFactorCodeRequest,
    TwoFactorLoginRequest,
    TwoFactorSetupResponse,
    UserRead,
)
from pinelab.api.deps import DatabaseDep, SecretKeyDep, SettingsDep
from pinelab.api.request import client_ip
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.jobs.dependencies import WorkerDep
from pinelab.jobs.worker import Worker
from pinelab.ops.dependencies import RateLimitsDep, limit_by_address, limit_sign_in_by_address

router = APIRouter(prefix="/auth", tags=["auth"])
admin_router = APIRouter(prefix="/admin/users", tags=["admin"])
# Every unauthenticated route counts against the caller's address; sign-in routes twice.
ANONYMOUS = [Depends(limit_by_address)]
SIGN_IN = [Depends(limit_by_address), Depends(limit_sign_in_by_address)]
NO_STORE = {"Cache-Control": "no-store"}
SessionId = Annotated[int, Path(ge=1, le=2**63 - 1)]
UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]

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


@router.post(
    "/register",
    status_code=201,
    responses={409: {"description": "Email taken"}},
    dependencies=SIGN_IN,
)
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
    dependencies=SIGN_IN,
)
async def login(
    body: LoginRequest,
    db: DatabaseDep,
    settings: SettingsDep,
    policy: PolicyDep,
    origin: OriginDep,
    limiter: LoginLimiterDep,
    worker: WorkerDep,
) -> TokenResponse | TwoFactorChallengeResponse:
    """Exchange email and password for tokens, or for a 2FA challenge when 2FA is on.

    A sign-in from a new device is emailed (here, or after the second factor with 2FA on).
    """
    # Checked outside the write transaction: argon2 is slow and SQLite has a single writer.
    async with db.session() as session:
        verified = await service.check_credentials(
            session, email=body.email, password=body.password, limiter=limiter
        )
    ttl = settings.two_factor_challenge_ttl_seconds
    async with db.transaction() as session:
        if await two_factor.is_enabled(session, verified.user_id):
            challenge = await two_factor.open_challenge(session, login=verified, ttl_seconds=ttl)
            return TwoFactorChallengeResponse(challenge=challenge, expires_in=ttl)
        noticed = await _notice_new_device(
            session, verified, origin=origin, max_attempts=settings.max_retry_attempts
        )
        issued = await service.start_session(session, login=verified, policy=policy, origin=origin)
    if noticed:
        worker.wake()
    return TokenResponse.from_issued(issued)


async def _notice_new_device(
    session: AsyncSession,
    verified: service.VerifiedLogin,
    *,
    origin: service.SessionOrigin,
    max_attempts: int,
) -> bool:
    """Queue the "new sign-in" email when this device is new to the user (before the session)."""
    return await recovery.notice_new_device(
        session,
        user_id=verified.user_id,
        ip=origin.ip_address,
        user_agent=origin.user_agent,
        max_attempts=max_attempts,
    )


@router.post(
    "/refresh", responses={401: {"description": "Refresh token refused"}}, dependencies=ANONYMOUS
)
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


@router.post("/logout", status_code=204, response_class=Response, dependencies=ANONYMOUS)
async def logout(body: LogoutRequest, db: DatabaseDep) -> None:
    """End the session of a refresh token (answers 204 whether or not it was live)."""
    async with db.transaction() as session:
        await service.logout(session, refresh_token=body.refresh_token)


@router.get("/me", responses={401: {"description": "Missing or invalid access token"}})
async def me(user: CurrentUser) -> UserRead:
    """Return the signed-in user."""
    return UserRead.from_user(user)


@router.post("/verify-email", responses=_BAD_TOKEN, dependencies=ANONYMOUS)
async def verify_email(
    body: TokenRequest, db: DatabaseDep, origin: OriginDep, limits: RecoveryLimitsDep
) -> UserRead:
    """Confirm an email address with the token mailed to it (once, within 48 hours)."""
    await limits.check("verify-email", ip=origin.ip_address)
    async with db.transaction() as session:
        user = await recovery.verify_email(session, token=body.token)
    return UserRead.from_user(user)


@router.post("/resend-verification", status_code=202, responses=_TOO_MANY, dependencies=ANONYMOUS)
async def resend_verification(
    body: EmailRequest,
    db: DatabaseDep,
    settings: SettingsDep,
    origin: OriginDep,
    limits: RecoveryLimitsDep,
    worker: WorkerDep,
) -> AcceptedResponse:
    """Mail a new verification link; the same answer whether or not the address has an account."""
    await limits.check("resend-verification", ip=origin.ip_address, email=body.email)
    await _queue_email(db, worker, recovery.VERIFY_EMAIL, body.email, origin, settings)
    return AcceptedResponse(message=EMAIL_ON_ITS_WAY.format(what="an unverified account"))


@router.post("/request-reset", status_code=202, responses=_TOO_MANY, dependencies=ANONYMOUS)
async def request_reset(
    body: EmailRequest,
    db: DatabaseDep,
    settings: SettingsDep,
    origin: OriginDep,
    limits: RecoveryLimitsDep,
    worker: WorkerDep,
) -> AcceptedResponse:
    """Mail a password-reset link; the same answer and work whether or not the address exists."""
    await limits.check("request-reset", ip=origin.ip_address, email=body.email)
    await _queue_email(db, worker, recovery.RESET_PASSWORD, body.email, origin, settings)
    return AcceptedResponse(message=EMAIL_ON_ITS_WAY.format(what="an account"))


async def _queue_email(
    db: Database,
    worker: Worker,
    kind: str,
    email: str,
    origin: service.SessionOrigin,
    settings: Settings,
) -> None:
    """Queue an account email by address: the job finds the account, if any, and mails it."""
    async with db.transaction() as session:
        await recovery.queue_account_email(
            session,
            kind,
            email=email,
            ip=origin.ip_address,
            max_attempts=settings.max_retry_attempts,
        )
    worker.wake()


@router.post("/validate-reset-token", responses=_BAD_TOKEN, dependencies=ANONYMOUS)
async def validate_reset_token(
    body: TokenRequest, db: DatabaseDep, origin: OriginDep, limits: RecoveryLimitsDep
) -> ResetTokenStatus:
    """Tell whether a reset token can still be used (it is not spent by asking)."""
    await limits.check("validate-reset-token", ip=origin.ip_address)
    async with db.session() as session:
        expires_at = await recovery.check_reset_token(session, token=body.token)
    return ResetTokenStatus(expires_at=expires_at)


@router.post("/reset-password", responses=_BAD_TOKEN, dependencies=ANONYMOUS)
async def reset_password(
    body: ResetPasswordRequest,
    db: DatabaseDep,
    settings: SettingsDep,
    origin: OriginDep,
    limits: RecoveryLimitsDep,
    worker: WorkerDep,
) -> AcceptedResponse:
    """Set a new password with a reset token; every session ends and a confirmation is mailed."""
    await limits.check("reset-password", ip=origin.ip_address)
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
    await limits.check("change-password", ip=origin.ip_address, email=user.email)
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
async def mark_email_verified(user_id: UserId, admin: CurrentAdmin, db: DatabaseDep) -> UserRead:
    """Mark a user's email address verified (the administrator vouches for it)."""
    async with db.transaction() as session:
        user = await recovery.mark_email_verified(session, user_id=user_id)
    return UserRead.from_user(user)


# ----------------------------------------------------------------------------- 2FA


def _code_check(vault: VaultDep, limits: RateLimitsDep) -> two_factor.CodeCheck:
    return two_factor.CodeCheck(vault=vault, limit=limits.two_factor)


CodeCheckDep = Annotated[two_factor.CodeCheck, Depends(_code_check)]


@router.post(
    "/login/2fa",
    responses={401: {"description": "Challenge refused"}, 422: {"description": "Wrong code"}},
    dependencies=SIGN_IN,
)
async def login_second_factor(
    body: TwoFactorLoginRequest,
    db: DatabaseDep,
    policy: PolicyDep,
    origin: OriginDep,
    check: CodeCheckDep,
    settings: SettingsDep,
    worker: WorkerDep,
) -> TokenResponse:
    """Finish a login with its challenge and a TOTP or backup code; answer the tokens.

    A sign-in from a new device is emailed, as after a login without 2FA.
    """
    issued: service.IssuedTokens | None = None
    noticed = False
    async with db.transaction() as session:
        verified = await two_factor.answer_challenge(
            session, challenge=body.challenge, code=body.code, check=check
        )
        if verified is not None:
            noticed = await _notice_new_device(
                session, verified, origin=origin, max_attempts=settings.max_retry_attempts
            )
            issued = await service.start_session(
                session, login=verified, policy=policy, origin=origin
            )
    if issued is None:  # a wrong code: its spent attempt was committed above
        raise InvalidTwoFactorCode
    if noticed:
        worker.wake()
    return TokenResponse.from_issued(issued)


@router.post("/2fa/setup", responses={409: {"description": "2FA already enabled"}})
async def setup_two_factor(
    user: CurrentUser, db: DatabaseDep, settings: SettingsDep, vault: VaultDep, response: Response
) -> TwoFactorSetupResponse:
    """Start 2FA: a new secret as an otpauth URI and its QR code (shown once; not yet on)."""
    async with db.transaction() as session:
        enrolment = await two_factor.begin_setup(
            session, user=user, vault=vault, issuer=settings.two_factor_issuer
        )
    response.headers.update(NO_STORE)
    return TwoFactorSetupResponse(otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg)


@router.post("/2fa/enable", responses={409: {"description": "No setup, or already on"}})
async def enable_two_factor(
    body: TwoFactorCodeRequest,
    user: CurrentUser,
    db: DatabaseDep,
    check: CodeCheckDep,
    response: Response,
) -> BackupCodesResponse:
    """Turn 2FA on with a code from the app; answer ten one-time backup codes (shown once)."""
    async with db.transaction() as session:
        codes = await two_factor.enable(session, user_id=user.id, code=body.code, check=check)
    response.headers.update(NO_STORE)
    return BackupCodesResponse(backup_codes=codes)


@router.post("/2fa/disable", status_code=204, response_class=Response)
async def disable_two_factor(
    body: TwoFactorCodeRequest,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
    check: CodeCheckDep,
) -> None:
    """Turn 2FA off with a TOTP or backup code (not for admins when 2FA is required of them)."""
    required = settings.require_2fa_for_admins and user.role == "admin"
    async with db.transaction() as session:
        await two_factor.disable(session, user=user, code=body.code, check=check, required=required)


@router.post("/2fa/backup-codes", responses={409: {"description": "2FA is not on"}})
async def regenerate_backup_codes(
    body: TwoFactorCodeRequest,
    user: CurrentUser,
    db: DatabaseDep,
    check: CodeCheckDep,
    response: Response,
) -> BackupCodesResponse:
    """Replace the backup codes after a TOTP code; answer the ten new ones (shown once)."""
    async with db.transaction() as session:
        codes = await two_factor.regenerate_backup_codes(
            session, user_id=user.id, code=body.code, check=check
        )
    response.headers.update(NO_STORE)
    return BackupCodesResponse(backup_codes=codes)


# ----------------------------------------------------------------------------- sessions


@router.get("/sessions")
async def list_sessions(
    user: CurrentUser, db: DatabaseDep, current: CurrentSessionIdDep
) -> list[SessionRead]:
    """List the user's live sessions: device, address, when begun and last used."""
    async with db.session() as session:
        rows = await sessions.list_sessions(session, user_id=user.id)
    return [SessionRead.from_session(row, current_id=current) for row in rows]


@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    response_class=Response,
    responses={404: {"description": "No such live session of yours"}},
)
async def revoke_session(session_id: SessionId, user: CurrentUser, db: DatabaseDep) -> None:
    """Revoke one of the user's sessions: its refresh and access tokens stop working."""
    async with db.transaction() as session:
        await sessions.revoke_session(session, user_id=user.id, session_id=session_id)
