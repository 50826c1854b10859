"""Sizing: every rule of ALERTS.md's "What a buy or sell means", then properties."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinelab.brokers.base import OrderSide, OrderType
from pinelab.errors import OrderRejectedError
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, QuantityType, Sentiment
from pinelab.trading.exceptions import SizingError
from pinelab.trading.sizing import OrderPlan, Sizing, plan_order

D = Decimal
BUY = OrderSide.BUY
SELL = OrderSide.SELL
ONE_UNIT = Sizing(QuantityType.FIXED, D(1))
FLAT = D(0)


def alert(action: Action, **fields: Any) -> AlertIntent:
    return AlertIntent(ticker="AAPL", action=action, **fields)


def plan(
    intent: AlertIntent,
    *,
    sizing: Sizing = ONE_UNIT,
    position: Decimal = FLAT,
    equity: Decimal | None = None,
    price: Decimal | None = None,
    fractional: bool = True,
    notional_orders: bool = False,
) -> OrderPlan | None:
    return plan_order(
        intent,
        sizing=sizing,
        current_position=position,
        equity=equity,
        price=price,
        fractional=fractional,
        notional_orders=notional_orders,
    )


def opened(side: OrderSide, quantity: str) -> OrderPlan:
    return OrderPlan(side=side, quantity=D(quantity), notional=None, reduce_only=False)


def closing(side: OrderSide, quantity: str) -> OrderPlan:
    return OrderPlan(side=side, quantity=D(quantity), notional=None, reduce_only=True)


# --- buy and sell -----------------------------------------------------------------------


@pytest.mark.parametrize(("action", "side"), [(Action.BUY, BUY), (Action.SELL, SELL)])
def test_buy_or_sell_is_one_order_of_the_alert_quantity(action: Action, side: OrderSide) -> None:
    assert plan(alert(action, quantity=D(10)), position=D(-3)) == opened(side, "10")


def test_a_sell_larger_than_the_long_mirrors_the_strategy_and_goes_short() -> None:
    assert plan(alert(Action.SELL, quantity=D(15)), position=D(10)) == opened(SELL, "15")


def test_an_alert_without_quantity_uses_the_strategy_sizing() -> None:
    sizing = Sizing(QuantityType.FIXED, D(3))
    assert plan(alert(Action.BUY), sizing=sizing) == opened(BUY, "3")


def test_a_notional_strategy_sizing_becomes_a_quantity_at_the_price() -> None:
    sizing = Sizing(QuantityType.NOTIONAL, D(1000))
    assert plan(alert(Action.BUY), sizing=sizing, price=D(50)) == opened(BUY, "20")


def test_a_notional_alert_quantity_becomes_a_quantity_at_the_price() -> None:
    intent = alert(Action.SELL, quantity=D(1000), quantity_type=QuantityType.NOTIONAL)
    assert plan(intent, price=D(400)) == opened(SELL, "2.5")


def test_the_alert_quantity_wins_over_the_strategy_sizing() -> None:
    sizing = Sizing(QuantityType.NOTIONAL, D(1000))
    assert plan(alert(Action.BUY, quantity=D(2)), sizing=sizing) == opened(BUY, "2")


def test_percent_of_equity_buys_that_share_of_the_account_at_the_price() -> None:
    intent = alert(Action.BUY, quantity=D(10), quantity_type=QuantityType.PERCENT_OF_EQUITY)
    assert plan(intent, equity=D(50000), price=D(100)) == opened(BUY, "50")


def test_percent_of_equity_needs_the_equity() -> None:
    sizing = Sizing(QuantityType.PERCENT_OF_EQUITY, D(5))
    with pytest.raises(SizingError, match="needs the account's equity"):
        plan(alert(Action.BUY), sizing=sizing, price=D(100))


def test_percent_of_equity_needs_positive_equity() -> None:
    sizing = Sizing(QuantityType.PERCENT_OF_EQUITY, D(5))
    with pytest.raises(SizingError, match="no equity"):
        plan(alert(Action.BUY), sizing=sizing, equity=D(0), price=D(100))


@pytest.mark.parametrize("kind", [QuantityType.NOTIONAL, QuantityType.PERCENT_OF_EQUITY])
def test_money_sizing_needs_a_price_to_become_a_quantity(kind: QuantityType) -> None:
    with pytest.raises(SizingError, match=f"{kind.value} sizing needs a price"):
        plan(alert(Action.BUY), sizing=Sizing(kind, D(10)), equity=D(1000))


def test_money_sizing_needs_a_positive_price() -> None:
    sizing = Sizing(QuantityType.NOTIONAL, D(100))
    with pytest.raises(SizingError, match="positive price"):
        plan(alert(Action.BUY), sizing=sizing, price=D(0))


def test_a_quantity_from_money_rounds_down_so_it_never_exceeds_the_amount() -> None:
    sizing = Sizing(QuantityType.NOTIONAL, D(100))
    result = plan(alert(Action.BUY), sizing=sizing, price=D(3))
    assert result == opened(BUY, "33.333333333333333333")
    assert result is not None
    assert result.quantity is not None
    assert result.quantity * 3 <= 100


def test_a_large_amount_at_a_tiny_price_keeps_every_digit() -> None:
    sizing = Sizing(QuantityType.NOTIONAL, D(10) ** 12)
    assert plan(alert(Action.BUY), sizing=sizing, price=D("0.0001")) == opened(BUY, "1E+16")


def test_an_amount_too_small_to_buy_anything_is_rejected() -> None:
    sizing = Sizing(QuantityType.NOTIONAL, D("1e-20"))
    with pytest.raises(SizingError, match="buys less than"):
        plan(alert(Action.BUY), sizing=sizing, price=D(1))


@pytest.mark.parametrize("value", [D(0), D(-2)])
def test_a_quantity_must_be_positive(value: Decimal) -> None:
    with pytest.raises(SizingError, match="must be positive"):
        plan(alert(Action.BUY), sizing=Sizing(QuantityType.FIXED, value))


def test_sizing_error_is_an_order_rejection_with_a_reason() -> None:
    with pytest.raises(OrderRejectedError) as caught:
        plan(alert(Action.ADD, quantity=D(1)))
    assert caught.value.message == "add needs an open position"


# --- notional orders and whole units ----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "quantity", "notional"),
    [(QuantityType.NOTIONAL, D(500), D(500)), (QuantityType.PERCENT_OF_EQUITY, D(20), D(2000))],
)
def test_a_venue_taking_notional_orders_gets_the_amount_without_a_price(
    kind: QuantityType, quantity: Decimal, notional: Decimal
) -> None:
    intent = alert(Action.BUY, quantity=quantity, quantity_type=kind)
    result = plan(intent, equity=D(10000), notional_orders=True)
    assert result == OrderPlan(side=BUY, quantity=None, notional=notional, reduce_only=False)
    assert result is not None
    assert result.signed_quantity is None


def test_a_fixed_quantity_stays_a_quantity_even_when_notional_orders_exist() -> None:
    assert plan(alert(Action.BUY, quantity=D(2)), notional_orders=True) == opened(BUY, "2")


def test_without_fractional_trading_a_notional_amount_becomes_whole_units() -> None:
    sizing = Sizing(QuantityType.NOTIONAL, D(1000))
    result = plan(
        alert(Action.BUY), sizing=sizing, price=D(300), fractional=False, notional_orders=True
    )
    assert result == opened(BUY, "3")


def test_without_fractional_trading_a_quantity_rounds_down() -> None:
    assert plan(alert(Action.SELL, quantity=D("2.7")), fractional=False) == opened(SELL, "2")


def test_without_fractional_trading_less_than_one_unit_is_rejected() -> None:
    with pytest.raises(SizingError, match="rounds down to 0 whole units"):
        plan(alert(Action.BUY, quantity=D("0.5")), fractional=False)


# --- add --------------------------------------------------------------------------------


@pytest.mark.parametrize(("position", "side"), [(D(5), BUY), (D(-5), SELL)])
def test_add_trades_in_the_direction_of_the_position(position: Decimal, side: OrderSide) -> None:
    assert plan(alert(Action.ADD, quantity=D(2)), position=position) == opened(side, "2")


def test_add_without_quantity_uses_the_strategy_sizing() -> None:
    sizing = Sizing(QuantityType.FIXED, D(4))
    assert plan(alert(Action.ADD), sizing=sizing, position=D(-1)) == opened(SELL, "4")


def test_add_when_flat_is_rejected() -> None:
    with pytest.raises(SizingError, match="add needs an open position"):
        plan(alert(Action.ADD, quantity=D(2)))


# --- exit -------------------------------------------------------------------------------


@pytest.mark.parametrize(("position", "side"), [(D(7), SELL), (D("-2.5"), BUY)])
def test_exit_closes_the_whole_position(position: Decimal, side: OrderSide) -> None:
    expected = closing(side, str(abs(position)))
    assert plan(alert(Action.EXIT, quantity=D(1)), position=position) == expected


def test_exit_when_flat_does_nothing() -> None:
    assert plan(alert(Action.EXIT)) is None


def test_exit_closes_a_fractional_position_even_without_fractional_trading() -> None:
    assert plan(alert(Action.EXIT), position=D("1.5"), fractional=False) == closing(SELL, "1.5")


# --- sentiment flat ---------------------------------------------------------------------


def test_a_flat_sell_closes_part_of_a_long() -> None:
    intent = alert(Action.SELL, quantity=D(4), sentiment=Sentiment.FLAT)
    assert plan(intent, position=D(10)) == closing(SELL, "4")


def test_a_flat_sell_never_opens_a_short() -> None:
    intent = alert(Action.SELL, quantity=D(15), sentiment=Sentiment.FLAT)
    assert plan(intent, position=D(10)) == closing(SELL, "10")


def test_a_flat_buy_covers_a_short() -> None:
    intent = alert(Action.BUY, quantity=D(10), sentiment=Sentiment.FLAT)
    assert plan(intent, position=D(-4)) == closing(BUY, "4")


def test_a_flat_alert_always_trades_on_the_closing_side() -> None:
    intent = alert(Action.BUY, quantity=D(3), sentiment=Sentiment.FLAT)
    assert plan(intent, position=D(10)) == closing(SELL, "3")


def test_a_flat_alert_without_quantity_closes_everything() -> None:
    intent = alert(Action.SELL, sentiment=Sentiment.FLAT)
    sizing = Sizing(QuantityType.FIXED, D(1))
    assert plan(intent, sizing=sizing, position=D(6)) == closing(SELL, "6")


def test_a_flat_alert_when_flat_does_nothing() -> None:
    intent = alert(Action.SELL, quantity=D(3), sentiment=Sentiment.FLAT)
    assert plan(intent) is None


def test_a_flat_alert_converts_a_notional_quantity_before_capping_it() -> None:
    intent = alert(
        Action.SELL, quantity=D(500), quantity_type=QuantityType.NOTIONAL, sentiment=Sentiment.FLAT
    )
    result = plan(intent, position=D(10), price=D(100), notional_orders=True)
    assert result == closing(SELL, "5")


@pytest.mark.parametrize("sentiment", [Sentiment.LONG, Sentiment.SHORT, None])
def test_other_sentiments_leave_a_sell_as_it_is(sentiment: Sentiment | None) -> None:
    intent = alert(Action.SELL, quantity=D(15), sentiment=sentiment)
    assert plan(intent, position=D(10)) == opened(SELL, "15")


# --- position_size ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "target", "expected"),
    [
        (D(4), D(10), opened(BUY, "6")),
        (D(0), D(-3), opened(SELL, "3")),
        (D(5), D(-3), opened(SELL, "8")),
        (D(5), D(2), closing(SELL, "3")),
        (D(5), D(0), closing(SELL, "5")),
        (D(-5), D(-1), closing(BUY, "4")),
        (D(-2), D(-6), opened(SELL, "4")),
    ],
)
def test_a_target_position_orders_the_difference(
    position: Decimal, target: Decimal, expected: OrderPlan
) -> None:
    intent = alert(Action.BUY, quantity=D(1), position_size=target)
    assert plan(intent, position=position) == expected


def test_a_target_already_held_does_nothing() -> None:
    assert plan(alert(Action.SELL, quantity=D(1), position_size=D(3)), position=D(3)) is None


def test_a_target_heals_a_missed_alert_even_against_the_alert_side() -> None:
    intent = alert(Action.BUY, quantity=D(1), position_size=D(1))
    assert plan(intent, position=D(4)) == closing(SELL, "3")


def test_a_target_wins_over_add_when_flat() -> None:
    assert plan(alert(Action.ADD, position_size=D(2))) == opened(BUY, "2")


def test_a_target_difference_below_one_unit_is_rejected_without_fractional_trading() -> None:
    intent = alert(Action.BUY, position_size=D("3.5"))
    with pytest.raises(SizingError, match="rounds down to 0"):
        plan(intent, position=D(3), fractional=False)


# --- cancel -----------------------------------------------------------------------------


def test_cancel_is_not_sized() -> None:
    with pytest.raises(ValueError, match="cancel"):
        plan(alert(Action.CANCEL))


# --- properties -------------------------------------------------------------------------

amounts = st.decimals(min_value=D("-1e6"), max_value=D("1e6"), places=6)
nonzero = amounts.filter(lambda value: value != 0)


@given(nonzero, st.booleans(), st.sampled_from([None, D(5)]))
def test_exit_always_brings_the_position_to_zero(
    position: Decimal, fractional: bool, stray_target: Decimal | None
) -> None:
    intent = alert(Action.EXIT, quantity=D(3), position_size=stray_target)
    result = plan(intent, position=position, fractional=fractional)
    assert result is not None
    assert result.signed_quantity is not None
    assert position + result.signed_quantity == 0
    assert result.reduce_only


@given(amounts, amounts, st.sampled_from([Action.BUY, Action.SELL, Action.ADD]))
def test_a_target_always_yields_the_difference(
    position: Decimal, target: Decimal, action: Action
) -> None:
    result = plan(alert(action, position_size=target), position=position)
    if target == position:
        assert result is None
        return
    assert result is not None
    assert result.signed_quantity is not None
    assert result.signed_quantity == target - position
    assert result.reduce_only == (abs(target) < abs(position) and target * position >= 0)


@given(nonzero, st.decimals(min_value=D("0.000001"), max_value=D("1e6"), places=6))
def test_a_flat_alert_never_crosses_zero(position: Decimal, quantity: Decimal) -> None:
    intent = alert(Action.SELL, quantity=quantity, sentiment=Sentiment.FLAT)
    result = plan(intent, position=position)
    assert result is not None
    assert result.signed_quantity is not None
    after = position + result.signed_quantity
    assert after == 0 or (after > 0) == (position > 0)
    assert abs(after) < abs(position)


# --- without a quantity against the other side (TradersPost's exit rule) -----------------


def test_a_sell_without_quantity_exits_the_whole_long() -> None:
    sizing = Sizing(QuantityType.FIXED, D(1))
    assert plan(alert(Action.SELL), sizing=sizing, position=D(7)) == closing(SELL, "7")


def test_a_buy_without_quantity_covers_the_whole_short() -> None:
    assert plan(alert(Action.BUY), position=D(-4)) == closing(BUY, "4")


def test_a_sell_without_quantity_and_a_short_sentiment_reverses_into_the_strategy_size() -> None:
    sizing = Sizing(QuantityType.FIXED, D(2))
    intent = alert(Action.SELL, sentiment=Sentiment.SHORT)
    assert plan(intent, sizing=sizing, position=D(7)) == opened(SELL, "9")


def test_a_sell_without_quantity_when_flat_opens_the_strategy_size() -> None:
    sizing = Sizing(QuantityType.FIXED, D(2))
    assert plan(alert(Action.SELL), sizing=sizing) == opened(SELL, "2")


# --- percent of position and risk amount ------------------------------------------------


def test_percent_of_position_sells_that_share_of_the_long_and_only_reduces() -> None:
    intent = alert(Action.SELL, quantity=D(50), quantity_type=QuantityType.PERCENT_OF_POSITION)
    assert plan(intent, position=D(10)) == closing(SELL, "5")


def test_percent_of_position_needs_an_open_position() -> None:
    intent = alert(Action.SELL, quantity=D(50), quantity_type=QuantityType.PERCENT_OF_POSITION)
    with pytest.raises(SizingError, match="needs an open position"):
        plan(intent)


def test_percent_of_position_rounds_down_to_whole_units_without_fractions() -> None:
    intent = alert(Action.SELL, quantity=D(50), quantity_type=QuantityType.PERCENT_OF_POSITION)
    assert plan(intent, position=D(5), fractional=False) == closing(SELL, "2")


def test_risk_amount_buys_what_the_stop_distance_allows() -> None:
    intent = alert(
        Action.BUY,
        quantity=D(100),
        quantity_type=QuantityType.RISK_AMOUNT,
        stop_loss=ExitTarget(price=D(170)),
    )
    assert plan(intent, price=D(180)) == opened(BUY, "10")


@pytest.mark.parametrize(
    "stop", [ExitTarget(percent=D(5)), ExitTarget(amount=D(10))], ids=["percent", "amount"]
)
def test_risk_amount_reads_a_relative_stop(stop: ExitTarget) -> None:
    intent = alert(
        Action.BUY, quantity=D(100), quantity_type=QuantityType.RISK_AMOUNT, stop_loss=stop
    )
    assert plan(intent, price=D(200)) == opened(BUY, "10")


def test_risk_amount_needs_a_stop_loss() -> None:
    intent = alert(Action.BUY, quantity=D(100), quantity_type=QuantityType.RISK_AMOUNT)
    with pytest.raises(SizingError, match="needs a stop loss"):
        plan(intent, price=D(180))


def test_risk_amount_refuses_a_stop_at_the_entry() -> None:
    intent = alert(
        Action.BUY,
        quantity=D(100),
        quantity_type=QuantityType.RISK_AMOUNT,
        stop_loss=ExitTarget(price=D(180)),
    )
    with pytest.raises(SizingError, match="away from the entry"):
        plan(intent, price=D(180))


# --- the order's own price and the venue's step ---------------------------------------------


@pytest.mark.parametrize(
    ("fields", "price"),
    [
        ({"order_type": OrderType.LIMIT, "limit_price": D(50)}, D(50)),
        ({"order_type": OrderType.STOP_LIMIT, "stop_price": D(60), "limit_price": D(55)}, D(55)),
        ({"order_type": OrderType.STOP, "stop_price": D(125)}, D(125)),
        ({"order_type": OrderType.TRAILING_STOP, "trail_percent": D(1)}, D(100)),
        ({}, D(100)),
    ],
)
def test_an_order_is_priced_from_its_own_limit_or_stop_price(
    fields: dict[str, Any], price: Decimal
) -> None:
    assert alert(Action.BUY, price=D(100), **fields).order_price == price


def test_a_quantity_from_money_is_cut_down_to_the_venue_step_never_up() -> None:
    intent = alert(Action.BUY, quantity=D(100), quantity_type=QuantityType.NOTIONAL)
    planned = plan_order(
        intent,
        sizing=ONE_UNIT,
        current_position=FLAT,
        equity=None,
        price=D(3),
        quantity_step=D("1e-8"),
    )
    assert planned == opened(BUY, "33.33333333")


def test_money_that_buys_less_than_the_venue_step_is_refused() -> None:
    intent = alert(Action.BUY, quantity=D(1), quantity_type=QuantityType.NOTIONAL)
    with pytest.raises(SizingError, match=r"buys less than 0\.01 units"):
        plan_order(
            intent,
            sizing=ONE_UNIT,
            current_position=FLAT,
            equity=None,
            price=D(1000),
            quantity_step=D("0.01"),
        )
