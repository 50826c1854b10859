"""Read the trading record: orders with their history and fills, positions, and P&L.

Every query is scoped to one user in SQL. P&L sums run in Python over exact decimals: SQLite
stores money as text, where SQL SUM would go through binary floating point.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.clock import now
from pinelab.db.base import canonical
from pinelab.errors import ResourceNotFoundError
from pinelab.signals.queries import fetch_page
from pinelab.trading.models import Fill, Order, OrderEvent, Position
from pinelab.trading.positions import PositionState, unrealized_pnl
from pinelab.trading.schemas import (
    AccountPnl,
    DayPnl,
    FillFilters,
    OrderFilters,
    PnlAmounts,
    PnlQuery,
    PnlReport,
    PositionFilters,
    PositionRead,
    StrategyPnl,
)

ZERO = Decimal(0)
_STREAM_BATCH = 1000

FillAmounts = Row[int, int | None, datetime, Decimal, Decimal]


@dataclass(frozen=True)
class OrderRecord:
    """An order with its status history (oldest first) and its fills (oldest first)."""

    order: Order
    history: list[OrderEvent]
    fills: list[Fill]


async def list_orders(
    session: AsyncSession,
    *,
    user_id: int,
    filters: OrderFilters,
    limit: int,
    before_id: int | None = None,
) -> tuple[list[Order], int | None]:
    """Return a page of the user's orders, newest first, and the id the next page follows."""
    conditions: list[Any] = [Order.user_id == user_id]
    for column, value in (
        (Order.strategy_id, filters.strategy_id),
        (Order.broker_account_id, filters.broker_account_id),
        (Order.ticker, filters.ticker),
        (Order.status, filters.status),
        (Order.signal_id, filters.signal_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if filters.created_from is not None:
        conditions.append(Order.created_at >= filters.created_from)
    if filters.created_to is not None:
        conditions.append(Order.created_at < filters.created_to)
    query = select(Order).where(*conditions)
    return await fetch_page(session, query, Order.id, limit=limit, before_id=before_id)


async def get_order(session: AsyncSession, *, user_id: int, order_id: int) -> OrderRecord:
    """Return the user's order with its history and fills, or raise ResourceNotFoundError."""
    query = select(Order).where(Order.id == order_id, Order.user_id == user_id)
    order = (await session.scalars(query)).one_or_none()
    if order is None:
        raise ResourceNotFoundError("Order", order_id)
    events = await session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
    )
    fills = await session.scalars(select(Fill).where(Fill.order_id == order.id).order_by(Fill.id))
    return OrderRecord(order=order, history=list(events.all()), fills=list(fills.all()))


async def list_fills(
    session: AsyncSession,
    *,
    user_id: int,
    filters: FillFilters,
    limit: int,
    before_id: int | None = None,
) -> tuple[list[Fill], int | None]:
    """Return a page of the user's fills, newest first, and the id the next page follows."""
    conditions: list[Any] = [Fill.user_id == user_id]
    for column, value in (
        (Fill.strategy_id, filters.strategy_id),
        (Fill.broker_account_id, filters.broker_account_id),
        (Fill.ticker, filters.ticker),
        (Fill.order_id, filters.order_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if filters.filled_from is not None:
        conditions.append(Fill.filled_at >= filters.filled_from)
    if filters.filled_to is not None:
        conditions.append(Fill.filled_at < filters.filled_to)
    query = select(Fill).where(*conditions)
    return await fetch_page(session, query, Fill.id, limit=limit, before_id=before_id)


async def list_positions(
    session: AsyncSession,
    *,
    user_id: int,
    filters: PositionFilters,
    limit: int,
    before_id: int | None = None,
) -> tuple[list[Position], int | None]:
    """Return a page of the user's positions (open only, unless asked), newest first."""
    conditions: list[Any] = [Position.user_id == user_id]
    for column, value in (
        (Position.broker_account_id, filters.broker_account_id),
        (Position.strategy_id, filters.strategy_id),
        (Position.ticker, filters.ticker),
    ):
        if value is not None:
            conditions.append(column == value)
    if not filters.include_flat:
        conditions.append(Position.quantity != ZERO)
    query = select(Position).where(*conditions)
    return await fetch_page(session, query, Position.id, limit=limit, before_id=before_id)


def position_unrealized_pnl(position: Position) -> Decimal | None:
    """Return the position's P&L at its last known price, or None when no price is known."""
    if position.last_price is None:
        return None
    state = PositionState(quantity=position.quantity, average_price=position.average_price)
    return canonical(unrealized_pnl(state, position.last_price))


def position_read(position: Position) -> PositionRead:
    """Return a position as the API shows it, valued at its last known price."""
    last = position.last_price
    return PositionRead(
        ticker=position.ticker,
        broker_account_id=position.broker_account_id,
        strategy_id=position.strategy_id,
        quantity=position.quantity,
        average_price=position.average_price,
        realized_pnl=position.realized_pnl,
        commissions=position.commissions,
        last_price=last,
        last_price_at=position.last_price_at,
        unrealized_pnl=position_unrealized_pnl(position),
        market_value=None if last is None else canonical(position.quantity * last),
        updated_at=position.updated_at,
    )


@dataclass
class _Tally:
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    commissions: Decimal = ZERO

    def amounts(self) -> dict[str, Decimal]:
        net = self.realized + self.unrealized - self.commissions
        return {
            "realized_pnl": canonical(self.realized),
            "unrealized_pnl": canonical(self.unrealized),
            "commissions": canonical(self.commissions),
            "net_pnl": canonical(net),
        }


@dataclass
class _Ledger:
    totals: _Tally = field(default_factory=_Tally)
    accounts: defaultdict[int, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    strategies: defaultdict[int | None, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    days: defaultdict[date, _Tally] = field(default_factory=lambda: defaultdict(_Tally))

    def add_fill(self, row: FillAmounts) -> None:
        day = row.filled_at.date()
        for tally in self._tallies(row.broker_account_id, row.strategy_id, day):
            tally.realized += row.realized_pnl
            tally.commissions += row.commission

    def add_open(self, position: Position, unrealized: Decimal) -> None:
        for tally in self._tallies(position.broker_account_id, position.strategy_id, None):
            tally.unrealized += unrealized

    def _tallies(self, account_id: int, strategy_id: int | None, day: date | None) -> list[_Tally]:
        tallies = [self.totals, self.accounts[account_id], self.strategies[strategy_id]]
        return tallies if day is None else [*tallies, self.days[day]]

    def report(self, groups: Collection[str]) -> PnlReport:
        report = PnlReport(totals=PnlAmounts(**self.totals.amounts()))
        if "account" in groups:
            accounts = sorted(self.accounts.items())
            report.by_account = [
                AccountPnl(broker_account_id=k, **t.amounts()) for k, t in accounts
            ]
        if "strategy" in groups:
            strategies = sorted(
                self.strategies.items(), key=lambda item: (item[0] is None, item[0])
            )
            report.by_strategy = [StrategyPnl(strategy_id=k, **t.amounts()) for k, t in strategies]
        if "day" in groups:
            report.by_day = [_day_pnl(day, tally) for day, tally in sorted(self.days.items())]
        return report


def _day_pnl(day: date, tally: _Tally) -> DayPnl:
    amounts = tally.amounts()
    return DayPnl(
        day=day,
        realized_pnl=amounts["realized_pnl"],
        commissions=amounts["commissions"],
        net_pnl=canonical(tally.realized - tally.commissions),
    )


async def pnl_report(session: AsyncSession, *, user_id: int, query: PnlQuery) -> PnlReport:
    """Return the user's realized, unrealized and net P&L with the breakdowns asked for."""
    ledger = _Ledger()
    async for row in _fill_amounts(session, user_id=user_id, query=query):
        ledger.add_fill(row)
    if query.to_date is None or query.to_date >= now().date():
        for position in await _priced_open_positions(session, user_id=user_id, query=query):
            unrealized = position_unrealized_pnl(position)
            if unrealized is not None:
                ledger.add_open(position, unrealized)
    return ledger.report(query.group_by)


async def _fill_amounts(
    session: AsyncSession, *, user_id: int, query: PnlQuery
) -> AsyncIterator[FillAmounts]:
    """Yield the P&L columns of the user's fills in the range, in batches (bounded memory)."""
    statement = select(
        Fill.broker_account_id,
        Fill.strategy_id,
        Fill.filled_at,
        Fill.realized_pnl,
        Fill.commission,
    ).where(Fill.user_id == user_id)
    if query.broker_account_id is not None:
        statement = statement.where(Fill.broker_account_id == query.broker_account_id)
    if query.strategy_id is not None:
        statement = statement.where(Fill.strategy_id == query.strategy_id)
    if query.from_date is not None:
        statement = statement.where(Fill.filled_at >= _midnight(query.from_date))
    if query.to_date is not None:
        statement = statement.where(Fill.filled_at < _midnight(query.to_date + timedelta(days=1)))
    result = await session.stream(statement.execution_options(yield_per=_STREAM_BATCH))
    async for row in result:
        yield row


async def _priced_open_positions(
    session: AsyncSession, *, user_id: int, query: PnlQuery
) -> list[Position]:
    statement = select(Position).where(
        Position.user_id == user_id,
        Position.quantity != ZERO,
        Position.last_price.is_not(None),
    )
    if query.broker_account_id is not None:
        statement = statement.where(Position.broker_account_id == query.broker_account_id)
    if query.strategy_id is not None:
        statement = statement.where(Position.strategy_id == query.strategy_id)
    return list((await session.scalars(statement)).all())


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
