"""Execution at the built-in paper venue in one transaction: all of it commits, or none of it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from pinelab.brokers.models import PaperFill, PaperOrder
from pinelab.brokers.paper_venue import PaperConfig, PaperVenue
from pinelab.main import Services as AppContext  # bridged until the merge
from pinelab.signals.models import Signal
from pinelab.trading import paper_execution
from pinelab.trading.books import Books
from pinelab.trading.execution import execute_signal
from pinelab.trading.models import Fill, Order, OrderEvent, Position
from tests.factories import Seeded, seed_strategy


async def _alert(context: AppContext, seeded: Seeded, number: int, **fields: Any) -> int:
    alert = {"ticker": "AAPL", "action": "buy", "quantity": "2", "price": "50", "id": f"p{number}"}
    assert context.ingestor is not None
    result = await context.ingestor.ingest(
        token=seeded.token,
        body=orjson.dumps(alert | fields),
        content_type="application/json",
        source_ip=None,
    )
    return result.signal_id


async def _count(context: AppContext, model: Any) -> int:
    async with context.db.session() as session:
        return len((await session.scalars(select(model))).all())


async def test_a_crash_before_the_commit_leaves_no_trace_and_the_rerun_places_one_order(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await seed_strategy(context.db)
    signal_id = await _alert(context, seeded, 1)

    def crash(*args: Any) -> None:
        raise RuntimeError("the process died before the commit")

    with monkeypatch.context() as patched:
        patched.setattr(paper_execution, "finish_signal", crash)
        with pytest.raises(RuntimeError):
            await execute_signal(context, signal_id)
    for model in (PaperOrder, PaperFill, Order, OrderEvent, Fill, Position):
        assert await _count(context, model) == 0, model.__name__
    await execute_signal(context, signal_id)
    async with context.db.session() as session:
        signal = await session.get(Signal, signal_id)
        (order,) = (await session.scalars(select(Order))).all()
        (venue_order,) = (await session.scalars(select(PaperOrder))).all()
        history = (await session.scalars(select(OrderEvent.event).order_by(OrderEvent.id))).all()
    assert signal is not None
    assert signal.status == "executed"
    assert (order.status, order.filled_quantity, order.broker_order_id) == (
        "filled",
        2,
        venue_order.broker_order_id,
    )
    assert history == ["created", "submitted", "filled"]


async def test_positions_reverse_through_zero_and_realize_pnl_in_one_transaction_each(
    context: AppContext,
) -> None:
    seeded = await seed_strategy(context.db)
    await execute_signal(context, await _alert(context, seeded, 1, quantity="3", price="10"))
    await execute_signal(
        context, await _alert(context, seeded, 2, action="sell", quantity="5", price="12")
    )
    async with context.db.session() as session:
        (position,) = (await session.scalars(select(Position))).all()
        realized = (await session.scalars(select(Fill.realized_pnl).order_by(Fill.id))).all()
    assert (position.quantity, position.average_price, position.realized_pnl) == (-2, 12, 6)
    assert (position.last_price, realized) == (12, [0, 6])


async def test_working_order_lookups_take_the_status_index_on_sqlite(
    context: AppContext,
) -> None:
    if not context.db.is_sqlite:
        pytest.skip("PostgreSQL plans from its statistics")
    seeded = await seed_strategy(context.db)
    plans: list[str] = []

    def explain(_: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.startswith("SELECT") and "status" in statement:
            rows = cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plans.append(" ".join(str(row[-1]) for row in rows))

    def look(session: Session) -> None:
        connection = session.connection()
        Books(connection).working(broker_account_id=seeded.account_id, symbol="AAPL")
        config = PaperConfig(seeded.account_id, Decimal(1), Decimal(0), Decimal(0))
        PaperVenue(connection, config).fetch_open_orders("AAPL")

    event.listen(Engine, "before_cursor_execute", explain)
    try:
        await context.db.run_session(look, write=False)
    finally:
        event.remove(Engine, "before_cursor_execute", explain)
    # Working orders are few among an account's many: never a scan of the account's orders.
    assert len(plans) == 2
    assert "ix_trade_order_status" in plans[0]
    assert "ix_paper_order_status" in plans[1]
