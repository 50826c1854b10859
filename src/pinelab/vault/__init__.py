"""The credential vault: secrets encrypted at rest (AES-256-GCM) with keys kept out of the DB."""

from __future__ import annotations

from pinelab.vault.cipher import UNDECRYPTABLE, Vault, build_vault
from pinelab.vault.exceptions import KeyConfigurationError, UndecryptableSecret, VaultError
from pinelab.vault.keys import EncryptionKey, KeyRing

__all__ = [
    "UNDECRYPTABLE",
    "EncryptionKey",
    "KeyConfigurationError",
    "KeyRing",
    "UndecryptableSecret",
    "Vault",
    "VaultError",
    "build_vault",
]
