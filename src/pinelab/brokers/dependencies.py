"""Ownership checks of the brokers package: a route only ever sees the caller's own account."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from pinelab.accounts.dependencies import CurrentUser
from pinelab.api.deps import ContextDep
from pinelab.brokers import service
from pinelab.brokers.models import BrokerAccount

MAX_ID = 2**63 - 1


async def valid_broker_account_id(
    broker_account_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    user: CurrentUser,
    context: ContextDep,
) -> BrokerAccount:
    """Return the caller's live broker account, or answer 404 (also for another user's id)."""
    async with context.db.session() as session:
        return await service.get_broker_account(
            session, user_id=user.id, broker_account_id=broker_account_id
        )


ValidBrokerAccount = Annotated[BrokerAccount, Depends(valid_broker_account_id)]
