"""Domain errors shared by every package; the API layer maps each to one HTTP answer.

Services raise these (or their per-domain children) and never import FastAPI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorDetail:
    """One problem, naming the field it concerns."""

    field: str
    message: str
    type: str = "value_error"

    def as_dict(self) -> dict[str, Any]:
        """Return the detail as it appears in the error body."""
        return {"field": self.field, "message": self.message, "type": self.type}


class RetryableError(Exception):
    """A temporary failure: the job that met it is tried again later, with backoff.

    `retry_after` is how many seconds the other side asked us to wait (e.g. HTTP Retry-After).
    """

    retry_after: float | None = None


class PermanentError(Exception):
    """A failure that trying again will not cure: the job that met it is given up at once."""


class BusinessLogicError(Exception):
    """A request that the rules refuse; the base of every domain error."""

    def __init__(self, message: str, *, details: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ValidationFailed(BusinessLogicError):
    """Input that is well-formed but not acceptable (422)."""


class InsufficientFundsError(BusinessLogicError):
    """The account cannot afford what was asked."""


class OrderRejectedError(BusinessLogicError):
    """An order the rules or the broker refused."""


class AuthenticationError(BusinessLogicError):
    """Who is asking could not be established."""


class AuthorizationError(BusinessLogicError):
    """The caller may not do this."""


class RateLimitExceeded(BusinessLogicError):
    """Too many requests; try again after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ResourceNotFoundError(BusinessLogicError):
    """No such thing, or not yours (the same answer for both)."""

    def __init__(self, resource: str, identifier: object | None = None) -> None:
        suffix = f" {identifier}" if identifier is not None else ""
        super().__init__(f"{resource}{suffix} not found")
        self.resource = resource


class DuplicateResourceError(BusinessLogicError):
    """It already exists."""


class ConflictError(BusinessLogicError):
    """The request conflicts with the current state."""
