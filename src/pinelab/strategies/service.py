"""Strategies: create, list, read, change, re-key and archive a user's webhook endpoints."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.brokers.models import BrokerAccount
from pinelab.clock import now
from pinelab.errors import ResourceNotFoundError
from pinelab.strategies.exceptions import UnknownBrokerAccounts
from pinelab.strategies.models import Strategy, StrategyBrokerAccount
from pinelab.strategies.schemas import StrategyCreate, StrategyUpdate
from pinelab.strategies.tokens import hash_passphrase, hash_token, new_token

TOKEN_HINT_LENGTH = 6
# Fields copied as they are from an update onto the row.
_PLAIN_FIELDS = (
    "name",
    "enabled",
    "duplicate_window_seconds",
    "allowed_symbols",
    "max_position_quantity",
)


class IssuedToken(NamedTuple):
    """A strategy and the webhook token just issued for it (the only time it is known)."""

    strategy: Strategy
    token: str


async def create_strategy(
    session: AsyncSession, *, user_id: int, data: StrategyCreate, secret_key: str
) -> IssuedToken:
    """Store a new strategy bound to the user's accounts and issue its webhook token."""
    await _check_broker_accounts(
        session, user_id=user_id, broker_account_ids=data.broker_account_ids
    )
    token = new_token()
    strategy = Strategy(
        user_id=user_id,
        name=data.name,
        token_hash=hash_token(token),
        token_hint=token_hint(token),
        passphrase_hash=_passphrase_hash(data.passphrase, secret_key=secret_key),
        enabled=data.enabled,
        sizing_type=data.sizing.type.value,
        sizing_value=data.sizing.value,
        duplicate_window_seconds=data.duplicate_window_seconds,
        allowed_symbols=data.allowed_symbols,
        max_position_quantity=data.max_position_quantity,
        bindings=[
            StrategyBrokerAccount(broker_account_id=i) for i in sorted(data.broker_account_ids)
        ],
    )
    session.add(strategy)
    await session.flush()
    return IssuedToken(strategy, token)


async def list_strategies(
    session: AsyncSession, *, user_id: int, limit: int, before_id: int | None = None
) -> tuple[list[Strategy], int | None]:
    """Return a page of the user's live strategies, newest first, and where the next one starts."""
    query = (
        select(Strategy)
        .where(Strategy.user_id == user_id, Strategy.archived_at.is_(None))
        .order_by(Strategy.id.desc())
        .limit(limit + 1)
    )
    if before_id is not None:
        query = query.where(Strategy.id < before_id)
    strategies = list((await session.scalars(query)).all())
    if len(strategies) > limit:
        return strategies[:limit], strategies[limit - 1].id
    return strategies, None


async def get_strategy(
    session: AsyncSession, *, user_id: int, strategy_id: int, for_update: bool = False
) -> Strategy:
    """Return the user's live strategy with this id, or raise ResourceNotFoundError."""
    query = select(Strategy).where(
        Strategy.id == strategy_id, Strategy.user_id == user_id, Strategy.archived_at.is_(None)
    )
    if for_update:
        query = query.with_for_update()
    strategy = (await session.scalars(query)).one_or_none()
    if strategy is None:
        raise ResourceNotFoundError("Strategy", strategy_id)
    return strategy


async def update_strategy(
    session: AsyncSession,
    *,
    user_id: int,
    strategy_id: int,
    changes: StrategyUpdate,
    secret_key: str,
) -> Strategy:
    """Apply changes to the user's strategy; a null passphrase removes it."""
    strategy = await get_strategy(
        session, user_id=user_id, strategy_id=strategy_id, for_update=True
    )
    given = changes.model_fields_set
    if changes.broker_account_ids is not None:
        await _check_broker_accounts(
            session, user_id=user_id, broker_account_ids=changes.broker_account_ids
        )
        _rebind(strategy, changes.broker_account_ids)
    if changes.sizing is not None:
        strategy.sizing_type = changes.sizing.type.value
        strategy.sizing_value = changes.sizing.value
    if "passphrase" in given:
        strategy.passphrase_hash = _passphrase_hash(changes.passphrase, secret_key=secret_key)
    for name in _PLAIN_FIELDS:
        if name in given:
            setattr(strategy, name, getattr(changes, name))
    strategy.updated_at = now()
    await session.flush()
    return strategy


async def rotate_token(session: AsyncSession, *, user_id: int, strategy_id: int) -> IssuedToken:
    """Replace the strategy's webhook token; the old one stops working."""
    strategy = await get_strategy(
        session, user_id=user_id, strategy_id=strategy_id, for_update=True
    )
    token = new_token()
    strategy.token_hash = hash_token(token)
    strategy.token_hint = token_hint(token)
    strategy.updated_at = now()
    await session.flush()
    return IssuedToken(strategy, token)


async def archive_strategy(session: AsyncSession, *, user_id: int, strategy_id: int) -> None:
    """Archive the user's strategy: its webhook stops answering; its signals and orders stay."""
    strategy = await get_strategy(
        session, user_id=user_id, strategy_id=strategy_id, for_update=True
    )
    strategy.archived_at = now()
    strategy.updated_at = strategy.archived_at
    await session.flush()


def token_hint(token: str) -> str:
    """Return the shown part of a token: its first characters and an ellipsis."""
    return f"{token[:TOKEN_HINT_LENGTH]}…"


async def _check_broker_accounts(
    session: AsyncSession, *, user_id: int, broker_account_ids: list[int]
) -> None:
    # FOR SHARE: an account cannot be archived between this check and the binding's commit.
    query = (
        select(BrokerAccount.id)
        .where(
            BrokerAccount.id.in_(broker_account_ids),
            BrokerAccount.user_id == user_id,
            BrokerAccount.archived_at.is_(None),
        )
        .with_for_update(read=True)
    )
    found = set((await session.scalars(query)).all())
    missing = [account_id for account_id in broker_account_ids if account_id not in found]
    if missing:
        raise UnknownBrokerAccounts(missing)


def _rebind(strategy: Strategy, broker_account_ids: list[int]) -> None:
    wanted = set(broker_account_ids)
    kept = [binding for binding in strategy.bindings if binding.broker_account_id in wanted]
    bound = {binding.broker_account_id for binding in kept}
    added = [StrategyBrokerAccount(broker_account_id=i) for i in wanted - bound]
    strategy.bindings = sorted(kept + added, key=lambda binding: binding.broker_account_id)


def _passphrase_hash(passphrase: str | None, *, secret_key: str) -> str | None:
    return None if passphrase is None else hash_passphrase(passphrase, key=secret_key)
