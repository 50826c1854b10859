"""Errors of the accounts package; each maps to one HTTP answer through its base class."""

from __future__ import annotations

from pinelab.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    DuplicateResourceError,
    ErrorDetail,
    ValidationFailed,
)


class EmailAlreadyRegistered(DuplicateResourceError):
    """An account with this email exists already."""

    def __init__(self) -> None:
        super().__init__(
            "An account with this email already exists",
            details=[ErrorDetail("email", "already registered", "duplicate")],
        )


class InvalidEmail(ValidationFailed):
    """The email address is not one we can accept."""

    def __init__(self, reason: str) -> None:
        super().__init__("Invalid email address", details=[ErrorDetail("email", reason)])


class WeakPassword(ValidationFailed):
    """The password breaks the password policy; the detail says which rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"Password not accepted: {reason}",
            details=[ErrorDetail("password", reason, "password_policy")],
        )


class InvalidCredentials(AuthenticationError):
    """Wrong email, wrong password or a disabled account: deliberately one answer for all."""

    def __init__(self) -> None:
        super().__init__("Incorrect email or password")


class InvalidRefreshToken(AuthenticationError):
    """A refresh token that is unknown, expired, revoked or already used."""

    def __init__(self) -> None:
        super().__init__("Invalid or expired refresh token")


class EmailNotVerified(AuthorizationError):
    """The account's email address is not verified yet, and this action needs it."""

    def __init__(self) -> None:
        super().__init__(
            "Verify your email address first: follow the link we sent, or ask for a new one "
            "with POST /api/v1/auth/resend-verification"
        )


class InvalidAccountToken(ValidationFailed):
    """A verification or reset token that is unknown, expired or already used."""

    def __init__(self) -> None:
        super().__init__(
            "Invalid, expired or already used token",
            details=[ErrorDetail("token", "invalid, expired or already used", "invalid_token")],
        )


class WrongCurrentPassword(ValidationFailed):
    """A password change whose current password is not the account's."""

    def __init__(self) -> None:
        super().__init__(
            "The current password is not correct",
            details=[ErrorDetail("current_password", "is not correct", "wrong_password")],
        )


class InvalidTwoFactorCode(ValidationFailed):
    """A TOTP or backup code that is wrong, already used or outside the allowed clock drift."""

    def __init__(self) -> None:
        super().__init__(
            "The code is not valid", details=[ErrorDetail("code", "not a valid code", "invalid")]
        )


class InvalidLoginChallenge(AuthenticationError):
    """A login challenge that is unknown, expired, used, or out of attempts: log in again."""

    def __init__(self) -> None:
        super().__init__("Invalid or expired login challenge; log in again")


class TwoFactorStateConflict(ConflictError):
    """A 2FA step that does not fit the account's state (e.g. enable before setup)."""


class TwoFactorRequired(AuthorizationError):
    """An administrator without 2FA while the install requires it of administrators."""

    def __init__(self) -> None:
        super().__init__(
            "Two-factor authentication is required for administrators: "
            "enable it at POST /api/v1/auth/2fa/setup"
        )
