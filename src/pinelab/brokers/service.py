"""Broker accounts: create, list, read, change and archive a user's accounts."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.brokers.models import BrokerAccount, PaperAccount, PaperOrder
from pinelab.brokers.schemas import BrokerAccountUpdate, PaperAccountCreate
from pinelab.clock import now
from pinelab.errors import ConflictError, ErrorDetail, ResourceNotFoundError
from pinelab.strategies.models import StrategyBrokerAccount
from pinelab.trading.models import Order


async def create_broker_account(
    session: AsyncSession, *, user_id: int, data: PaperAccountCreate
) -> BrokerAccount:
    """Store a new broker account for a user; the broker is not contacted."""
    account = BrokerAccount(
        user_id=user_id,
        kind=data.kind,
        label=data.label,
        paper=data.paper,
        starting_cash=data.starting_cash,
        commission_per_order=data.commission_per_order,
        slippage_bps=data.slippage_bps,
    )
    session.add(account)
    await session.flush()
    return account


async def list_broker_accounts(
    session: AsyncSession, *, user_id: int, limit: int, before_id: int | None = None
) -> tuple[list[BrokerAccount], int | None]:
    """Return a page of the user's live accounts, newest first, and where the next one starts."""
    query = (
        select(BrokerAccount)
        .where(BrokerAccount.user_id == user_id, BrokerAccount.archived_at.is_(None))
        .order_by(BrokerAccount.id.desc())
        .limit(limit + 1)
    )
    if before_id is not None:
        query = query.where(BrokerAccount.id < before_id)
    accounts = list((await session.scalars(query)).all())
    if len(accounts) > limit:
        return accounts[:limit], accounts[limit - 1].id
    return accounts, None


async def get_broker_account(
    session: AsyncSession, *, user_id: int, broker_account_id: int, for_update: bool = False
) -> BrokerAccount:
    """Return the user's live account with this id, or raise ResourceNotFoundError."""
    query = select(BrokerAccount).where(
        BrokerAccount.id == broker_account_id,
        BrokerAccount.user_id == user_id,
        BrokerAccount.archived_at.is_(None),
    )
    if for_update:
        query = query.with_for_update()
    account = (await session.scalars(query)).one_or_none()
    if account is None:
        raise ResourceNotFoundError("Broker account", broker_account_id)
    return account


async def update_broker_account(
    session: AsyncSession, *, user_id: int, broker_account_id: int, changes: BrokerAccountUpdate
) -> BrokerAccount:
    """Apply changes to the user's account; starting cash only while it has no orders."""
    account = await get_broker_account(
        session, user_id=user_id, broker_account_id=broker_account_id, for_update=True
    )
    values = changes.model_dump(exclude_unset=True)
    new_cash = values.pop("starting_cash", None)
    if new_cash is not None and new_cash != account.starting_cash:
        await _reset_starting_cash(session, account, new_cash)
    for name, value in values.items():
        setattr(account, name, value)
    account.updated_at = now()
    await session.flush()
    return account


async def archive_broker_account(
    session: AsyncSession, *, user_id: int, broker_account_id: int
) -> None:
    """Archive the user's account and unbind it from every strategy; its history stays."""
    account = await get_broker_account(
        session, user_id=user_id, broker_account_id=broker_account_id, for_update=True
    )
    account.archived_at = now()
    account.updated_at = account.archived_at
    await session.execute(
        delete(StrategyBrokerAccount).where(StrategyBrokerAccount.broker_account_id == account.id)
    )
    await session.flush()


async def has_orders(session: AsyncSession, *, broker_account_id: int) -> bool:
    """Tell whether any order was ever placed in the account."""
    placed = exists().where(Order.broker_account_id == broker_account_id)
    at_venue = exists().where(PaperOrder.broker_account_id == broker_account_id)
    return bool(await session.scalar(select(placed | at_venue)))


async def _reset_starting_cash(
    session: AsyncSession, account: BrokerAccount, cash: Decimal
) -> None:
    if await has_orders(session, broker_account_id=account.id):
        raise ConflictError(
            "starting_cash cannot change once the account has orders",
            details=[ErrorDetail("starting_cash", "the account already has orders", "conflict")],
        )
    account.starting_cash = cash
    # With no orders there were no fills, so the paper cash is still the starting cash.
    await session.execute(
        update(PaperAccount).where(PaperAccount.broker_account_id == account.id).values(cash=cash)
    )
