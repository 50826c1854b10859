"""The durable queue: claims, leases, completion, retries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.clock import FrozenClock
from pinelab.db import Database
from pinelab.jobs import queue
from pinelab.jobs.models import DeadLetter, Job
from tests.factories import seed_strategy


async def _enqueue(db: Database, n: int = 1, delay: float = 0) -> list[int]:
    ids = []
    async with db.transaction() as session:
        for index in range(n):
            job = await queue.enqueue(session, "test", {"n": index}, max_attempts=3, delay=delay)
            ids.append(job.id)
    return ids


async def test_claim_leases_the_oldest_due_job_once(
    db: Database, frozen_clock: FrozenClock
) -> None:
    first, second = await _enqueue(db, 2)
    claimed = await queue.claim(db, owner="a", lease_seconds=30)
    assert claimed is not None
    assert claimed.id == first
    assert claimed.attempts == 1
    assert claimed.lease_owner == "a"
    again = await queue.claim(db, owner="b", lease_seconds=30)
    assert again is not None
    assert again.id == second
    assert await queue.claim(db, owner="c", lease_seconds=30) is None


async def test_job_scheduled_later_is_not_claimed_before_its_time(
    db: Database, frozen_clock: FrozenClock
) -> None:
    await _enqueue(db, delay=60)
    assert await queue.claim(db, owner="a", lease_seconds=30) is None
    frozen_clock.advance(61)
    assert await queue.claim(db, owner="a", lease_seconds=30) is not None


async def test_expired_lease_is_claimed_by_another_worker(
    db: Database, frozen_clock: FrozenClock
) -> None:
    await _enqueue(db)
    crashed = await queue.claim(db, owner="crashed", lease_seconds=30)
    assert crashed is not None
    frozen_clock.advance(29)
    assert await queue.claim(db, owner="rescuer", lease_seconds=30) is None
    frozen_clock.advance(2)
    rescued = await queue.claim(db, owner="rescuer", lease_seconds=30)
    assert rescued is not None
    assert rescued.id == crashed.id
    assert rescued.attempts == 2
    # The crashed worker's late completion is refused: the lease is no longer its own.
    assert not await queue.complete(db, crashed, owner="crashed")
    assert await queue.complete(db, rescued, owner="rescuer")


async def test_retry_later_puts_the_job_back_with_its_error(
    db: Database, frozen_clock: FrozenClock
) -> None:
    await _enqueue(db)
    job = await queue.claim(db, owner="a", lease_seconds=30)
    assert job is not None
    assert await queue.retry_later(db, job, owner="a", delay=10, error="BrokerUnavailable: down")
    assert await queue.claim(db, owner="a", lease_seconds=30) is None
    frozen_clock.advance(11)
    again = await queue.claim(db, owner="a", lease_seconds=30)
    assert again is not None
    assert again.attempts == 2
    assert again.last_error == "BrokerUnavailable: down"


async def test_buried_job_is_never_claimed_again(db: Database, frozen_clock: FrozenClock) -> None:
    await _enqueue(db)
    job = await queue.claim(db, owner="a", lease_seconds=30)
    assert job is not None
    assert await queue.bury(db, job, owner="a", error="InvalidOrder: no")
    frozen_clock.advance(3600)
    assert await queue.claim(db, owner="a", lease_seconds=30) is None
    async with db.session() as session:
        stored = (await session.execute(select(Job))).scalar_one()
    assert stored.status == queue.DEAD
    assert stored.finished_at is not None


async def test_extended_lease_keeps_a_long_job_from_being_claimed_again(
    db: Database, frozen_clock: FrozenClock
) -> None:
    await _enqueue(db)
    job = await queue.claim(db, owner="a", lease_seconds=30)
    assert job is not None
    frozen_clock.advance(20)
    assert await queue.extend_lease(db, job, owner="a", lease_seconds=30)
    frozen_clock.advance(20)
    assert await queue.claim(db, owner="b", lease_seconds=30) is None
    assert not await queue.extend_lease(db, job, owner="b", lease_seconds=30)
    assert await queue.complete(db, job, owner="a")


async def test_enqueued_job_carries_its_owner_into_its_dead_letter(
    db: Database, frozen_clock: FrozenClock
) -> None:
    user_id, strategy_id = await _owner(db)
    async with db.transaction() as session:
        await queue.enqueue(
            session, "test", {}, max_attempts=1, user_id=user_id, strategy_id=strategy_id
        )
    job = await queue.claim(db, owner="a", lease_seconds=30)
    assert job is not None
    letters: list[DeadLetter] = []

    async def on_buried(session: AsyncSession, letter: DeadLetter) -> None:
        letters.append(letter)

    assert await queue.bury(db, job, owner="a", error="PermanentError: no", on_buried=on_buried)
    [letter] = letters
    assert (letter.job_id, letter.user_id, letter.strategy_id) == (job.id, user_id, strategy_id)


async def _owner(db: Database) -> tuple[int, int]:
    seeded = await seed_strategy(db)
    return seeded.user_id, seeded.strategy_id
