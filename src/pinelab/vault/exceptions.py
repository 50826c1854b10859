"""Errors of the credential vault; none of them ever carries key material or plaintext."""

from __future__ import annotations


class VaultError(Exception):
    """Something is wrong with the vault's keys or a ciphertext."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KeyConfigurationError(VaultError):
    """The encryption keys are missing or malformed; the message names the setting to fix."""


class UndecryptableSecret(VaultError):
    """A ciphertext that no configured key opens (unknown key id, tampering or wrong row)."""
