"""Position math: worked examples, then properties against an independent lot-based replay."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinelab.brokers.base import OrderSide
from pinelab.trading.positions import PositionState, apply_fill, unrealized_pnl

BUY = OrderSide.BUY
SELL = OrderSide.SELL
D = Decimal
# Average prices are divisions, so two correct algorithms can differ in the 28th digit.
TOLERANCE = D("1e-12")
NO_FEE = D(0)

Fill = tuple[OrderSide, Decimal, Decimal]


def replay(fills: list[Fill]) -> list[Decimal]:
    """Apply fills in order; return the realized P&L of each."""
    state = PositionState()
    realized = []
    for side, quantity, price in fills:
        state, pnl = apply_fill(state, side, quantity, price)
        realized.append(pnl)
    return realized


def final_state(fills: list[Fill], commission: Decimal = NO_FEE) -> PositionState:
    state = PositionState()
    for side, quantity, price in fills:
        state, _ = apply_fill(state, side, quantity, price, commission)
    return state


def test_a_first_buy_opens_long_at_the_fill_price() -> None:
    state, realized = apply_fill(PositionState(), BUY, D(10), D(100))
    assert state == PositionState(D(10), D(100), D(0), D(0))
    assert realized == 0


def test_buying_more_averages_the_price_by_quantity() -> None:
    state = final_state([(BUY, D(10), D(100)), (BUY, D(30), D(120))])
    assert state.quantity == 40
    assert state.average_price == 115
    assert state.realized_pnl == 0


def test_selling_more_averages_a_short() -> None:
    state = final_state([(SELL, D(1), D(50)), (SELL, D(3), D(30))])
    assert state.quantity == -4
    assert state.average_price == 35


def test_selling_part_of_a_long_realizes_against_the_average() -> None:
    start = PositionState(D(10), D(100), D(0), D(0))
    state, realized = apply_fill(start, SELL, D(4), D(110))
    assert realized == 40
    assert state == PositionState(D(6), D(100), D(40), D(0))


def test_covering_part_of_a_short_realizes_the_drop() -> None:
    start = PositionState(D(-10), D(100), D(5), D(0))
    state, realized = apply_fill(start, BUY, D(4), D(90))
    assert realized == 40
    assert state == PositionState(D(-6), D(100), D(45), D(0))


def test_a_losing_close_realizes_a_loss() -> None:
    start = PositionState(D(2), D(100), D(0), D(0))
    state, realized = apply_fill(start, SELL, D(2), D("97.5"))
    assert realized == -5
    assert state.quantity == 0


def test_closing_fully_leaves_a_flat_position_with_no_average() -> None:
    start = PositionState(D(10), D(100), D(0), D(0))
    state, realized = apply_fill(start, SELL, D(10), D(105))
    assert realized == 50
    assert state == PositionState(D(0), D(0), D(50), D(0))


def test_a_sell_through_zero_closes_the_long_and_opens_a_short_at_the_fill_price() -> None:
    start = PositionState(D(10), D(100), D(0), D(0))
    state, realized = apply_fill(start, SELL, D(15), D(110))
    assert realized == 100
    assert state == PositionState(D(-5), D(110), D(100), D(0))


def test_a_buy_through_zero_closes_the_short_and_opens_a_long_at_the_fill_price() -> None:
    start = PositionState(D(-3), D(50), D(0), D(0))
    state, realized = apply_fill(start, BUY, D(5), D(60))
    assert realized == -30
    assert state == PositionState(D(2), D(60), D(-30), D(0))


def test_commissions_accumulate_apart_from_realized_pnl() -> None:
    state = final_state([(BUY, D(1), D(100)), (SELL, D(1), D(101))], commission=D("0.25"))
    assert state.realized_pnl == 1
    assert state.commissions == D("0.50")


@pytest.mark.parametrize("quantity", [D(0), D(-1)])
def test_a_fill_must_have_a_positive_quantity(quantity: Decimal) -> None:
    with pytest.raises(ValueError, match="positive"):
        apply_fill(PositionState(), BUY, quantity, D(1))


@pytest.mark.parametrize(
    ("state", "last", "expected"),
    [
        (PositionState(D(10), D(100), D(0), D(0)), D(103), D(30)),
        (PositionState(D(-10), D(100), D(0), D(0)), D(103), D(-30)),
        (PositionState(D(0), D(0), D(7), D(0)), D(103), D(0)),
    ],
)
def test_unrealized_pnl_marks_the_open_quantity_to_the_last_price(
    state: PositionState, last: Decimal, expected: Decimal
) -> None:
    assert unrealized_pnl(state, last) == expected


# --- properties -------------------------------------------------------------------------

quantities = st.decimals(min_value=D("0.01"), max_value=D(1000), places=2)
prices = st.decimals(min_value=D("0.01"), max_value=D(10000), places=2)
fills = st.lists(st.tuples(st.sampled_from([BUY, SELL]), quantities, prices), max_size=25)


def lots_reference(history: list[Fill]) -> list[Decimal]:
    """Average cost, the slow way: keep every lot and shrink them all pro rata on a close."""
    lots: list[list[Decimal]] = []  # [quantity, price], all on one side
    direction = 0
    realized = []
    for side, quantity, price in history:
        if direction in (0, side.sign):
            lots.append([quantity, price])
            direction = side.sign
            realized.append(D(0))
            continue
        held = sum((lot[0] for lot in lots), D(0))
        closed = min(quantity, held)
        share = closed / held
        realized.append(sum(((price - p) * q * share * direction for q, p in lots), D(0)))
        lots = [[q - q * share, p] for q, p in lots] if closed < held else []
        if quantity > held:
            lots, direction = [[quantity - held, price]], side.sign
        elif not lots:
            direction = 0
    return realized


@given(fills)
def test_quantity_is_the_signed_sum_of_fills(history: list[Fill]) -> None:
    state = final_state(history)
    assert state.quantity == sum((side.sign * q for side, q, _ in history), D(0))
    if state.quantity == 0:
        assert state.average_price == 0


@given(fills)
def test_realized_pnl_matches_a_lot_by_lot_average_cost_replay(history: list[Fill]) -> None:
    ours = replay(history)
    reference = lots_reference(history)
    for got, want in zip(ours, reference, strict=True):
        assert abs(got - want) <= TOLERANCE
    assert abs(final_state(history).realized_pnl - sum(reference, D(0))) <= TOLERANCE


@given(fills, prices)
def test_realized_plus_unrealized_equals_the_cash_flow_pnl(
    history: list[Fill], last: Decimal
) -> None:
    state = final_state(history)
    cash = sum((-side.sign * q * p for side, q, p in history), D(0))
    total = state.realized_pnl + unrealized_pnl(state, last)
    assert abs(total - (cash + state.quantity * last)) <= TOLERANCE


@given(fills, st.decimals(min_value=D(0), max_value=D(5), places=4))
def test_commissions_are_summed_and_never_touch_realized_pnl(
    history: list[Fill], commission: Decimal
) -> None:
    with_fees = final_state(history, commission)
    without = final_state(history)
    assert with_fees.commissions == commission * len(history)
    assert with_fees.realized_pnl == without.realized_pnl
