"""AES-256-GCM envelopes, `v1:<key id>:<base64url(nonce | ciphertext | tag)>`, and the Vault.

Each envelope is bound to where it is stored: the associated data is the version, the key id
and a context naming the row and purpose (e.g. "broker_account:12:credentials"), so a
ciphertext copied to another row, or relabelled with another key id, fails authentication.
Nonces are 96 random bits per encryption (safe for far more than 2**32 secrets per key).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable
from functools import partial
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pinelab.config import Settings
from pinelab.vault.exceptions import UndecryptableSecret
from pinelab.vault.keys import EncryptionKey, KeyRing, load_keyring

ENVELOPE_VERSION: Final = "v1"
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
_ENVELOPE: Final = re.compile(r"^v1:([0-9a-f]{8}):([A-Za-z0-9_-]+={0,2})$")
UNDECRYPTABLE: Final = "credentials cannot be decrypted with the configured keys"


def _associated_data(key_id: str, context: str) -> bytes:
    return f"pinelab-vault:{ENVELOPE_VERSION}:{key_id}:{context}".encode()


def seal(key: EncryptionKey, plaintext: bytes, *, context: str) -> str:
    """Encrypt and authenticate `plaintext` for `context` under `key`; return the envelope."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key.material).encrypt(nonce, plaintext, _associated_data(key.key_id, context))
    payload = base64.urlsafe_b64encode(nonce + sealed).decode()
    return f"{ENVELOPE_VERSION}:{key.key_id}:{payload}"


def key_id_of(envelope: str) -> str:
    """Return the id of the key an envelope was sealed with; raise if it is no envelope."""
    match = _ENVELOPE.match(envelope)
    if match is None:
        raise UndecryptableSecret(f"{UNDECRYPTABLE}: the stored value is not a v1 envelope")
    return match.group(1)


def unseal(ring: KeyRing, envelope: str, *, context: str) -> bytes:
    """Decrypt an envelope sealed for `context` with any key of the ring."""
    key_id = key_id_of(envelope)
    key = ring.get(key_id)
    if key is None:
        raise UndecryptableSecret(f"{UNDECRYPTABLE}: key {key_id} is not configured")
    try:
        raw = base64.urlsafe_b64decode(envelope.rsplit(":", 1)[1])
    except (binascii.Error, ValueError):
        raise UndecryptableSecret(f"{UNDECRYPTABLE}: the envelope is damaged") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise UndecryptableSecret(f"{UNDECRYPTABLE}: the envelope is damaged")
    nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    try:
        return AESGCM(key.material).decrypt(nonce, sealed, _associated_data(key_id, context))
    except InvalidTag:
        raise UndecryptableSecret(
            f"{UNDECRYPTABLE}: authentication failed (tampered, or stored for another row)"
        ) from None


class Vault:
    """Encrypt with the primary key, decrypt with any key; a key file is re-read on a new key id."""

    def __init__(self, ring: KeyRing, *, reload: Callable[[], KeyRing] | None = None) -> None:
        self._ring = ring
        self._reload = reload

    @property
    def ring(self) -> KeyRing:
        """Return the current key ring."""
        return self._ring

    @property
    def primary_key_id(self) -> str:
        """Return the id of the key new secrets are encrypted with."""
        return self._ring.primary.key_id

    def use(self, ring: KeyRing) -> None:
        """Switch to another key ring (after a rotation wrote a new primary)."""
        self._ring = ring

    def encrypt(self, plaintext: bytes, *, context: str) -> str:
        """Encrypt a secret for `context` under the primary key."""
        return seal(self._ring.primary, plaintext, context=context)

    def decrypt(self, envelope: str, *, context: str) -> bytes:
        """Decrypt a secret stored for `context`, or raise UndecryptableSecret."""
        if self._reload is not None and self._ring.get(key_id_of(envelope)) is None:
            # Another process may have rotated the key file since this one read it.
            self._ring = self._reload()
        return unseal(self._ring, envelope, context=context)

    def is_current(self, envelope: str) -> bool:
        """Tell whether an envelope is already under the primary key."""
        return key_id_of(envelope) == self.primary_key_id


def build_vault(settings: Settings) -> Vault:
    """Load the keys the settings name (KeyConfigurationError if none in production)."""
    ring = load_keyring(settings)
    reload = partial(load_keyring, settings) if ring.key_file is not None else None
    return Vault(ring, reload=reload)
