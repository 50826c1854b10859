"""The strategies package's dependencies: ownership checks and the webhook token directory.

A route only ever sees the caller's own strategy.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from pinelab.accounts.dependencies import CurrentUser
from pinelab.api.deps import DatabaseDep
from pinelab.strategies import service
from pinelab.strategies.models import Strategy
from pinelab.strategies.tokens import TokenDirectory

MAX_ID = 2**63 - 1


async def valid_strategy_id(
    strategy_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    user: CurrentUser,
    db: DatabaseDep,
) -> Strategy:
    """Return the caller's live strategy, or answer 404 (also for another user's id)."""
    async with db.session() as session:
        return await service.get_strategy(session, user_id=user.id, strategy_id=strategy_id)


async def get_token_directory(request: Request) -> TokenDirectory:
    """Return the process's directory of webhook tokens (told when a strategy changes)."""
    tokens: TokenDirectory = request.app.state.tokens
    return tokens


ValidStrategy = Annotated[Strategy, Depends(valid_strategy_id)]
TokensDep = Annotated[TokenDirectory, Depends(get_token_directory)]
