"""HTTP routes of the accounts package: register, login, refresh, logout and me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from pinelab.accounts import service, sessions, two_factor
from pinelab.accounts.dependencies import (
    CurrentSessionIdDep,
    CurrentUser,
    LoginLimiterDep,
    VaultDep,
)
from pinelab.accounts.exceptions import InvalidRefreshToken, InvalidTwoFactorCode
from pinelab.accounts.schemas import (
    BackupCodesResponse,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    SessionRead,
    TokenResponse,
    TwoFactorChallengeResponse,
    TwoFactorCodeRequest,
    TwoFactorLoginRequest,
    TwoFactorSetupResponse,
    UserRead,
)
from pinelab.api.deps import DatabaseDep, SecretKeyDep, SettingsDep
from pinelab.api.request import client_ip
from pinelab.ops.dependencies import RateLimitsDep, limit_by_address, limit_sign_in_by_address

router = APIRouter(prefix="/auth", tags=["auth"])
# Every unauthenticated route counts against the caller's address; sign-in routes twice.
ANONYMOUS = [Depends(limit_by_address)]
SIGN_IN = [Depends(limit_by_address), Depends(limit_sign_in_by_address)]
NO_STORE = {"Cache-Control": "no-store"}
SessionId = Annotated[int, Path(ge=1, le=2**63 - 1)]


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
async def register(body: RegisterRequest, db: DatabaseDep) -> UserRead:
    """Create an account; the email must be free and the password pass the policy."""
    async with db.transaction() as session:
        user = await service.create_user(session, email=body.email, password=body.password)
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
) -> TokenResponse | TwoFactorChallengeResponse:
    """Exchange email and password for tokens, or for a 2FA challenge when 2FA is on."""
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
        issued = await service.start_session(session, login=verified, policy=policy, origin=origin)
    return TokenResponse.from_issued(issued)


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
) -> TokenResponse:
    """Finish a login with its challenge and a TOTP or backup code; answer the tokens."""
    async with db.transaction() as session:
        verified = await two_factor.answer_challenge(
            session, challenge=body.challenge, code=body.code, check=check
        )
        issued = (
            None
            if verified is None
            else await service.start_session(session, login=verified, policy=policy, origin=origin)
        )
    if issued is None:  # a wrong code: its spent attempt was committed above
        raise InvalidTwoFactorCode
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
