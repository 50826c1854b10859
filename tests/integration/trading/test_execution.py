"""Execution against the real paper broker: sizing, brackets, resting orders, and faults."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from pinelab.brokers.base import Broker, OrderRequest, OrderSide
from pinelab.brokers.exceptions import RetryableBrokerError
from pinelab.brokers.models import BrokerAccount
from pinelab.main import Services
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy
from pinelab.trading import orders
from pinelab.trading.models import Fill, Order, OrderEvent, Position
from tests.factories import Seeded, all_rows, execute, ingest_alert
from tests.fakes.faulty_broker import FaultPlan, wrap


def _with_faults(context: Services, plan: FaultPlan) -> None:
    default = context.brokers.build_default

    def build(account: BrokerAccount) -> Broker:
        return wrap(default(account), plan)

    context.brokers.build = build


async def _run(context: Services, seeded: Seeded, **fields: Any) -> Signal:
    signal_id = await ingest_alert(context, seeded, **fields)
    await execute(context, signal_id)
    return await _get(context, Signal, signal_id)


async def _get(context: Services, model: Any, row_id: int) -> Any:
    async with context.db.session() as session:
        return await session.get(model, row_id)


async def _position(context: Services) -> Position:
    (position,) = await all_rows(context.db, Position)
    return position


async def test_buy_then_partial_sell_books_realized_pnl(context: Services, seeded: Seeded) -> None:
    assert (await _run(context, seeded)).status == "executed"
    assert (
        await _run(context, seeded, action="sell", quantity="4", price="110")
    ).status == "executed"
    position = await _position(context)
    assert (position.quantity, position.average_price, position.realized_pnl) == (6, 100, 40)
    fills = await all_rows(context.db, Fill)
    assert [f.realized_pnl for f in fills] == [0, 40]


async def test_response_lost_after_accept_is_adopted_not_resubmitted(
    context: Services, seeded: Seeded
) -> None:
    plan = FaultPlan(lost_after_accept=1)
    _with_faults(context, plan)
    signal = await _run(context, seeded)
    assert signal.status == "executed", signal.reason
    assert plan.submits_reaching_venue == 1
    (order,) = await all_rows(context.db, Order)
    assert order.status == "filled"


async def test_broker_down_is_retried_and_the_venue_sees_one_order(
    context: Services, seeded: Seeded
) -> None:
    plan = FaultPlan(unavailable=2)
    _with_faults(context, plan)
    signal_id = await ingest_alert(context, seeded)
    for _ in range(2):
        with pytest.raises(RetryableBrokerError):
            await execute(context, signal_id)
    await execute(context, signal_id)
    assert (await _get(context, Signal, signal_id)).status == "executed"
    assert plan.submits_reaching_venue == 1
    assert len(await all_rows(context.db, Order)) == 1


async def test_order_sent_before_a_crash_is_found_by_client_id_on_restart(
    context: Services, seeded: Seeded
) -> None:
    plan = FaultPlan(unavailable=1)
    _with_faults(context, plan)
    signal_id = await ingest_alert(context, seeded)
    with pytest.raises(RetryableBrokerError):
        await execute(context, signal_id)
    (order,) = await all_rows(context.db, Order)
    assert order.status == "new"
    # The process "crashed" after the venue took the order but before we recorded the answer.
    async with context.db.session() as session:
        account = await session.get(BrokerAccount, seeded.account_id)
    venue = context.brokers.build_default(account)
    request = OrderRequest(
        order.client_order_id,
        "AAPL",
        OrderSide.BUY,
        quantity=Decimal(10),
        reference_price=Decimal(100),
    )
    await venue.submit_order(request)
    plan.submit_calls.clear()
    await execute(context, signal_id)
    assert plan.submit_calls == []  # asked by client_order_id, never resubmitted
    order = await _get(context, Order, order.id)
    assert order.status == "filled"


async def test_limit_order_rests_until_a_later_alert_crosses_it(
    context: Services, seeded: Seeded
) -> None:
    await _run(context, seeded, order_type="limit", limit_price="95", price="100")
    (order,) = await all_rows(context.db, Order)
    assert order.status == "accepted"
    await _run(context, seeded, action="buy", quantity="1", price="94")
    order = await _get(context, Order, order.id)
    assert (order.status, order.filled_quantity) == ("filled", 10)
    assert (await _position(context)).quantity == 11


async def test_cancel_alert_cancels_open_orders_in_the_ticker(
    context: Services, seeded: Seeded
) -> None:
    await _run(context, seeded, order_type="limit", limit_price="90")
    signal = await _run(context, seeded, action="cancel")
    assert signal.status == "executed", signal.reason
    (order,) = await all_rows(context.db, Order)
    assert order.status == "canceled"


async def test_bracket_take_profit_fills_and_cancels_the_stop(
    context: Services, seeded: Seeded
) -> None:
    signal = await _run(context, seeded, take_profit={"percent": "10"}, stop_loss={"percent": "5"})
    assert signal.status == "executed", signal.reason
    entry, *legs = await all_rows(context.db, Order)
    assert entry.status == "filled"
    assert sorted((leg.leg, leg.status) for leg in legs) == [
        ("stop_loss", "accepted"),
        ("take_profit", "accepted"),
    ]
    assert {leg.parent_order_id for leg in legs} == {entry.id}
    await _run(
        context, seeded, action="buy", quantity="1", price="111", take_profit=None, stop_loss=None
    )
    legs = {leg.leg: leg for leg in (await all_rows(context.db, Order))[1:3]}
    assert legs["take_profit"].status == "filled"
    assert legs["stop_loss"].status == "canceled"


async def test_exit_closes_the_strategy_position(context: Services, seeded: Seeded) -> None:
    await _run(context, seeded)
    signal = await _run(context, seeded, action="exit", quantity=None, price="105")
    assert signal.status == "executed"
    position = await _position(context)
    assert (position.quantity, position.realized_pnl) == (0, 50)


async def test_exit_when_flat_places_nothing(context: Services, seeded: Seeded) -> None:
    signal = await _run(context, seeded, action="exit", quantity=None)
    assert signal.status == "executed"
    assert "nothing to do" in (signal.reason or "")
    assert await all_rows(context.db, Order) == []


async def test_sell_with_flat_sentiment_closes_and_never_opens_a_short(
    context: Services, seeded: Seeded
) -> None:
    await _run(context, seeded, quantity="3")
    await _run(context, seeded, action="sell", quantity="10", sentiment="flat")
    assert (await _position(context)).quantity == 0


async def test_target_position_orders_the_difference(context: Services, seeded: Seeded) -> None:
    await _run(context, seeded, quantity="3")
    await _run(context, seeded, action="buy", quantity="1", position_size="8")
    assert (await _position(context)).quantity == 8
    await _run(context, seeded, action="sell", quantity="1", position_size="-2")
    assert (await _position(context)).quantity == -2


async def test_unaffordable_order_is_rejected_with_the_reason(
    context: Services, seeded: Seeded
) -> None:
    signal = await _run(context, seeded, quantity="5000", price="100")
    assert signal.status == "failed"
    (order,) = await all_rows(context.db, Order)
    assert order.status == "rejected"
    assert "cash" in (order.reason or "").lower()


async def test_symbol_outside_allowed_list_places_nothing(
    context: Services, seeded: Seeded
) -> None:
    async with context.db.transaction() as session:
        strategy = await session.get(Strategy, seeded.strategy_id)
        strategy.allowed_symbols = ["MSFT"]
    context.tokens.invalidate()
    signal = await _run(context, seeded)
    assert signal.status == "failed"
    assert "allowed symbols" in (signal.reason or "")
    assert await all_rows(context.db, Order) == []


async def test_executing_a_signal_twice_places_one_order(context: Services, seeded: Seeded) -> None:
    signal_id = await ingest_alert(context, seeded)
    await execute(context, signal_id)
    async with context.db.transaction() as session:
        signal = await session.get(Signal, signal_id)
        signal.status = (
            "accepted"  # as if the job ran again after a crash before it was marked done
        )
    await execute(context, signal_id)
    assert len(await all_rows(context.db, Order)) == 1
    history = [e.event for e in await all_rows(context.db, OrderEvent)]
    assert history == ["created", "submitted", "filled"]


async def test_running_a_refused_signal_again_keeps_it_failed_and_places_nothing(
    context: Services, seeded: Seeded
) -> None:
    signal = await _run(context, seeded, quantity="5000", price="100")
    assert signal.status == "failed"
    async with context.db.transaction() as session:
        stored = await session.get(Signal, signal.id)
        stored.status = "accepted"  # as a dead-letter replay does
    await execute(context, signal.id)
    again = await _get(context, Signal, signal.id)
    assert again.status == "failed"
    assert "rejected" in (again.reason or "")
    assert len(await all_rows(context.db, Order)) == 1


def test_client_order_id_is_deterministic_and_venue_safe() -> None:
    first = orders.client_order_id(42, 7)
    assert first == orders.client_order_id(42, 7)
    assert first != orders.client_order_id(42, 8)
    assert len(first) <= 36


async def _set_costs(context: Services, seeded: Seeded, commission: str, slippage: str) -> None:
    async with context.db.transaction() as session:
        account = await session.get_one(BrokerAccount, seeded.account_id)
        account.commission_per_order = Decimal(commission)
        account.slippage_bps = Decimal(slippage)
    context.brokers.forget(seeded.account_id)


async def test_commission_and_slippage_reach_our_fill_and_position(
    context: Services, seeded: Seeded
) -> None:
    await _set_costs(context, seeded, commission="1.5", slippage="100")  # 1 %
    assert (await _run(context, seeded, quantity="2", price="100")).status == "executed"
    (fill,) = await all_rows(context.db, Fill)
    assert (fill.price, fill.commission) == (Decimal(101), Decimal("1.5"))
    (order,) = await all_rows(context.db, Order)
    assert order.average_fill_price == Decimal(101)
    position = await _position(context)
    assert (position.average_price, position.commissions) == (Decimal(101), Decimal("1.5"))


async def test_stop_order_rests_and_fills_when_a_later_alert_touches_it(
    context: Services, seeded: Seeded
) -> None:
    await _run(context, seeded, order_type="stop", stop_price="105", price="100")
    (order,) = await all_rows(context.db, Order)
    assert order.status == "accepted"
    await _run(context, seeded, action="buy", quantity="1", price="106")
    order = await _get(context, Order, order.id)
    assert (order.status, order.filled_quantity, order.average_fill_price) == ("filled", 10, 106)


async def test_position_reverses_through_zero_and_realizes_pnl(
    context: Services, seeded: Seeded
) -> None:
    await _run(context, seeded, quantity="3", price="10")
    await _run(context, seeded, action="sell", quantity="5", price="12")
    position = await _position(context)
    assert (position.quantity, position.average_price, position.realized_pnl) == (-2, 12, 6)
    assert [f.realized_pnl for f in await all_rows(context.db, Fill)] == [0, 6]


async def test_working_order_lookups_take_the_status_index_on_sqlite(
    context: Services, seeded: Seeded
) -> None:
    if not context.db.is_sqlite:
        pytest.skip("PostgreSQL plans from its statistics")
    statements: list[tuple[str, Any]] = []

    def capture(_: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.startswith("SELECT") and "status" in statement:
            statements.append((statement, parameters))

    def look(session: Session) -> list[str]:
        event.listen(Engine, "before_cursor_execute", capture)
        try:
            orders.open_orders(session, broker_account_id=seeded.account_id, symbol="AAPL")
        finally:
            event.remove(Engine, "before_cursor_execute", capture)
        connection = session.connection()
        return [
            " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters)
            )
            for sql, parameters in statements
        ]

    async with context.db.session() as session:
        plans = await session.run_sync(look)
    # Working orders are few among an account's many: never a scan of the account's orders.
    assert len(plans) == 1
    assert "ix_trade_order_status" in plans[0], plans


async def test_concurrent_executions_opening_one_position_book_into_one_row(
    context: Services, seeded: Seeded
) -> None:
    # Several workers (PostgreSQL) may open the same new position at once: each fill books into
    # the one row, none fails on the unique (account, strategy, ticker).
    signal_ids = [await ingest_alert(context, seeded, quantity="1") for _ in range(6)]
    await asyncio.gather(*(execute(context, signal_id) for signal_id in signal_ids))
    signals = [await _get(context, Signal, signal_id) for signal_id in signal_ids]
    assert [signal.status for signal in signals] == ["executed"] * 6, [s.reason for s in signals]
    position = await _position(context)
    assert position.quantity == 6
