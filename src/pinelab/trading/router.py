"""HTTP routes of the trading package: the caller's orders, fills, positions and P&L, and
reconciliation (run it on your accounts and read the reports; admins see every run)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from pinelab.accounts.dependencies import CurrentAdmin, CurrentUser
from pinelab.api.deps import DatabaseDep, PageDep
from pinelab.api.pagination import Page, next_cursor
from pinelab.signals.schemas import MAX_ID
from pinelab.trading import queries, reconciliation
from pinelab.trading.dependencies import ReconcileDep
from pinelab.trading.models import ReconciliationRun
from pinelab.trading.reconciliation import MANUAL, ReconciliationScope
from pinelab.trading.schemas import (
    AdminReconciliationRunCreate,
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
    ReconciliationRunCreate,
    ReconciliationRunRead,
)

router = APIRouter(tags=["orders, positions, P&L"])
reconciliation_router = APIRouter(prefix="/reconciliation-runs", tags=["reconciliation"])
admin_reconciliation_router = APIRouter(
    prefix="/admin/reconciliation-runs", tags=["admin: reconciliation"]
)

RunId = Annotated[int, Path(ge=1, le=MAX_ID)]
Responses = dict[int | str, dict[str, Any]]

RUN_NOT_FOUND: Responses = {404: {"description": "No such run (or account) of yours"}}
RUN_CREATED: Responses = {
    **RUN_NOT_FOUND,
    409: {"description": "A reconciliation of these accounts is already running"},
}


@router.get("/orders")
async def list_orders(
    user: CurrentUser,
    db: DatabaseDep,
    page: PageDep,
    filters: Annotated[OrderFilters, Query()],
) -> Page[OrderRead]:
    """List your orders, newest first."""
    async with db.session() as session:
        orders, next_id = await queries.list_orders(
            session, user_id=user.id, filters=filters, limit=page.limit, before_id=page.before_id
        )
    items = [OrderRead.model_validate(order) for order in orders]
    return Page[OrderRead](items=items, next_cursor=next_cursor(next_id))


@router.get("/orders/{order_id}", responses={404: {"description": "No such order of yours"}})
async def get_order(
    order_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, db: DatabaseDep
) -> OrderDetail:
    """Show one of your orders with its status history (oldest first) and its fills."""
    async with db.session() as session:
        record = await queries.get_order(session, user_id=user.id, order_id=order_id)
    return OrderDetail(
        **OrderRead.model_validate(record.order).model_dump(),
        history=[OrderEventRead.model_validate(event) for event in record.history],
        fills=[FillRead.model_validate(fill) for fill in record.fills],
    )


@router.get("/fills")
async def list_fills(
    user: CurrentUser,
    db: DatabaseDep,
    page: PageDep,
    filters: Annotated[FillFilters, Query()],
) -> Page[FillRead]:
    """List your fills (executions), newest first."""
    async with db.session() as session:
        fills, next_id = await queries.list_fills(
            session, user_id=user.id, filters=filters, limit=page.limit, before_id=page.before_id
        )
    items = [FillRead.model_validate(fill) for fill in fills]
    return Page[FillRead](items=items, next_cursor=next_cursor(next_id))


@router.get("/positions")
async def list_positions(
    user: CurrentUser,
    db: DatabaseDep,
    page: PageDep,
    filters: Annotated[PositionFilters, Query()],
) -> Page[PositionRead]:
    """List your positions per account, strategy and ticker, valued at the last known price."""
    async with db.session() as session:
        positions, next_id = await queries.list_positions(
            session, user_id=user.id, filters=filters, limit=page.limit, before_id=page.before_id
        )
    items = [queries.position_read(position) for position in positions]
    return Page[PositionRead](items=items, next_cursor=next_cursor(next_id))


@router.get("/pnl")
async def get_pnl(
    user: CurrentUser, db: DatabaseDep, query: Annotated[PnlQuery, Query()]
) -> PnlReport:
    """Report your realized, unrealized and net P&L: totals, per account, strategy or day."""
    async with db.session() as session:
        return await queries.pnl_report(session, user_id=user.id, query=query)


def _runs_page(runs: list[ReconciliationRun], next_id: int | None) -> Page[ReconciliationRunRead]:
    return Page[ReconciliationRunRead](
        items=[ReconciliationRunRead.model_validate(run) for run in runs],
        next_cursor=next_cursor(next_id),
    )


@reconciliation_router.post("", status_code=201, responses=RUN_CREATED)
async def create_run(
    user: CurrentUser,
    reconcile: ReconcileDep,
    body: Annotated[ReconciliationRunCreate | None, Body()] = None,
) -> ReconciliationRunRead:
    """Reconcile your broker accounts (or one) with the brokers now and return the report."""
    account_id = body.broker_account_id if body is not None else None
    scope = ReconciliationScope(user_id=user.id, broker_account_id=account_id)
    run = await reconcile(trigger=MANUAL, scope=scope, requested_by=user.id)
    return ReconciliationRunRead.model_validate(run)


@reconciliation_router.get("")
async def list_runs(
    user: CurrentUser, db: DatabaseDep, page: PageDep
) -> Page[ReconciliationRunRead]:
    """List the reconciliations of your accounts, newest first."""
    async with db.session() as session:
        runs, next_id = await reconciliation.list_runs(
            session, user_id=user.id, limit=page.limit, before_id=page.before_id
        )
    return _runs_page(runs, next_id)


@reconciliation_router.get("/{run_id}", responses=RUN_NOT_FOUND)
async def get_run(run_id: RunId, user: CurrentUser, db: DatabaseDep) -> ReconciliationRunRead:
    """Show one reconciliation of your accounts with its details."""
    async with db.session() as session:
        run = await reconciliation.get_run(session, run_id=run_id, user_id=user.id)
    return ReconciliationRunRead.model_validate(run)


@admin_reconciliation_router.post("", status_code=201, responses=RUN_CREATED)
async def admin_create_run(
    admin: CurrentAdmin,
    reconcile: ReconcileDep,
    body: Annotated[AdminReconciliationRunCreate | None, Body()] = None,
) -> ReconciliationRunRead:
    """Reconcile every user's accounts (or one user's, or one account) now."""
    body = body or AdminReconciliationRunCreate()
    scope = ReconciliationScope(user_id=body.user_id, broker_account_id=body.broker_account_id)
    run = await reconcile(trigger=MANUAL, scope=scope, requested_by=admin.id)
    return ReconciliationRunRead.model_validate(run)


@admin_reconciliation_router.get("")
async def admin_list_runs(
    admin: CurrentAdmin, db: DatabaseDep, page: PageDep
) -> Page[ReconciliationRunRead]:
    """List every reconciliation run, periodic and manual, newest first."""
    async with db.session() as session:
        runs, next_id = await reconciliation.list_runs(
            session, user_id=None, limit=page.limit, before_id=page.before_id
        )
    return _runs_page(runs, next_id)


@admin_reconciliation_router.get("/{run_id}", responses={404: {"description": "No such run"}})
async def admin_get_run(
    run_id: RunId, admin: CurrentAdmin, db: DatabaseDep
) -> ReconciliationRunRead:
    """Show any reconciliation run with its details."""
    async with db.session() as session:
        run = await reconciliation.get_run(session, run_id=run_id, user_id=None)
    return ReconciliationRunRead.model_validate(run)
