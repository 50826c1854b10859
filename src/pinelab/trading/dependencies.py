"""The trading package's dependencies: reconciliation as the composition root set it up."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request

from pinelab.trading.models import ReconciliationRun
from pinelab.trading.reconciliation import ReconciliationScope


class Reconcile(Protocol):
    """Run the process's `Reconciler` once, count what it fixed and wake the worker if needed."""

    async def __call__(
        self, *, trigger: str, scope: ReconciliationScope, requested_by: int | None = None
    ) -> ReconciliationRun:
        """Reconcile the accounts in `scope` now and return the stored report."""
        ...


async def get_reconcile(request: Request) -> Reconcile:
    """Return the process's reconciliation (the root binds its Reconciler, metrics and worker)."""
    reconcile: Reconcile = request.app.state.reconcile
    return reconcile


ReconcileDep = Annotated[Reconcile, Depends(get_reconcile)]
