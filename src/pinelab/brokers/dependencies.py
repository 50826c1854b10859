"""The brokers package's dependencies: ownership checks and the broker registry.

A route only ever sees the caller's own account.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from pinelab.accounts.dependencies import CurrentUser
from pinelab.api.deps import DatabaseDep
from pinelab.brokers import service
from pinelab.brokers.models import BrokerAccount
from pinelab.brokers.registry import BrokerRegistry

MAX_ID = 2**63 - 1


async def valid_broker_account_id(
    broker_account_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    user: CurrentUser,
    db: DatabaseDep,
) -> BrokerAccount:
    """Return the caller's live broker account, or answer 404 (also for another user's id)."""
    async with db.session() as session:
        return await service.get_broker_account(
            session, user_id=user.id, broker_account_id=broker_account_id
        )


async def get_broker_registry(request: Request) -> BrokerRegistry:
    """Return the process's broker registry (one adapter per account, and the vault)."""
    brokers: BrokerRegistry = request.app.state.brokers
    return brokers


ValidBrokerAccount = Annotated[BrokerAccount, Depends(valid_broker_account_id)]
BrokersDep = Annotated[BrokerRegistry, Depends(get_broker_registry)]
