"""Shared pieces of the reliability proofs: counting the unfinished jobs and the orders per signal,
and the counts each proof reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select

from pinelab.db import Database
from pinelab.jobs import queue
from pinelab.jobs.models import Job
from pinelab.trading.models import Order


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
