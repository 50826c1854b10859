"""The order state machine, checked pair by pair against a rule written independently here."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinelab.brokers.base import TERMINAL_STATUSES, OrderStatus
from pinelab.errors import ConflictError
from pinelab.trading import order_state
from pinelab.trading.exceptions import InvalidOrderTransition
from pinelab.trading.models import Order
from pinelab.trading.order_state import (
    OrderEventType,
    OrderFilled,
    OrderRejected,
    apply,
    event_for_status,
    is_legal,
    next_status,
    status_event,
)

S = OrderStatus
E = OrderEventType
WORKING = [S.NEW, S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED]
ALL_PAIRS = list(itertools.product(OrderStatus, OrderEventType))


def expected_next(current: OrderStatus, event: OrderEventType) -> OrderStatus | None:
    """The rule as prose turns it into code: None means illegal."""
    reported = OrderStatus(event.value)
    if reported is current:
        return current
    if current in TERMINAL_STATUSES:
        return None
    if reported in WORKING:
        return WORKING[max(WORKING.index(current), WORKING.index(reported))]
    if reported is S.FAILED:
        return reported if current in (S.NEW, S.SUBMITTED) else None
    if reported is S.REJECTED:
        return reported if current is not S.PARTIALLY_FILLED else None
    return reported


LEGAL = [pair for pair in ALL_PAIRS if expected_next(*pair) is not None]
ILLEGAL = [pair for pair in ALL_PAIRS if expected_next(*pair) is None]


@dataclass
class FakeOrder:
    status: str
    reason: str | None = None
    filled_quantity: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None


def pair_id(pair: tuple[OrderStatus, OrderEventType]) -> str:
    return f"{pair[0].value}+{pair[1].value}"


def test_the_product_splits_into_legal_and_illegal_pairs() -> None:
    assert len(ALL_PAIRS) == len(OrderStatus) * len(OrderEventType) == 72
    assert len(LEGAL) == 34
    assert len(ILLEGAL) == 38


@pytest.mark.parametrize("pair", LEGAL, ids=pair_id)
def test_legal_pair_moves_to_the_expected_status(pair: tuple[OrderStatus, OrderEventType]) -> None:
    current, event = pair
    assert next_status(current, event) is expected_next(current, event)
    assert is_legal(current, event)


@pytest.mark.parametrize("pair", LEGAL, ids=pair_id)
def test_apply_reports_a_change_only_when_the_status_moves(
    pair: tuple[OrderStatus, OrderEventType],
) -> None:
    current, event = pair
    order = FakeOrder(status=current.value)
    changed = apply(order, status_event(event))
    assert order.status == expected_next(current, event)
    assert changed is (order.status != current.value)
    assert type(order.status) is str


@pytest.mark.parametrize("pair", ILLEGAL, ids=pair_id)
def test_illegal_pair_raises_and_leaves_the_order_alone(
    pair: tuple[OrderStatus, OrderEventType],
) -> None:
    current, event = pair
    assert not is_legal(current, event)
    with pytest.raises(InvalidOrderTransition):
        next_status(current, event)
    order = FakeOrder(status=current.value)
    with pytest.raises(InvalidOrderTransition) as caught:
        apply(order, status_event(event))
    assert order.status == current.value
    assert caught.value.current == current.value
    assert caught.value.event == event.value


@pytest.mark.parametrize(
    ("current", "event", "after"),
    [
        (S.NEW, E.SUBMITTED, S.SUBMITTED),
        (S.SUBMITTED, E.ACCEPTED, S.ACCEPTED),
        (S.ACCEPTED, E.PARTIALLY_FILLED, S.PARTIALLY_FILLED),
        (S.PARTIALLY_FILLED, E.FILLED, S.FILLED),
        (S.SUBMITTED, E.FILLED, S.FILLED),
        (S.NEW, E.REJECTED, S.REJECTED),
        (S.ACCEPTED, E.CANCELED, S.CANCELED),
        (S.PARTIALLY_FILLED, E.CANCELED, S.CANCELED),
        (S.NEW, E.FAILED, S.FAILED),
        (S.SUBMITTED, E.FAILED, S.FAILED),
        (S.NEW, E.FILLED, S.FILLED),
        (S.ACCEPTED, E.EXPIRED, S.EXPIRED),
    ],
)
def test_broker_reports_may_skip_states(
    current: OrderStatus, event: OrderEventType, after: OrderStatus
) -> None:
    order = FakeOrder(status=current.value)
    assert apply(order, status_event(event)) is True
    assert order.status == after.value


def test_late_accepted_on_a_partially_filled_order_is_a_no_op() -> None:
    order = FakeOrder(status=S.PARTIALLY_FILLED.value)
    assert apply(order, status_event(E.ACCEPTED)) is False
    assert order.status == S.PARTIALLY_FILLED.value


def test_reapplying_the_current_status_is_a_no_op() -> None:
    order = FakeOrder(status=S.FILLED.value)
    assert apply(order, status_event(E.FILLED)) is False
    assert order.status == S.FILLED.value


@pytest.mark.parametrize(
    ("current", "event"),
    [
        (S.FILLED, E.CANCELED),
        (S.FILLED, E.ACCEPTED),
        (S.CANCELED, E.FILLED),
        (S.REJECTED, E.SUBMITTED),
        (S.FAILED, E.ACCEPTED),
        (S.ACCEPTED, E.FAILED),
        (S.PARTIALLY_FILLED, E.FAILED),
        (S.PARTIALLY_FILLED, E.REJECTED),
    ],
)
def test_contradicting_reports_raise(current: OrderStatus, event: OrderEventType) -> None:
    with pytest.raises(InvalidOrderTransition, match=f"'{event.value}'.*'{current.value}'"):
        apply(FakeOrder(status=current.value), status_event(event))


def test_invalid_transition_is_a_conflict() -> None:
    assert issubclass(InvalidOrderTransition, ConflictError)


def test_the_table_has_a_row_for_every_status_and_only_status_events() -> None:
    assert set(order_state.TRANSITIONS) == set(OrderStatus)
    for row in order_state.TRANSITIONS.values():
        assert all(isinstance(target, OrderStatus) for target in row.values())


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        order_state.TRANSITIONS[S.NEW] = {}  # type: ignore[index]


def test_apply_moves_the_order_model_too() -> None:
    order = Order(status=S.SUBMITTED.value)
    assert apply(order, status_event(E.ACCEPTED)) is True
    assert order.status == "accepted"


def test_apply_refuses_a_status_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="pending"):
        apply(FakeOrder(status="pending"), status_event(E.FILLED))


@pytest.mark.parametrize("status", [s for s in OrderStatus if s is not S.NEW])
def test_event_for_status_names_the_reported_status(status: OrderStatus) -> None:
    event = event_for_status(status)
    assert event.value == status.value
    assert event_for_status(status.value) is event


def test_a_reported_new_order_counts_as_submitted() -> None:
    assert event_for_status(S.NEW) is E.SUBMITTED
    order = FakeOrder(status=S.NEW.value)
    assert apply(order, status_event(event_for_status("new"))) is True
    assert order.status == S.SUBMITTED.value


def test_event_for_status_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="open"):
        event_for_status("open")


@given(st.lists(st.sampled_from(list(OrderEventType)), max_size=12))
def test_any_event_sequence_never_goes_backwards_or_leaves_a_terminal_status(
    events: list[OrderEventType],
) -> None:
    order = FakeOrder(status=S.NEW.value)
    for event in events:
        before = OrderStatus(order.status)
        try:
            apply(order, status_event(event))
        except InvalidOrderTransition:
            assert before in TERMINAL_STATUSES or event is E.FAILED or event is E.REJECTED
            continue
        after = OrderStatus(order.status)
        if before in TERMINAL_STATUSES:
            assert after is before
        elif after in WORKING:
            assert WORKING.index(after) >= WORKING.index(before)


def test_a_fill_moves_the_filled_quantity_and_the_average_price_only() -> None:
    order = FakeOrder(status=S.ACCEPTED.value)
    assert apply(order, OrderFilled("f1", Decimal(2), Decimal(100))) is True
    assert apply(order, OrderFilled("f2", Decimal(2), Decimal(110))) is True
    assert (order.filled_quantity, order.average_fill_price) == (Decimal(4), Decimal(105))
    assert order.status == S.ACCEPTED.value


def test_a_fill_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        apply(FakeOrder(status=S.ACCEPTED.value), OrderFilled("f1", Decimal(0), Decimal(100)))


def test_a_status_event_keeps_its_reason() -> None:
    order = FakeOrder(status=S.SUBMITTED.value)
    assert apply(order, OrderRejected("no cash")) is True
    assert (order.status, order.reason) == (S.REJECTED.value, "no cash")


@pytest.mark.parametrize("event", list(OrderEventType))
def test_every_event_type_has_its_typed_event(event: OrderEventType) -> None:
    assert status_event(event, "why").type is event
