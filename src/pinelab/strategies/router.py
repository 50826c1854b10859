"""HTTP routes of the strategies package: the caller's webhook endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from pinelab.accounts.dependencies import CurrentUser, VerifiedUser
from pinelab.api.deps import DatabaseDep, PageDep, SecretKeyDep, SettingsDep
from pinelab.api.pagination import Page, next_cursor
from pinelab.strategies import service
from pinelab.strategies.dependencies import TokensDep, ValidStrategy
from pinelab.strategies.schemas import StrategyCreate, StrategyCreated, StrategyRead, StrategyUpdate

router = APIRouter(prefix="/strategies", tags=["strategies"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such strategy of yours"}}


@router.post("", status_code=201, responses={403: {"description": "EmailNotVerified"}})
async def create_strategy(
    body: StrategyCreate,
    user: VerifiedUser,
    db: DatabaseDep,
    secret_key: SecretKeyDep,
    settings: SettingsDep,
    tokens: TokensDep,
) -> StrategyCreated:
    """Create a strategy; the answer carries its webhook token and URL, shown this once."""
    async with db.transaction() as session:
        issued = await service.create_strategy(
            session, user_id=user.id, data=body, secret_key=secret_key
        )
    tokens.invalidate()
    return StrategyCreated.issued(issued.strategy, token=issued.token, base_url=settings.base_url)


@router.get("")
async def list_strategies(user: CurrentUser, db: DatabaseDep, page: PageDep) -> Page[StrategyRead]:
    """List your live strategies, newest first."""
    async with db.session() as session:
        strategies, next_id = await service.list_strategies(
            session, user_id=user.id, limit=page.limit, before_id=page.before_id
        )
    return Page[StrategyRead](
        items=[StrategyRead.from_model(strategy) for strategy in strategies],
        next_cursor=next_cursor(next_id),
    )


@router.get("/{strategy_id}", responses=_NOT_FOUND)
async def get_strategy(strategy: ValidStrategy) -> StrategyRead:
    """Show one of your strategies (its token is never shown again)."""
    return StrategyRead.from_model(strategy)


@router.patch("/{strategy_id}", responses=_NOT_FOUND)
async def update_strategy(
    strategy: ValidStrategy,
    body: StrategyUpdate,
    db: DatabaseDep,
    secret_key: SecretKeyDep,
    tokens: TokensDep,
) -> StrategyRead:
    """Change a strategy; a null passphrase, allowed_symbols or max_position_quantity clears it."""
    async with db.transaction() as session:
        updated = await service.update_strategy(
            session,
            user_id=strategy.user_id,
            strategy_id=strategy.id,
            changes=body,
            secret_key=secret_key,
        )
    tokens.invalidate()
    return StrategyRead.from_model(updated)


@router.post("/{strategy_id}/rotate-token", responses=_NOT_FOUND)
async def rotate_token(
    strategy: ValidStrategy, db: DatabaseDep, settings: SettingsDep, tokens: TokensDep
) -> StrategyCreated:
    """Issue a new webhook token (shown this once); the old one stops working at once."""
    async with db.transaction() as session:
        issued = await service.rotate_token(
            session, user_id=strategy.user_id, strategy_id=strategy.id
        )
    tokens.invalidate()
    return StrategyCreated.issued(issued.strategy, token=issued.token, base_url=settings.base_url)


@router.delete("/{strategy_id}", status_code=204, responses=_NOT_FOUND)
async def archive_strategy(strategy: ValidStrategy, db: DatabaseDep, tokens: TokensDep) -> Response:
    """Archive a strategy: its webhook answers 404 from now on; its history stays."""
    async with db.transaction() as session:
        await service.archive_strategy(session, user_id=strategy.user_id, strategy_id=strategy.id)
    tokens.invalidate()
    return Response(status_code=204)
