"""Encryption keys: where they come from (environment, key file, passphrase) and the key ring.

Sources, exactly one of which is used (setting two is a configuration error):

- `PINELAB_ENCRYPTION_KEY`: base64 of 32 random bytes, the primary key;
- `PINELAB_ENCRYPTION_KEY_FILE`: a file holding either one base64 key, or JSON
  `{"version": 1, "primary": "<base64>", "old": ["<base64>", ...]}`;
- `PINELAB_ENCRYPTION_PASSPHRASE`: stretched with scrypt (n=2**17, r=8, p=1) and a 16-byte salt
  from `PINELAB_ENCRYPTION_SALT` or the salt file `DATA_DIR/encryption.salt` (made on first use).

`PINELAB_ENCRYPTION_OLD_KEYS` (comma-separated base64 keys) and
`PINELAB_ENCRYPTION_OLD_PASSPHRASE` add decrypt-only keys to any source. With none of them set,
development and test use `DATA_DIR/encryption.key`, generated on first run with mode 0600;
production refuses to start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import structlog
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pinelab.config import Settings
from pinelab.vault.exceptions import KeyConfigurationError

log = structlog.get_logger(__name__)

KEY_BYTES: Final = 32
SALT_BYTES: Final = 16
KEY_FILE_NAME: Final = "encryption.key"
SALT_FILE_NAME: Final = "encryption.salt"
SCRYPT_N: Final = 2**17
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
MIN_PASSPHRASE_LENGTH: Final = 12
KEY_FILE_VERSION: Final = 1


@dataclass(frozen=True)
class EncryptionKey:
    """A 256-bit AES key and its public id (the first 8 hex digits of its SHA-256)."""

    material: bytes = field(repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise KeyConfigurationError(f"an encryption key must be {KEY_BYTES} bytes")
        object.__setattr__(self, "key_id", hashlib.sha256(self.material).hexdigest()[:8])

    @classmethod
    def generate(cls) -> EncryptionKey:
        """Return a new random key."""
        return cls(secrets.token_bytes(KEY_BYTES))

    def encoded(self) -> str:
        """Return the key as base64, the form settings and key files hold."""
        return base64.b64encode(self.material).decode()


@dataclass(frozen=True)
class KeyRing:
    """The primary key (encrypts) and older keys (decrypt only), found by key id."""

    primary: EncryptionKey
    older: tuple[EncryptionKey, ...] = ()
    source: str = "environment"
    key_file: Path | None = None

    def get(self, key_id: str) -> EncryptionKey | None:
        """Return the key with this id, or None."""
        for key in (self.primary, *self.older):
            if key.key_id == key_id:
                return key
        return None

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Return every key id, the primary's first."""
        return tuple(key.key_id for key in (self.primary, *self.older))

    def with_file(self, path: Path) -> KeyRing:
        """Return this ring, remembering the key file it was read from."""
        return replace(self, key_file=path)

    def promoted(self, new_primary: EncryptionKey) -> KeyRing:
        """Return a ring where `new_primary` encrypts and every current key only decrypts."""
        ring = _ring(new_primary, (self.primary, *self.older), source=self.source)
        return replace(ring, key_file=self.key_file)


def decode_key(text: str, *, setting: str) -> EncryptionKey:
    """Read a base64 (standard or URL-safe) 32-byte key; an error names the setting, not the key."""
    cleaned = text.strip()
    try:
        padded = cleaned + "=" * (-len(cleaned) % 4)
        material = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        material = b""
    if len(material) != KEY_BYTES:
        raise KeyConfigurationError(
            f"{setting} must be base64 of {KEY_BYTES} random bytes (make one with "
            "`openssl rand -base64 32`)"
        )
    return EncryptionKey(material)


def load_keyring(settings: Settings) -> KeyRing:
    """Build the key ring from the settings, or raise KeyConfigurationError naming what to set."""
    chosen = [
        name
        for name, value in (
            ("PINELAB_ENCRYPTION_KEY", settings.encryption_key),
            ("PINELAB_ENCRYPTION_KEY_FILE", settings.encryption_key_file),
            ("PINELAB_ENCRYPTION_PASSPHRASE", settings.encryption_passphrase),
        )
        if value
    ]
    if len(chosen) > 1:
        raise KeyConfigurationError(f"set only one of {', '.join(chosen)}")
    extra = _old_keys(settings)
    if settings.encryption_key:
        primary = decode_key(settings.encryption_key, setting="PINELAB_ENCRYPTION_KEY")
        return _ring(primary, extra, source="environment")
    if settings.encryption_passphrase:
        primary = derive_key(
            settings.encryption_passphrase, settings, "PINELAB_ENCRYPTION_PASSPHRASE"
        )
        return _ring(primary, extra, source="passphrase")
    if settings.encryption_key_file is not None:
        return read_key_file(settings.encryption_key_file, extra=extra)
    if settings.env == "production":
        raise KeyConfigurationError(
            "no encryption key: set PINELAB_ENCRYPTION_KEY (base64 of 32 random bytes), "
            "PINELAB_ENCRYPTION_KEY_FILE or PINELAB_ENCRYPTION_PASSPHRASE"
        )
    return _default_key_file(settings.data_dir / KEY_FILE_NAME, extra)


def _ring(primary: EncryptionKey, older: Iterable[EncryptionKey], *, source: str) -> KeyRing:
    unique = {key.key_id: key for key in older if key.key_id != primary.key_id}
    return KeyRing(primary, tuple(unique.values()), source=source)


def _old_keys(settings: Settings) -> list[EncryptionKey]:
    keys = [
        decode_key(item, setting="PINELAB_ENCRYPTION_OLD_KEYS")
        for item in settings.encryption_old_keys.split(",")
        if item.strip()
    ]
    if settings.encryption_old_passphrase:
        keys.append(
            derive_key(
                settings.encryption_old_passphrase, settings, "PINELAB_ENCRYPTION_OLD_PASSPHRASE"
            )
        )
    return keys


def derive_key(passphrase: str, settings: Settings, setting: str) -> EncryptionKey:
    """Stretch a passphrase into a key with scrypt and the deployment's salt."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise KeyConfigurationError(
            f"{setting} must be at least {MIN_PASSPHRASE_LENGTH} characters"
        )
    kdf = Scrypt(salt=_salt(settings), length=KEY_BYTES, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return EncryptionKey(kdf.derive(passphrase.encode()))


def _salt(settings: Settings) -> bytes:
    """Return the KDF salt: PINELAB_ENCRYPTION_SALT, else the salt file (made on first use)."""
    if settings.encryption_salt:
        try:
            salt = base64.b64decode(settings.encryption_salt, validate=True)
        except (binascii.Error, ValueError):
            salt = b""
        if len(salt) < SALT_BYTES:
            raise KeyConfigurationError(
                f"PINELAB_ENCRYPTION_SALT must be base64 of at least {SALT_BYTES} bytes"
            )
        return salt
    path = settings.data_dir / SALT_FILE_NAME
    if path.exists():
        record = _read_json(path, "the salt file")
        if record.get("kdf") != "scrypt" or not isinstance(record.get("salt"), str):
            raise KeyConfigurationError(f"{path} is not a PineLab salt file")
        return base64.b64decode(record["salt"])
    salt = secrets.token_bytes(SALT_BYTES)
    record = {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
              "salt": base64.b64encode(salt).decode()}  # fmt: skip
    _write_private(path, json.dumps(record, indent=2))
    log.warning(
        "generated_encryption_salt",
        path=str(path),
        hint="keep this file with the database, or set PINELAB_ENCRYPTION_SALT on every machine",
    )
    return salt


def read_key_file(path: Path, *, extra: Iterable[EncryptionKey] = ()) -> KeyRing:
    """Read a key file (one base64 key, or JSON with a primary and old keys)."""
    setting = "PINELAB_ENCRYPTION_KEY_FILE"
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyConfigurationError(f"{setting}: cannot read {path} ({exc.strerror})") from None
    _warn_if_readable_by_others(path)
    if not text.startswith("{"):
        return _ring(decode_key(text, setting=setting), extra, source="key file").with_file(path)
    record = _read_json(path, "the key file")
    primary = record.get("primary")
    old = record.get("old", [])
    if not isinstance(primary, str) or not isinstance(old, list):
        raise KeyConfigurationError(f"{path} must hold a 'primary' key and a list of 'old' keys")
    older = [decode_key(str(item), setting=f"{path} 'old'") for item in old]
    ring = _ring(
        decode_key(primary, setting=f"{path} 'primary'"), [*older, *extra], source="key file"
    )
    return ring.with_file(path)


def write_key_file(path: Path, ring: KeyRing) -> None:
    """Write a key ring to a key file atomically, readable by its owner only."""
    record = {
        "version": KEY_FILE_VERSION,
        "primary": ring.primary.encoded(),
        "old": [key.encoded() for key in ring.older],
    }
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    _write_private(temporary, json.dumps(record, indent=2) + "\n")
    os.replace(temporary, path)


def _default_key_file(path: Path, extra: list[EncryptionKey]) -> KeyRing:
    if path.exists():
        return read_key_file(path, extra=extra)
    ring = KeyRing(EncryptionKey.generate(), source="key file", key_file=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_key_file(path, ring)
    log.warning(
        "generated_encryption_key",
        path=str(path),
        key_id=ring.primary.key_id,
        hint=(
            "DEVELOPMENT ONLY: broker credentials are encrypted with a key generated into the "
            "data dir. Back this file up (without it they cannot be decrypted) and set "
            "PINELAB_ENCRYPTION_KEY or PINELAB_ENCRYPTION_KEY_FILE in production."
        ),
    )
    return read_key_file(path, extra=extra)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        raise KeyConfigurationError(f"{what} {path} is not readable JSON") from None
    if not isinstance(record, dict):
        raise KeyConfigurationError(f"{what} {path} must hold a JSON object")
    return record


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _warn_if_readable_by_others(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("encryption_key_file_not_private", path=str(path), mode=oct(mode & 0o777))
