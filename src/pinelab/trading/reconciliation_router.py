"""HTTP routes of reconciliation: run it on your accounts and read the reports; admins see all."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Path

from pinelab.accounts.dependencies import CurrentAdmin, CurrentUser
from pinelab.api.deps import ContextDep, PageDep
from pinelab.api.pagination import Page, next_cursor
from pinelab.signals.schemas import MAX_ID
from pinelab.trading import reconciliation
from pinelab.trading.models import ReconciliationRun
from pinelab.trading.reconciliation import MANUAL, ReconciliationScope

if TYPE_CHECKING:
    from pinelab.api.context import AppContext

from pinelab.trading.schemas import (
    AdminReconciliationRunCreate,
    ReconciliationRunCreate,
    ReconciliationRunRead,
)

router = APIRouter(prefix="/reconciliation-runs", tags=["reconciliation"])
admin_router = APIRouter(prefix="/admin/reconciliation-runs", tags=["admin: reconciliation"])

RunId = Annotated[int, Path(ge=1, le=MAX_ID)]
Responses = dict[int | str, dict[str, Any]]

NOT_FOUND: Responses = {404: {"description": "No such run (or account) of yours"}}
CREATED: Responses = {
    **NOT_FOUND,
    409: {"description": "A reconciliation of these accounts is already running"},
}


async def _reconcile(
    context: AppContext, scope: ReconciliationScope, requested_by: int
) -> ReconciliationRun:
    """Run one manual pass (until the composition root hands this router its Reconciler)."""
    settings = context.settings
    reconciler = reconciliation.Reconciler(
        db=context.db,
        brokers=context.brokers,
        window=timedelta(hours=settings.reconciliation_window_hours),
        email_attempts=settings.max_retry_attempts,
        base_url=settings.base_url,
    )
    run = await reconciler.run(trigger=MANUAL, scope=scope, requested_by=requested_by)
    context.metrics.reconciliation_fixed(run.updated)
    if run.flagged and context.worker is not None:
        context.worker.wake()  # owner emails may have been queued
    return run


def _page(runs: list[ReconciliationRun], next_id: int | None) -> Page[ReconciliationRunRead]:
    return Page[ReconciliationRunRead](
        items=[ReconciliationRunRead.model_validate(run) for run in runs],
        next_cursor=next_cursor(next_id),
    )


@router.post("", status_code=201, responses=CREATED)
async def create_run(
    user: CurrentUser,
    context: ContextDep,
    body: Annotated[ReconciliationRunCreate | None, Body()] = None,
) -> ReconciliationRunRead:
    """Reconcile your broker accounts (or one) with the brokers now and return the report."""
    account_id = body.broker_account_id if body is not None else None
    scope = ReconciliationScope(user_id=user.id, broker_account_id=account_id)
    run = await _reconcile(context, scope, user.id)
    return ReconciliationRunRead.model_validate(run)


@router.get("")
async def list_runs(
    user: CurrentUser, context: ContextDep, page: PageDep
) -> Page[ReconciliationRunRead]:
    """List the reconciliations of your accounts, newest first."""
    async with context.db.session() as session:
        runs, next_id = await reconciliation.list_runs(
            session, user_id=user.id, limit=page.limit, before_id=page.before_id
        )
    return _page(runs, next_id)


@router.get("/{run_id}", responses=NOT_FOUND)
async def get_run(run_id: RunId, user: CurrentUser, context: ContextDep) -> ReconciliationRunRead:
    """Show one reconciliation of your accounts with its details."""
    async with context.db.session() as session:
        run = await reconciliation.get_run(session, run_id=run_id, user_id=user.id)
    return ReconciliationRunRead.model_validate(run)


@admin_router.post("", status_code=201, responses=CREATED)
async def admin_create_run(
    admin: CurrentAdmin,
    context: ContextDep,
    body: Annotated[AdminReconciliationRunCreate | None, Body()] = None,
) -> ReconciliationRunRead:
    """Reconcile every user's accounts (or one user's, or one account) now."""
    body = body or AdminReconciliationRunCreate()
    scope = ReconciliationScope(user_id=body.user_id, broker_account_id=body.broker_account_id)
    run = await _reconcile(context, scope, admin.id)
    return ReconciliationRunRead.model_validate(run)


@admin_router.get("")
async def admin_list_runs(
    admin: CurrentAdmin, context: ContextDep, page: PageDep
) -> Page[ReconciliationRunRead]:
    """List every reconciliation run, periodic and manual, newest first."""
    async with context.db.session() as session:
        runs, next_id = await reconciliation.list_runs(
            session, user_id=None, limit=page.limit, before_id=page.before_id
        )
    return _page(runs, next_id)


@admin_router.get("/{run_id}", responses={404: {"description": "No such run"}})
async def admin_get_run(
    run_id: RunId, admin: CurrentAdmin, context: ContextDep
) -> ReconciliationRunRead:
    """Show any reconciliation run with its details."""
    async with context.db.session() as session:
        run = await reconciliation.get_run(session, run_id=run_id, user_id=None)
    return ReconciliationRunRead.model_validate(run)
