"""What a text dialect found wrong in a message, collected so that a refusal names every problem.

Each problem names the dialect's own field (``risk``, ``offset``, ``q``) and says which dialect
the message was read as, so a trader moving from that service sees what to change; the last
detail gives the form the dialect expects. A refusal still carries the message's secrets (a
PineConnector license id), so the stored body can be redacted even when nothing is traded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Final

from pinelab.errors import ErrorDetail
from pinelab.signals.exceptions import AlertRejected

_NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_PLACEHOLDER: Final = re.compile(r"\{\{[^{}]*\}\}")


class DialectRejected(AlertRejected):
    """A message read as a dialect and refused; `secrets` are its words never to be stored."""

    def __init__(
        self, dialect: str, details: Sequence[ErrorDetail], secrets: frozenset[str]
    ) -> None:
        super().__init__(details, secrets=secrets)
        self.dialect = dialect


class Problems:
    """The problems found in one message of a dialect, and the secrets seen so far."""

    def __init__(self, dialect: str, form: str) -> None:
        self.dialect = dialect
        self.form = form
        self.details: list[ErrorDetail] = []
        self.secrets: set[str] = set()

    def add(self, field: str, message: str, kind: str = "value_error") -> None:
        """Record one problem with a field of the message."""
        detail = ErrorDetail(field=field, message=f"{self.dialect}: {message}", type=kind)
        self.details.append(detail)

    def missing(self, field: str, message: str) -> None:
        """Record a field the message needs and lacks."""
        self.add(field, message, "missing")

    def unsupported(self, field: str, message: str) -> None:
        """Record a field PineLab understands but cannot honour, saying why."""
        self.add(field, message, "unsupported")

    def number(self, field: str, value: str, *, signed: bool = False) -> str | None:
        """Return `value` trimmed if it is a number (above 0 unless signed), else record why."""
        text = value.strip()
        placeholder = _PLACEHOLDER.search(text)
        if placeholder is not None:
            shown = placeholder.group()
            self.add(field, f"the TradingView placeholder {shown} was not filled in", "placeholder")
            return None
        if _NUMBER.fullmatch(text) is None:
            self.add(field, f"must be a number, got {quoted(value)}")
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            self.add(field, f"must be a number, got {quoted(value)}")
            return None
        if not signed and number <= 0:
            self.add(field, f"must be greater than 0, got {text}")
            return None
        return text

    def raise_if_any(self) -> None:
        """Raise DialectRejected naming every problem and the expected form, if there are any."""
        if not self.details:
            return
        form = ErrorDetail(
            field="body", message=f"{self.dialect}: expected {self.form}", type="expected_form"
        )
        raise DialectRejected(self.dialect, [*self.details, form], frozenset(self.secrets))


def quoted(value: str, limit: int = 40) -> str:
    """Return a word of the message as shown in a refusal: quoted and cut to `limit`."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
