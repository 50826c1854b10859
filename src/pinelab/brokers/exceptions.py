"""The broker error tree: every vendor error is translated into one of these where it is raised.

Only `RetryableBrokerError` is retried. `AmbiguousBrokerError` means the order may or may
not be at the venue: look it up by client_order_id before anything else.
"""

from __future__ import annotations

from pinelab.errors import PermanentError, RetryableError


class BrokerError(Exception):
    """Something went wrong at or on the way to a broker."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableBrokerError(BrokerError, RetryableError):
    """A temporary failure; trying again later may succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BrokerUnavailable(RetryableBrokerError):
    """The venue could not be reached or answered 5xx before accepting anything."""


class RateLimited(RetryableBrokerError):
    """The venue asked us to slow down (HTTP 429)."""


class AmbiguousBrokerError(BrokerError):
    """The request may have reached the venue: the order may or may not exist."""


class PermanentBrokerError(BrokerError, PermanentError):
    """A failure that will not go away by trying again."""


class InvalidOrder(PermanentBrokerError):
    """The venue refused the order as malformed or not allowed."""


class InsufficientFunds(PermanentBrokerError):
    """The account cannot afford the order."""


class UnknownSymbol(PermanentBrokerError):
    """The venue does not trade this symbol."""


class BrokerAuthFailed(PermanentBrokerError):
    """The credentials were refused."""


class OrderNotFound(PermanentBrokerError):
    """The venue has no order with that id."""
