"""HTTP routes of the trading package: the caller's orders, fills, positions and P&L."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from pinelab.accounts.dependencies import CurrentUser
from pinelab.api.deps import ContextDep, PageDep
from pinelab.api.pagination import Page, next_cursor
from pinelab.signals.schemas import MAX_ID
from pinelab.trading import queries
from pinelab.trading.schemas import (
    FillFilters,
    FillRead,
    OrderDetail,
    OrderEventRead,
    OrderFilters,
    OrderRead,
    PnlQuery,
    PnlReport,
    PositionFilters,
    PositionRead,
)

router = APIRouter(tags=["orders, positions, P&L"])


@router.get("/orders")
async def list_orders(
    user: CurrentUser,
    context: ContextDep,
    page: PageDep,
    filters: Annotated[OrderFilters, Query()],
) -> Page[OrderRead]:
    """List your orders, newest first."""
    async with context.db.session() as session:
        orders, next_id = await queries.list_orders(
            session, user_id=user.id, filters=filters, limit=page.limit, before_id=page.before_id
        )
    items = [OrderRead.model_validate(order) for order in orders]
    return Page[OrderRead](items=items, next_cursor=next_cursor(next_id))


@router.get("/orders/{order_id}", responses={404: {"description": "No such order of yours"}})
async def get_order(
    order_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, context: ContextDep
) -> OrderDetail:
    """Show one of your orders with its status history (oldest first) and its fills."""
    async with context.db.session() as session:
        record = await queries.get_order(session, user_id=user.id, order_id=order_id)
    return OrderDetail(
        **OrderRead.model_validate(record.order).model_dump(),
        history=[OrderEventRead.model_validate(event) for event in record.history],
        fills=[FillRead.model_validate(fill) for fill in record.fills],
    )


@router.get("/fills")
async def list_fills(
    user: CurrentUser,
    context: ContextDep,
    page: PageDep,
    filters: Annotated[FillFilters, Query()],
) -> Page[FillRead]:
    """List your fills (executions), newest first."""
    async with context.db.session() as session:
        fills, next_id = await queries.list_fills(
            session, user_id=user.id, filters=filters, limit=page.limit, before_id=page.before_id
        )
    items = [FillRead.model_validate(fill) for fill in fills]
    return Page[FillRead](items=items, next_cursor=next_cursor(next_id))


@router.get("/positions")
async def list_positions(
    user: CurrentUser,
    context: ContextDep,
    page: PageDep,
    filters: Annotated[PositionFilters, Query()],
) -> Page[PositionRead]:
    """List your positions per account, strategy and ticker, valued at the last known price."""
    async with context.db.session() as session:
        positions, next_id = await queries.list_positions(
            session, user_id=user.id, filters=filters, limit=page.limit, before_id=page.before_id
        )
    items = [queries.position_read(position) for position in positions]
    return Page[PositionRead](items=items, next_cursor=next_cursor(next_id))


@router.get("/pnl")
async def get_pnl(
    user: CurrentUser, context: ContextDep, query: Annotated[PnlQuery, Query()]
) -> PnlReport:
    """Report your realized, unrealized and net P&L: totals, per account, strategy or day."""
    async with context.db.session() as session:
        return await queries.pnl_report(session, user_id=user.id, query=query)
