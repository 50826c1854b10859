"""Shared pieces of the reliability proofs: binding a strategy to an emulated broker, counting
the unfinished jobs, and the counts each proof reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select, update

from pinelab.brokers.base import Broker
from pinelab.brokers.credentials import BrokerCredentials, seal_credentials
from pinelab.brokers.models import BrokerAccount
from pinelab.db import Database
from pinelab.jobs import queue
from pinelab.jobs.models import Job
from pinelab.main import Services
from pinelab.strategies.models import StrategyBrokerAccount
from pinelab.trading.models import Order
from tests.factories import Seeded


@dataclass(frozen=True)
class Counts:
    """What a proof reports: alerts sent, acknowledged (202), stored, orders at the broker,
    and duplicates (orders or order submissions beyond one per acknowledged alert)."""

    name: str
    sent: int
    acknowledged: int
    stored: int
    orders_at_broker: int
    duplicates: int

    def report(self) -> None:
        """Print the counts in one greppable line (collect them with `pytest -s`)."""
        print(
            f"\nRELIABILITY {self.name}: sent={self.sent} acknowledged={self.acknowledged}"
            f" stored={self.stored} orders_at_broker={self.orders_at_broker}"
            f" duplicates={self.duplicates}"
        )


async def bind_account(
    context: Services,
    seeded: Seeded,
    kind: str,
    *,
    build: Callable[[BrokerAccount], Broker] | None = None,
    credentials: BrokerCredentials | None = None,
    starting_cash: Decimal = Decimal(0),
) -> int:
    """Move the seeded strategy onto a new account of `kind`: its adapter is what `build` makes
    of the account, or (with `credentials`, sealed in the vault) what the registry builds for
    any process."""
    async with context.db.transaction() as session:
        account = BrokerAccount(
            user_id=seeded.user_id, kind=kind, label=kind, paper=True, starting_cash=starting_cash
        )
        session.add(account)
        await session.flush()
        if credentials is not None:
            account.credentials_encrypted = seal_credentials(
                context.brokers.vault, account_id=account.id, credentials=credentials
            )
        await session.execute(
            update(StrategyBrokerAccount)
            .where(StrategyBrokerAccount.strategy_id == seeded.strategy_id)
            .values(broker_account_id=account.id)
        )
        paper = await session.get(BrokerAccount, seeded.account_id)
        assert paper is not None
        paper.archived_at = paper.created_at
    if build is not None:
        default = context.brokers.build_default
        context.brokers.build = lambda row: build(row) if row.id == account.id else default(row)
    context.tokens.invalidate()
    return account.id


async def unfinished_jobs(db: Database, kind: str | None = None) -> int:
    """Count jobs still queued or running (of one kind, if given)."""
    query = select(func.count(Job.id)).where(Job.status.in_([queue.QUEUED, queue.RUNNING]))
    if kind is not None:
        query = query.where(Job.kind == kind)
    async with db.session() as session:
        return int(await session.scalar(query) or 0)


async def orders_per_signal(db: Database) -> Counter[int | None]:
    """Count our orders (bracket legs aside) per signal."""
    query = select(Order.signal_id).where(Order.parent_order_id.is_(None))
    async with db.session() as session:
        return Counter((await session.scalars(query)).all())
