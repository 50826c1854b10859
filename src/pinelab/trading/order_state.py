"""The order's lifecycle: the transition table as data, `apply(order, event)` the only mutator.

Events are typed, as nautilus_trader's `Order.apply(event)`: `OrderFilled` carries one execution
(quantity, price, commission, fill id) and moves the filled quantity and the average fill price;
the status events (`OrderSubmitted`, `OrderAccepted`, ..., `OrderRejected(reason)`) move the
status through the table below. Nothing else writes those fields.

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
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar, Final, Protocol

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
    """What the lifecycle changes on an order (the Order model is one)."""

    status: str
    reason: str | None
    filled_quantity: Decimal
    average_fill_price: Decimal | None


@dataclass(frozen=True)
class OrderStatusEvent:
    """A status the venue (or PineLab) reports for the order; `type` names it."""

    type: ClassVar[OrderEventType]
    reason: str | None = None


class OrderSubmitted(OrderStatusEvent):
    """The order was sent to the venue."""

    type = OrderEventType.SUBMITTED


class OrderAccepted(OrderStatusEvent):
    """The venue acknowledged the order."""

    type = OrderEventType.ACCEPTED


class OrderPartiallyFilled(OrderStatusEvent):
    """The venue reports part of the order filled."""

    type = OrderEventType.PARTIALLY_FILLED


class OrderCompleted(OrderStatusEvent):
    """The venue reports the whole order filled."""

    type = OrderEventType.FILLED


class OrderCanceled(OrderStatusEvent):
    """The order was canceled (what filled before stays filled)."""

    type = OrderEventType.CANCELED


class OrderRejected(OrderStatusEvent):
    """The venue refused the order."""

    type = OrderEventType.REJECTED


class OrderExpired(OrderStatusEvent):
    """The order's time in force ran out."""

    type = OrderEventType.EXPIRED


class OrderFailed(OrderStatusEvent):
    """The order never reached the venue."""

    type = OrderEventType.FAILED


@dataclass(frozen=True)
class OrderFilled:
    """One execution at the venue, with its deterministic id."""

    fill_id: str
    quantity: Decimal
    price: Decimal
    commission: Decimal = Decimal(0)


LifecycleEvent = OrderStatusEvent | OrderFilled


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
    {status: _E.SUBMITTED if status is _S.NEW else _E(status.value) for status in _S}
)
_EVENT_CLASSES: Final[Mapping[OrderEventType, type[OrderStatusEvent]]] = MappingProxyType(
    {cls.type: cls for cls in OrderStatusEvent.__subclasses__()}
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


def apply(order: HasStatus, event: LifecycleEvent) -> bool:
    """Apply one event to the order; return whether it changed.

    A fill grows the filled quantity and re-averages the fill price; a status event moves the
    status through the table (an illegal move raises InvalidOrderTransition) and keeps its reason.
    """
    if isinstance(event, OrderFilled):
        if event.quantity <= 0:
            raise ValueError(f"fill quantity must be positive, got {event.quantity}")
        total = order.filled_quantity + event.quantity
        cost = (order.average_fill_price or Decimal(0)) * order.filled_quantity
        order.average_fill_price = (cost + event.price * event.quantity) / total
        order.filled_quantity = total
        return True
    current = OrderStatus(order.status)
    target = next_status(current, event.type)
    if target is current:
        return False
    order.status = target.value
    if event.reason:
        order.reason = event.reason
    return True


def event_for_status(status: OrderStatus | str) -> OrderEventType:
    """Return the event type that a venue report carrying `status` stands for."""
    return _EVENT_FOR_STATUS[OrderStatus(status)]


def status_event(event: OrderEventType, reason: str | None = None) -> OrderStatusEvent:
    """Return the typed status event of an event type."""
    return _EVENT_CLASSES[event](reason)
