"""Ownership checks of the strategies package: a route only ever sees the caller's own strategy."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from pinelab.accounts.dependencies import CurrentUser
from pinelab.api.deps import ContextDep
from pinelab.strategies import service
from pinelab.strategies.models import Strategy

MAX_ID = 2**63 - 1


async def valid_strategy_id(
    strategy_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    user: CurrentUser,
    context: ContextDep,
) -> Strategy:
    """Return the caller's live strategy, or answer 404 (also for another user's id)."""
    async with context.db.session() as session:
        return await service.get_strategy(session, user_id=user.id, strategy_id=strategy_id)


ValidStrategy = Annotated[Strategy, Depends(valid_strategy_id)]
