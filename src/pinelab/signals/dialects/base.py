"""What every alert dialect provides: a translation into PineLab's canonical alert fields.

A dialect is the alert message of a service traders move from (TradersPost, 3Commas,
PineConnector, ...), read as that service documents it. It never builds an order itself: it
returns the canonical mapping (the field names of ``signals.parser.FIELDS``, values as a JSON
alert would hold them), which the parser then reads by the same rules as a PineLab alert, so
every dialect gets the same validation and the same error format.

A dialect refuses what it cannot honour by raising ``AlertRejected`` whose details name its
own field and the dialect ("PineConnector: risk=1 sizes by account risk, which PineLab cannot
compute"). A field that would change side, size or price and is not understood is refused,
never ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Translation:
    """One message of a dialect, as PineLab's canonical fields."""

    dialect: str  # the service's name as documented, e.g. "PineConnector"
    fields: dict[str, Any]
    # What is secret in the message and must never be stored: for a JSON dialect the keys
    # (as decoded, so an escaped spelling is caught), for a text dialect the words.
    secrets: frozenset[str] = field(default_factory=frozenset)


class JsonDialect(Protocol):
    """A dialect whose messages are JSON objects."""

    name: str

    def claims(self, data: Mapping[str, Any]) -> bool:
        """Whether the object is this dialect's (by keys no other dialect uses), even if invalid."""
        ...

    def translate(self, data: Mapping[str, Any]) -> Translation:
        """The canonical fields, or AlertRejected naming every problem."""
        ...


class TextDialect(Protocol):
    """A dialect whose messages are text (a command line, comma-separated words)."""

    name: str

    def claims(self, text: str) -> bool:
        """Whether the text is this dialect's (by its syntax), even if it will be refused."""
        ...

    def translate(self, text: str) -> Translation:
        """The canonical fields, or AlertRejected naming every problem."""
        ...
