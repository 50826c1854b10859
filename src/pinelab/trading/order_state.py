"""The order state machine: the transition table as data and `apply` as the only mutator.

Every event names the status a venue (or PineLab) reports. The rule behind the table:

- re-applying the current status is an allowed no-op;
- from a working status (new, submitted, accepted, partially_filled) an order may skip ahead
  to any later working status or to a terminal one, because venues report late or not at all;
- a late report of an earlier working status (`accepted` on a partially filled order) is
  stale news, not a contradiction: the status stays as it is;
- `failed` means the order never reached the venue, so it is legal only before the venue
  acknowledged the order (new, submitted); `rejected` is legal only before the first fill;
- terminal statuses are final: any other event raises `InvalidOrderTransition`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Protocol

from pinelab.brokers.base import OrderStatus
from pinelab.trading.exceptions import InvalidOrderTransition


class OrderEventType(StrEnum):
    """What happened to an order, in the past tense."""

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"


class HasStatus(Protocol):
    """Anything with a settable `status` string (the Order model is one)."""

    status: str


_S = OrderStatus
_E = OrderEventType

# current status -> {event: next status}; a pair missing here is illegal.
TRANSITIONS: Final[Mapping[OrderStatus, Mapping[OrderEventType, OrderStatus]]] = MappingProxyType(
    {
        _S.NEW: {
            _E.SUBMITTED: _S.SUBMITTED,
            _E.ACCEPTED: _S.ACCEPTED,
            _E.PARTIALLY_FILLED: _S.PARTIALLY_FILLED,
            _E.FILLED: _S.FILLED,
            _E.CANCELED: _S.CANCELED,
            _E.REJECTED: _S.REJECTED,
            _E.EXPIRED: _S.EXPIRED,
            _E.FAILED: _S.FAILED,
        },
        _S.SUBMITTED: {
            _E.SUBMITTED: _S.SUBMITTED,
            _E.ACCEPTED: _S.ACCEPTED,
            _E.PARTIALLY_FILLED: _S.PARTIALLY_FILLED,
            _E.FILLED: _S.FILLED,
            _E.CANCELED: _S.CANCELED,
            _E.REJECTED: _S.REJECTED,
            _E.EXPIRED: _S.EXPIRED,
            _E.FAILED: _S.FAILED,
        },
        _S.ACCEPTED: {
            _E.SUBMITTED: _S.ACCEPTED,
            _E.ACCEPTED: _S.ACCEPTED,
            _E.PARTIALLY_FILLED: _S.PARTIALLY_FILLED,
            _E.FILLED: _S.FILLED,
            _E.CANCELED: _S.CANCELED,
            _E.REJECTED: _S.REJECTED,
            _E.EXPIRED: _S.EXPIRED,
        },
        _S.PARTIALLY_FILLED: {
            _E.SUBMITTED: _S.PARTIALLY_FILLED,
            _E.ACCEPTED: _S.PARTIALLY_FILLED,
            _E.PARTIALLY_FILLED: _S.PARTIALLY_FILLED,
            _E.FILLED: _S.FILLED,
            _E.CANCELED: _S.CANCELED,
            _E.EXPIRED: _S.EXPIRED,
        },
        _S.FILLED: {_E.FILLED: _S.FILLED},
        _S.CANCELED: {_E.CANCELED: _S.CANCELED},
        _S.REJECTED: {_E.REJECTED: _S.REJECTED},
        _S.EXPIRED: {_E.EXPIRED: _S.EXPIRED},
        _S.FAILED: {_E.FAILED: _S.FAILED},
    }
)

# A venue that reports an order at all has received it, so a reported `new` means submitted.
_EVENT_FOR_STATUS: Final[Mapping[OrderStatus, OrderEventType]] = MappingProxyType(
    {
        _S.NEW: _E.SUBMITTED,
        _S.SUBMITTED: _E.SUBMITTED,
        _S.ACCEPTED: _E.ACCEPTED,
        _S.PARTIALLY_FILLED: _E.PARTIALLY_FILLED,
        _S.FILLED: _E.FILLED,
        _S.CANCELED: _E.CANCELED,
        _S.REJECTED: _E.REJECTED,
        _S.EXPIRED: _E.EXPIRED,
        _S.FAILED: _E.FAILED,
    }
)


def next_status(current: OrderStatus, event: OrderEventType) -> OrderStatus:
    """Return the status after `event`, or raise InvalidOrderTransition if it is illegal."""
    target = TRANSITIONS[current].get(event)
    if target is None:
        raise InvalidOrderTransition(current.value, event.value)
    return target


def is_legal(current: OrderStatus, event: OrderEventType) -> bool:
    """Tell whether `event` may be applied to an order in `current` (no-ops included)."""
    return event in TRANSITIONS[current]


def apply(order: HasStatus, event: OrderEventType) -> bool:
    """Move the order's status for `event`; return whether it changed."""
    current = OrderStatus(order.status)
    target = next_status(current, event)
    if target is current:
        return False
    order.status = target.value
    return True


def event_for_status(status: OrderStatus | str) -> OrderEventType:
    """Return the event that a venue report carrying `status` stands for."""
    return _EVENT_FOR_STATUS[OrderStatus(status)]
