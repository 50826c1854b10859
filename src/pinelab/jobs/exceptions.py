"""Errors of the jobs package."""

from __future__ import annotations

from pinelab.errors import ConflictError, PermanentError, ResourceNotFoundError


class PermanentJobError(PermanentError):
    """A job that can never succeed; it is not retried."""


class DeadLetterNotFound(ResourceNotFoundError):
    """No dead letter with that id."""

    def __init__(self, dead_letter_id: int) -> None:
        super().__init__("Dead letter", dead_letter_id)


class DeadLetterResolved(ConflictError):
    """The dead letter was already replayed or discarded."""

    def __init__(self, dead_letter_id: int, resolution: str | None) -> None:
        super().__init__(f"Dead letter {dead_letter_id} was already {resolution}")
        self.resolution = resolution
