"""TOTP two-factor authentication (RFC 6238): setup, enable, disable, backup codes, login.

The TOTP secret is sealed in the vault, bound to its row ("two_factor:<id>:totp_secret"), and
leaves the server once: inside the setup answer's otpauth URI and QR code. A code is accepted
once: the last accepted time step is stored and only later steps are taken (pyotp's `verify`
does not remember), with one step (30 s) of clock drift either way. Backup codes are 64 random
bits each, stored as salted SHA-256 digests, each good once.

A login with 2FA on opens a challenge instead of a session: 32 random bytes stored as SHA-256,
valid for minutes, used once, dead after five wrong codes, and bound to the password hash that
was checked, so a password change in between kills it. Wrong codes are also counted per account
(across challenges and the enable, disable and backup-code steps): past the limit every code is
refused with 429 for a while, right or wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

import pyotp
import segno
import structlog
from sqlalchemy import CursorResult, Table, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.accounts import security
from pinelab.accounts.exceptions import (
    InvalidLoginChallenge,
    InvalidTwoFactorCode,
    TwoFactorRequired,
    TwoFactorStateConflict,
)
from pinelab.accounts.models import User
from pinelab.accounts.service import VerifiedLogin
from pinelab.accounts.two_factor_models import BackupCode, LoginChallenge, TwoFactor
from pinelab.clock import now
from pinelab.ops.ratelimit import Limit
from pinelab.vault import UndecryptableSecret, Vault
from pinelab.vault.rotation import EncryptedColumn

log = structlog.get_logger(__name__)

SECRET_COLUMN: Final = EncryptedColumn(
    table=cast(Table, TwoFactor.__table__), column="secret_encrypted", purpose="totp_secret"
)
BACKUP_CODE_COUNT: Final = 10
DRIFT_STEPS: Final = 1
CHALLENGE_ATTEMPTS: Final = 5
THROTTLED: Final = "Too many wrong two-factor codes; try again later"
_TOTP_LENGTH: Final = 6
_BACKUP_CODE_HEX: Final = 16


@dataclass(frozen=True)
class Enrolment:
    """What the authenticator app needs: shown once, never logged."""

    otpauth_uri: str = field(repr=False)
    qr_svg: str = field(repr=False)


@dataclass(frozen=True)
class CodeCheck:
    """Everything a code is checked with: the vault, the throttle, and which kinds count."""

    vault: Vault
    limit: Limit
    allow_backup: bool = True


async def is_enabled(session: AsyncSession, user_id: int) -> bool:
    """Tell whether a user has 2FA on."""
    found = await _two_factor(session, user_id)
    return found is not None and found.enabled_at is not None


async def begin_setup(session: AsyncSession, *, user: User, vault: Vault, issuer: str) -> Enrolment:
    """Make a new pending secret for a user without 2FA; return its URI and QR code."""
    found = await _two_factor(session, user.id)
    if found is not None and found.enabled_at is not None:
        raise TwoFactorStateConflict("Two-factor authentication is already enabled")
    if found is None:
        found = TwoFactor(user_id=user.id, secret_encrypted="")
        session.add(found)
        await session.flush()
    secret = pyotp.random_base32()
    found.secret_encrypted = vault.encrypt(secret.encode(), context=SECRET_COLUMN.context(found.id))
    found.last_used_step = None
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer)
    return Enrolment(otpauth_uri=uri, qr_svg=segno.make_qr(uri, error="m").svg_inline(scale=4))


async def enable(session: AsyncSession, *, user_id: int, code: str, check: CodeCheck) -> list[str]:
    """Turn 2FA on with a code from the pending secret; return ten fresh backup codes."""
    found = await _two_factor(session, user_id)
    if found is None or found.enabled_at is not None:
        message = "Run setup first" if found is None else "Already enabled"
        raise TwoFactorStateConflict(f"Two-factor authentication cannot be enabled: {message}")
    await _require_totp(session, found, code, check)
    found.enabled_at = now()
    log.info("two_factor_enabled", user_id=user_id)
    return await _replace_backup_codes(session, user_id)


async def disable(
    session: AsyncSession, *, user: User, code: str, check: CodeCheck, required: bool
) -> None:
    """Turn 2FA off with a TOTP or backup code (refused when the user's role requires it)."""
    found = await _enabled(session, user.id)
    if required:
        raise TwoFactorRequired
    await _require_code(session, found, code, check)
    await session.execute(delete(BackupCode).where(BackupCode.user_id == user.id))
    await session.delete(found)
    log.info("two_factor_disabled", user_id=user.id)


async def regenerate_backup_codes(
    session: AsyncSession, *, user_id: int, code: str, check: CodeCheck
) -> list[str]:
    """Replace every backup code, after a TOTP code; return the ten new ones."""
    found = await _enabled(session, user_id)
    await _require_totp(session, found, code, check)
    log.info("two_factor_backup_codes_regenerated", user_id=user_id)
    return await _replace_backup_codes(session, user_id)


async def open_challenge(session: AsyncSession, *, login: VerifiedLogin, ttl_seconds: int) -> str:
    """Park a checked login until its second factor; return the challenge (shown once)."""
    challenge = security.new_opaque_token()
    moment = now()
    session.add(
        LoginChallenge(
            user_id=login.user_id,
            challenge_hash=security.hash_opaque_token(challenge),
            password_fingerprint=_fingerprint(login.checked_hash),
            created_at=moment,
            expires_at=moment + timedelta(seconds=ttl_seconds),
        )
    )
    return challenge


async def answer_challenge(
    session: AsyncSession, *, challenge: str, code: str, check: CodeCheck
) -> VerifiedLogin | None:
    """Check a challenge's code: the login to open a session for, or None for a wrong code.

    A wrong code counts against the challenge, so the caller commits whatever the answer.
    """
    found = await _live_challenge(session, challenge)
    await check.limit.check(str(found.user_id), THROTTLED, count=False)
    if not await _spend_attempt(session, found.id):
        raise InvalidLoginChallenge
    two_factor = await _two_factor(session, found.user_id)
    user = await session.get(User, found.user_id)
    if two_factor is None or two_factor.enabled_at is None or user is None:
        raise InvalidLoginChallenge
    if not await _code_matches(session, two_factor, code, check):
        await check.limit.hit(str(found.user_id))
        return None
    claimed = await session.execute(
        update(LoginChallenge)
        .where(LoginChallenge.id == found.id, LoginChallenge.used_at.is_(None))
        .values(used_at=now())
    )
    fresh = _fingerprint(user.password_hash) == found.password_fingerprint
    if _rowcount(claimed) != 1 or not fresh or not user.is_active:
        raise InvalidLoginChallenge
    return VerifiedLogin(user_id=user.id, checked_hash=user.password_hash)


async def remove_expired_challenges(session: AsyncSession) -> int:
    """Delete challenges past their expiry; return how many."""
    result = await session.execute(delete(LoginChallenge).where(LoginChallenge.expires_at <= now()))
    return _rowcount(result)


# ----------------------------------------------------------------------------- codes


async def _require_totp(
    session: AsyncSession, found: TwoFactor, code: str, check: CodeCheck
) -> None:
    await _require_code(session, found, code, CodeCheck(check.vault, check.limit, False))


async def _require_code(
    session: AsyncSession, found: TwoFactor, code: str, check: CodeCheck
) -> None:
    await check.limit.check(str(found.user_id), THROTTLED, count=False)
    if not await _code_matches(session, found, code, check):
        # Counted where it cannot be rolled back: the store is not the database.
        await check.limit.hit(str(found.user_id))
        raise InvalidTwoFactorCode


async def _code_matches(
    session: AsyncSession, found: TwoFactor, code: str, check: CodeCheck
) -> bool:
    typed = code.replace(" ", "").replace("-", "").lower()
    if len(typed) == _TOTP_LENGTH and typed.isdigit():
        return await _totp_matches(session, found, typed, check.vault)
    if check.allow_backup and found.enabled_at is not None and len(typed) == _BACKUP_CODE_HEX:
        return await _spend_backup_code(session, found.user_id, typed)
    return False


async def _totp_matches(session: AsyncSession, found: TwoFactor, typed: str, vault: Vault) -> bool:
    try:
        secret = vault.decrypt(found.secret_encrypted, context=SECRET_COLUMN.context(found.id))
    except UndecryptableSecret as exc:
        log.error("two_factor_secret_undecryptable", user_id=found.user_id)
        raise TwoFactorStateConflict(
            "The two-factor secret cannot be decrypted with the configured keys"
        ) from exc
    step = _matching_step(secret.decode(), typed, now())
    if step is None:
        return False
    # Conditional, so a code (or an older one) replayed, even concurrently, is refused.
    result = await session.execute(
        update(TwoFactor)
        .where(
            TwoFactor.id == found.id,
            or_(TwoFactor.last_used_step.is_(None), TwoFactor.last_used_step < step),
        )
        .values(last_used_step=step)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        return False
    found.last_used_step = step
    return True


def _matching_step(secret: str, typed: str, moment: datetime) -> int | None:
    totp = pyotp.TOTP(secret)
    current = totp.timecode(moment)
    matched = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), typed):
            matched = step
    return matched


async def _spend_backup_code(session: AsyncSession, user_id: int, typed: str) -> bool:
    rows = await session.execute(
        select(BackupCode.id, BackupCode.code_hash).where(
            BackupCode.user_id == user_id, BackupCode.used_at.is_(None)
        )
    )
    for code_id, stored in rows.all():
        salt, _, digest = stored.partition(":")
        if hmac.compare_digest(_digest(salt, typed), digest):
            spent = await session.execute(
                update(BackupCode)
                .where(BackupCode.id == code_id, BackupCode.used_at.is_(None))
                .values(used_at=now())
            )
            return _rowcount(spent) == 1
    return False


async def _replace_backup_codes(session: AsyncSession, user_id: int) -> list[str]:
    await session.execute(delete(BackupCode).where(BackupCode.user_id == user_id))
    codes = [secrets.token_hex(_BACKUP_CODE_HEX // 2) for _ in range(BACKUP_CODE_COUNT)]
    for code in codes:
        salt = secrets.token_hex(16)
        session.add(BackupCode(user_id=user_id, code_hash=f"{salt}:{_digest(salt, code)}"))
    await session.flush()
    return ["-".join(code[i : i + 4] for i in range(0, len(code), 4)) for code in codes]


def _digest(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()


# ----------------------------------------------------------------------------- rows


async def _two_factor(session: AsyncSession, user_id: int) -> TwoFactor | None:
    result = await session.execute(select(TwoFactor).where(TwoFactor.user_id == user_id))
    return result.scalar_one_or_none()


async def _enabled(session: AsyncSession, user_id: int) -> TwoFactor:
    found = await _two_factor(session, user_id)
    if found is None or found.enabled_at is None:
        raise TwoFactorStateConflict("Two-factor authentication is not enabled")
    return found


async def _live_challenge(session: AsyncSession, challenge: str) -> LoginChallenge:
    result = await session.execute(
        select(LoginChallenge).where(
            LoginChallenge.challenge_hash == security.hash_opaque_token(challenge),
            LoginChallenge.used_at.is_(None),
            LoginChallenge.expires_at > now(),
            LoginChallenge.attempts < CHALLENGE_ATTEMPTS,
        )
    )
    found = result.scalar_one_or_none()
    if found is None:
        raise InvalidLoginChallenge
    return found


async def _spend_attempt(session: AsyncSession, challenge_id: int) -> bool:
    result = await session.execute(
        update(LoginChallenge)
        .where(LoginChallenge.id == challenge_id, LoginChallenge.attempts < CHALLENGE_ATTEMPTS)
        .values(attempts=LoginChallenge.attempts + 1)
    )
    return _rowcount(result) == 1


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount
