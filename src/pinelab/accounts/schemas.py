"""Request and response bodies of the accounts API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field

from pinelab.accounts.models import AuthSession, User
from pinelab.accounts.passwords import MAX_PASSWORD_LENGTH
from pinelab.accounts.service import IssuedTokens
from pinelab.api.schemas import StrictBody

# Refresh tokens we issue are 43 characters; the cap only bounds what is read.
RefreshTokenField = Annotated[str, Field(min_length=1, max_length=256)]
PasswordField = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


class RegisterRequest(StrictBody):
    """A new account: email and password (15 to 128 characters, not a guessable one)."""

    email: EmailStr
    password: PasswordField


class LoginRequest(StrictBody):
    """Credentials of an account."""

    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: PasswordField


class RefreshRequest(StrictBody):
    """A refresh token to trade for new tokens."""

    refresh_token: RefreshTokenField


class LogoutRequest(StrictBody):
    """The refresh token of the session to end."""

    refresh_token: RefreshTokenField


class TokenResponse(BaseModel):
    """A short-lived access token and the refresh token that renews it (shown once)."""

    access_token: Annotated[str, Field(max_length=2048)]
    refresh_token: Annotated[str, Field(max_length=256)]
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: Annotated[int, Field(description="Seconds the access token is valid")]

    @classmethod
    def from_issued(cls, issued: IssuedTokens) -> TokenResponse:
        """Build the answer from freshly issued tokens."""
        return cls(
            access_token=issued.access_token,
            refresh_token=issued.refresh_token,
            expires_in=issued.expires_in,
        )


class UserRead(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: int
    email: Annotated[str, Field(max_length=320)]
    role: Literal["user", "admin"]
    email_verified: bool
    created_at: datetime

    @classmethod
    def from_user(cls, user: User) -> UserRead:
        """Build the public view of a user."""
        return cls.model_validate(
            {
                "id": user.id,
                "email": user.email,
                "role": user.role,
                "email_verified": user.email_verified_at is not None,
                "created_at": user.created_at,
            }
        )


# Tokens we mail are 43 characters; the cap only bounds what is read.
AccountTokenField = Annotated[str, Field(min_length=1, max_length=256)]
EmailField = Annotated[str, Field(min_length=1, max_length=320)]


class EmailRequest(StrictBody):
    """An email address to send a message to, if it has an account."""

    email: EmailField


class TokenRequest(StrictBody):
    """A token from an email."""

    token: AccountTokenField


class ResetPasswordRequest(StrictBody):
    """A reset token from an email and the new password (15 to 128 characters)."""

    token: AccountTokenField
    new_password: PasswordField


class ChangePasswordRequest(StrictBody):
    """The current password and the new one (15 to 128 characters)."""

    current_password: PasswordField
    new_password: PasswordField


class AcceptedResponse(BaseModel):
    """The same answer whether or not the address has an account."""

    message: str


class ResetTokenStatus(BaseModel):
    """A reset token that can still be used, and until when."""

    valid: Literal[True] = True
    expires_at: datetime


# ----------------------------------------------------------------------------- 2FA and sessions

# A TOTP code is 6 digits; a backup code 16 hex digits, hyphens and spaces allowed.
CodeField = Annotated[str, Field(min_length=6, max_length=32, pattern=r"^[0-9A-Fa-f \-]+$")]


class TwoFactorCodeRequest(StrictBody):
    """A code from the authenticator app (or, where accepted, a backup code)."""

    code: CodeField


class TwoFactorLoginRequest(StrictBody):
    """The second step of a login: its challenge and a TOTP or backup code."""

    challenge: RefreshTokenField
    code: CodeField


class TwoFactorChallengeResponse(BaseModel):
    """A login whose password checked out and that needs its second factor (no tokens yet)."""

    two_factor_required: Literal[True] = True
    challenge: Annotated[str, Field(max_length=256, description="For POST /auth/login/2fa")]
    expires_in: Annotated[int, Field(description="Seconds the challenge is valid")]


class TwoFactorSetupResponse(BaseModel):
    """What the authenticator app scans: shown once, at setup."""

    otpauth_uri: Annotated[str, Field(max_length=1024)]
    qr_svg: Annotated[str, Field(max_length=200_000, description="The URI as an SVG QR code")]


class BackupCodesResponse(BaseModel):
    """Ten one-time backup codes, shown once; any earlier ones stop working."""

    backup_codes: list[Annotated[str, Field(max_length=32)]]


class SessionRead(BaseModel):
    """A live login of the user: where from, when it began and when it was last used."""

    id: int
    device: Annotated[str | None, Field(max_length=255, description="The client's user agent")]
    ip_address: Annotated[str | None, Field(max_length=64)]
    created_at: datetime
    last_used_at: datetime | None
    current: Annotated[bool, Field(description="Whether this request came through it")]

    @classmethod
    def from_session(cls, row: AuthSession, *, current_id: int | None) -> SessionRead:
        """Build the view of one session."""
        return cls(
            id=row.id,
            device=row.user_agent,
            ip_address=row.ip_address,
            created_at=row.signed_in_at or row.created_at,
            last_used_at=row.last_used_at,
            current=row.id == current_id,
        )
