"""Errors of the signals package."""

from __future__ import annotations

from collections.abc import Sequence

from pinelab.errors import ErrorDetail, ValidationFailed


class AlertRejected(ValidationFailed):
    """An alert body that cannot be turned into an AlertIntent; each detail names a field.

    A text dialect that refuses a message names in `secrets` the words of it that are secret
    (a license id), so that they are redacted from the stored body all the same.
    """

    def __init__(
        self, details: Sequence[ErrorDetail], *, secrets: frozenset[str] = frozenset()
    ) -> None:
        listed = list(details)
        message = "; ".join(f"{detail.field}: {detail.message}" for detail in listed)
        super().__init__(message or "the alert could not be read", details=listed)
        self.secrets = secrets


class AlertTooLarge(AlertRejected):
    """An alert body over the webhook size limit (413)."""
