"""Errors of the trading core: illegal order moves and alerts that cannot be sized."""

from __future__ import annotations

from pinelab.errors import ConflictError, OrderRejectedError


class InvalidOrderTransition(ConflictError):
    """An event that contradicts the order's recorded status."""

    def __init__(self, current: str, event: str) -> None:
        super().__init__(f"cannot apply event {event!r} to an order that is {current!r}")
        self.current = current
        self.event = event


class SizingError(OrderRejectedError):
    """An alert that cannot be turned into an order quantity; the message says why."""


class RiskRejected(OrderRejectedError):
    """An order that breaks one of the strategy's risk limits."""
