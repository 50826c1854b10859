"""Passwords (argon2id), JWTs (one audience per purpose) and opaque-token hashing."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pinelab.clock import now

ACCESS_AUDIENCE = "pinelab:access"
ISSUER = "pinelab"
ALGORITHM = "HS256"

_hasher = PasswordHasher()
# Hashed once so that logins for unknown emails cost the same as for known ones.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """Return an argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password: str, stored_hash: str | None) -> tuple[bool, str | None]:
    """Check a password; return (ok, a new hash when the stored one needs rehashing)."""
    try:
        _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if stored_hash is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored_hash) else None)


def hash_opaque_token(token: str) -> str:
    """Return the stored form of an opaque token (refresh, reset, verification)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_opaque_token() -> str:
    """Return a fresh random opaque token."""
    return secrets.token_urlsafe(32)


def encode_jwt(
    *, subject: str, audience: str, key: str, ttl_seconds: int, claims: dict[str, Any] | None = None
) -> str:
    """Sign a short-lived JWT for one purpose (its audience)."""
    issued = now()
    payload: dict[str, Any] = {
        "sub": subject,
        "aud": audience,
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + timedelta(seconds=ttl_seconds),
        "jti": secrets.token_hex(8),
        **(claims or {}),
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM)


def decode_jwt(token: str, *, audience: str, key: str) -> dict[str, Any] | None:
    """Return the claims of a valid JWT for this audience, or None."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            # Time is checked below against the one clock (PyJWT would read the system's).
            options={
                "require": ["exp", "sub", "aud", "iss"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now().timestamp():
        return None
    return claims
