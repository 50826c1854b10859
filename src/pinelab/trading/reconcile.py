"""From broker truth to events: a pure function that every path goes through.

Live submission answers, reconciliation runs and crash recovery all turn a venue's
`OrderStatusReport` into the same typed events for our order (`order_state.OrderFilled`, then
at most one status event), which `order_state.apply` applies. A fill is derived from the growth
of the cumulative filled quantity, with a deterministic id, so seeing the same report twice
records nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pinelab.brokers.base import OrderStatus, OrderStatusReport
from pinelab.db.base import canonical
from pinelab.trading.order_state import (
    OrderEventType,
    OrderFilled,
    OrderStatusEvent,
    event_for_status,
    is_legal,
    next_status,
    status_event,
)

ZERO = Decimal(0)


@dataclass(frozen=True)
class OrderSnapshot:
    """What we know of our order before the report."""

    status: OrderStatus
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    broker_order_id: str | None
    commission: Decimal = ZERO  # recorded on our fills so far


@dataclass(frozen=True)
class OrderSync:
    """The changes a report brings: fills first, then at most one status event."""

    fills: tuple[OrderFilled, ...]
    event: OrderStatusEvent | None
    broker_order_id: str | None
    conflict: str | None = None

    @property
    def changes_anything(self) -> bool:
        """Tell whether applying this sync would change the order."""
        return bool(self.fills or self.event or self.broker_order_id or self.conflict)


def sync_order(order: OrderSnapshot, report: OrderStatusReport) -> OrderSync:
    """Return what must change for `order` to match the venue's `report`."""
    new_broker_id = (
        report.broker_order_id if report.broker_order_id != order.broker_order_id else None
    )
    fills = _new_fills(order, report)
    if order.status.is_terminal:
        conflict: str | None = None
        if report.status is not order.status or fills:
            conflict = (
                f"venue reports {report.status.value} with {report.filled_quantity} filled;"
                f" we have {order.status.value}"
            )
        return OrderSync((), None, new_broker_id, conflict)
    reported = _event_for(report.status, has_fills=bool(fills))
    if not is_legal(order.status, reported):
        conflict = f"venue reports {report.status.value}; illegal from {order.status.value}"
        return OrderSync(tuple(fills), None, new_broker_id, conflict)
    if next_status(order.status, reported) is order.status:
        return OrderSync(tuple(fills), None, new_broker_id)  # stale or repeated news
    reason = (
        report.reason
        if report.status in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED)
        else None
    )
    return OrderSync(tuple(fills), status_event(reported, reason), new_broker_id)


def _event_for(status: OrderStatus, *, has_fills: bool) -> OrderEventType:
    event = event_for_status(status)
    if has_fills and event in (OrderEventType.SUBMITTED, OrderEventType.ACCEPTED):
        return OrderEventType.PARTIALLY_FILLED
    if has_fills and event is OrderEventType.REJECTED:
        return OrderEventType.CANCELED
    return event


def _new_fills(order: OrderSnapshot, report: OrderStatusReport) -> list[OrderFilled]:
    delta = report.filled_quantity - order.filled_quantity
    if delta <= 0 or report.average_fill_price is None:
        return []
    before_cost = order.filled_quantity * (order.average_fill_price or ZERO)
    price = (report.filled_quantity * report.average_fill_price - before_cost) / delta
    fill_id = f"{report.broker_order_id}:{canonical(report.filled_quantity)}"
    commission = max(ZERO, report.commission - order.commission)
    return [OrderFilled(fill_id, delta, price, commission)]
