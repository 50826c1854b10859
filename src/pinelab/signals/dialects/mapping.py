"""What the JSON dialects share: reading a service's words, and refusing what cannot be honoured.

A JSON dialect copies the service's values into PineLab's canonical fields unchanged (numbers
stay as written), so the canonical reader validates them once for every dialect. What the
dialect itself decides (a word that names an action, a sizing unit) it checks here, and every
problem is collected before the message is refused, so the trader sees all of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from pinelab.errors import ErrorDetail
from pinelab.signals.exceptions import AlertRejected

# Keys whose value is a secret in any alert: matched on the key as decoded (an escaped
# "pass\u0070hrase" is "passphrase"), lower-cased and stripped of everything but letters and
# digits, so "api-secret", "apiSecret" and "API_SECRET" are one key.
_SECRET_PARTS: Final = (
    "passphrase",
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "license",
    "signature",
)
_SECRET_KEYS: Final = frozenset({"key", "pass", "pwd", "auth", "authorization", "credentials"})
# A word in every secret key above, once folded: absent from a body, no key of it is secret.
SECRET_WORDS: Final = (*_SECRET_PARTS, "key", "pass", "pwd", "auth", "credentials")


def is_secret_key(key: str) -> bool:
    """Tell whether a field of this name holds a secret, whatever its spelling."""
    folded = "".join(character for character in key.lower() if character.isalnum())
    return folded in _SECRET_KEYS or any(part in folded for part in _SECRET_PARTS)


def word(value: Any) -> str | None:
    """Return a string value trimmed and lower-cased, or None for anything else."""
    return value.strip().lower() if isinstance(value, str) else None


class Problems:
    """The problems found in one message, refused together."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.details: list[ErrorDetail] = []

    def add(self, field: str, message: str, kind: str = "value_error") -> None:
        """Record one problem with a field of the service's message."""
        self.details.append(ErrorDetail(field=field, message=message, type=kind))

    def missing(self, field: str, expected: str) -> None:
        """Record a required field that is absent."""
        self.add(field, f"is required ({expected})", "missing")

    def unsupported(self, field: str, reason: str) -> None:
        """Record a field PineLab cannot honour, and why."""
        self.add(field, f"cannot be honoured: {reason}", "unsupported")

    def choice(self, field: str, value: Any, options: Mapping[str, Any]) -> Any:
        """Return what a word of the service means, or record that it is not one of its words."""
        chosen = options.get(word(value) or "")
        if chosen is None:
            self.add(field, f"must be one of {', '.join(options)}, got {_shown(value)}")
        return chosen

    def refuse_present(self, data: Mapping[str, Any], names: Iterable[str], reason: str) -> None:
        """Record each of the named fields that the message gives, with the same reason."""
        for name in names:
            if data.get(name) not in (None, False, "", [], {}):
                self.unsupported(name, reason)

    def refuse_foreign(self, data: Mapping[str, Any], read: Iterable[str]) -> None:
        """Record each PineLab field that would set side, size or price and the dialect ignores.

        A trader adding `quantity` to a 3Commas message must not see it silently dropped.
        """
        for name in sorted(PINELAB_TRADE_FIELDS & data.keys() - set(read)):
            self.add(
                name,
                f"is a field of PineLab's own form, which a {self.dialect} message does not "
                "read; send it in the service's form, or the whole alert in PineLab's",
                "unsupported",
            )

    def raise_any(self) -> None:
        """Refuse the message if anything was recorded."""
        if self.details:
            raise AlertRejected(self.details)


# PineLab's fields (and their camelCase spellings) that set the side, the size or a price.
PINELAB_TRADE_FIELDS: Final = frozenset(
    {
        "ticker", "action", "quantity", "quantity_type", "quantityType", "price", "signalPrice",
        "order_type", "orderType", "limit_price", "limitPrice", "stop_price", "stopPrice",
        "trail_percent", "trailPercent", "take_profit", "takeProfit", "stop_loss", "stopLoss",
        "sentiment", "position_size", "positionSize",
    }
)  # fmt: skip


def put(fields: dict[str, Any], name: str, value: Any) -> None:
    """Set a canonical field unless the service left it out (None means absent, as in JSON)."""
    if value is not None:
        fields[name] = value


def secrets_in(data: Mapping[str, Any], names: Iterable[str]) -> frozenset[str]:
    """Return the named secret keys the message holds (to be redacted from the stored body)."""
    return frozenset(name for name in names if name in data)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "null" if value is None else str(value).lower()
