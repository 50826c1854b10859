"""The pure report → events function every sync path goes through."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pinelab.brokers.base import OrderSide, OrderStatus, OrderStatusReport, OrderType
from pinelab.trading.order_state import (
    OrderAccepted,
    OrderCanceled,
    OrderCompleted,
    OrderFilled,
    OrderPartiallyFilled,
)
from pinelab.trading.reconcile import OrderSnapshot, sync_order

D = Decimal


def _order(
    status: OrderStatus, filled: str = "0", average: str | None = None, **kw: object
) -> OrderSnapshot:
    values: dict[str, object] = {
        "status": status,
        "filled_quantity": D(filled),
        "average_fill_price": D(average) if average else None,
        "broker_order_id": "B1",
    } | kw
    return OrderSnapshot(**values)  # type: ignore[arg-type]


def _report(
    status: OrderStatus, filled: str = "0", average: str | None = None, **kw: object
) -> OrderStatusReport:
    values: dict[str, object] = {
        "client_order_id": "pl-1",
        "broker_order_id": "B1",
        "symbol": "AAPL",
        "side": OrderSide.BUY,
        "order_type": OrderType.MARKET,
        "status": status,
        "quantity": D(10),
        "filled_quantity": D(filled),
        "average_fill_price": D(average) if average else None,
    } | kw
    return OrderStatusReport(**values)  # type: ignore[arg-type]


def test_first_fill_is_derived_from_the_cumulative_quantity_with_a_stable_id() -> None:
    sync = sync_order(
        _order(OrderStatus.SUBMITTED), _report(OrderStatus.FILLED, "10", "101.5", commission=D(1))
    )
    assert sync.fills == (OrderFilled("B1:10", D(10), D("101.5"), D(1)),)
    assert sync.event == OrderCompleted()
    assert sync.changes_anything


def test_later_fill_is_priced_from_the_growth_of_the_average() -> None:
    order = _order(OrderStatus.PARTIALLY_FILLED, "4", "100", commission=D(1))
    sync = sync_order(order, _report(OrderStatus.FILLED, "10", "103", commission=D(1)))
    (fill,) = sync.fills
    assert (fill.quantity, fill.price, fill.commission) == (D(6), D(105), D(0))
    assert fill.fill_id == "B1:10"


def test_same_report_twice_changes_nothing() -> None:
    order = _order(OrderStatus.FILLED, "10", "101")
    sync = sync_order(order, _report(OrderStatus.FILLED, "10", "101"))
    assert (sync.fills, sync.event, sync.conflict, sync.broker_order_id) == ((), None, None, None)
    assert not sync.changes_anything


def test_working_status_reported_with_fills_becomes_partially_filled() -> None:
    sync = sync_order(_order(OrderStatus.ACCEPTED), _report(OrderStatus.ACCEPTED, "3", "100"))
    assert sync.event == OrderPartiallyFilled()
    assert len(sync.fills) == 1


def test_rejection_after_fills_is_read_as_a_cancel_of_the_rest() -> None:
    sync = sync_order(
        _order(OrderStatus.ACCEPTED), _report(OrderStatus.REJECTED, "2", "100", reason="halted")
    )
    assert sync.event == OrderCanceled("halted")


def test_stale_news_is_not_an_event() -> None:
    sync = sync_order(_order(OrderStatus.ACCEPTED), _report(OrderStatus.NEW))
    assert sync.event is None
    assert sync.conflict is None


def test_illegal_move_is_reported_as_a_conflict_and_not_applied() -> None:
    sync = sync_order(
        _order(OrderStatus.PARTIALLY_FILLED, "2", "100"), _report(OrderStatus.FAILED, "2", "100")
    )
    assert sync.event is None
    assert sync.conflict is not None
    assert "illegal" in sync.conflict


def test_terminal_order_contradicted_by_the_venue_is_a_conflict_never_a_change() -> None:
    sync = sync_order(_order(OrderStatus.CANCELED), _report(OrderStatus.FILLED, "10", "100"))
    assert (sync.fills, sync.event) == ((), None)
    assert sync.conflict is not None
    assert sync.changes_anything


def test_new_venue_id_is_adopted() -> None:
    sync = sync_order(_order(OrderStatus.NEW, broker_order_id=None), _report(OrderStatus.ACCEPTED))
    assert sync.broker_order_id == "B1"
    assert sync.event == OrderAccepted()


def test_terminal_order_still_learns_its_venue_id() -> None:
    sync = sync_order(
        _order(OrderStatus.FILLED, "10", "100", broker_order_id=None),
        _report(OrderStatus.FILLED, "10", "100"),
    )
    assert (sync.broker_order_id, sync.conflict) == ("B1", None)


@pytest.mark.parametrize(
    "status", [OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED]
)
def test_reason_travels_with_endings(status: OrderStatus) -> None:
    event = sync_order(_order(OrderStatus.ACCEPTED), _report(status, reason="why")).event
    assert event is not None
    assert event.reason == "why"


def test_reason_is_dropped_for_other_statuses() -> None:
    sync = sync_order(_order(OrderStatus.SUBMITTED), _report(OrderStatus.ACCEPTED, reason="x"))
    assert sync.event == OrderAccepted()


def test_fill_without_an_average_price_is_not_invented() -> None:
    sync = sync_order(
        _order(OrderStatus.SUBMITTED), _report(OrderStatus.PARTIALLY_FILLED, "3", None)
    )
    assert sync.fills == ()
    assert sync.event == OrderPartiallyFilled()
