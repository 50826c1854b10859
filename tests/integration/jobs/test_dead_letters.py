"""Attempts on record, dead letters (owner from the job row, emailed), replay and discard."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
from sqlalchemy import func, select

from pinelab.brokers.base import Broker
from pinelab.brokers.exceptions import BrokerUnavailable, InvalidOrder
from pinelab.brokers.models import BrokerAccount
from pinelab.clock import FrozenClock
from pinelab.config import Settings
from pinelab.errors import ConflictError
from pinelab.jobs import dead_letters, queue
from pinelab.jobs.exceptions import DeadLetterResolved
from pinelab.jobs.models import DeadLetter, Job, JobAttempt
from pinelab.jobs.retry import RetryPolicy
from pinelab.jobs.worker import JobType
from pinelab.main import Services, build_services
from pinelab.notify.dead_letters import notify_dead_letter_owner
from pinelab.notify.email import SEND_EMAIL
from pinelab.signals.models import Signal
from pinelab.trading.models import Order
from tests.factories import Seeded, enqueue_job, ingest_alert, seed_strategy
from tests.fakes.faulty_broker import FaultPlan, FaultyBroker
from tests.integration.jobs.conftest import MakeWorker
from tests.integration.jobs.support import Recorder, drain


@pytest.fixture
async def context(settings: Settings, frozen_clock: FrozenClock) -> AsyncIterator[Services]:
    built = build_services(settings)
    yield built
    await built.close()


async def _rows(context: Services, model: Any, *where: Any) -> list[Any]:
    async with context.db.session() as session:
        return list((await session.scalars(select(model).where(*where))).all())


async def _signal(context: Services, seeded: Seeded) -> int:
    async with context.db.transaction() as session:
        signal = Signal(
            user_id=seeded.user_id,
            strategy_id=seeded.strategy_id,
            raw_body="{}",
            body_hash="0" * 64,
            status="accepted",
        )
        session.add(signal)
        await session.flush()
        return signal.id


def _outbox(settings: Settings) -> list[email.message.EmailMessage]:
    folder = settings.data_dir / "outbox"
    files = sorted(folder.glob("*.eml")) if folder.exists() else []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in files
    ]


def _flaky(failures: int) -> Recorder:
    return Recorder(failures=failures, error=BrokerUnavailable)


async def test_every_attempt_is_recorded_with_its_outcome(
    context: Services, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    recorder = _flaky(failures=2)
    worker = make_worker({"flaky": recorder.job_type})
    job_id = await enqueue_job(context.db, "flaky")
    await drain(worker, frozen_clock)
    attempts = await _rows(context, JobAttempt, JobAttempt.job_id == job_id)
    attempts.sort(key=lambda row: row.attempt)
    assert [(a.attempt, a.outcome) for a in attempts] == [
        (1, "retrying"),
        (2, "retrying"),
        (3, "succeeded"),
    ]
    assert attempts[0].error_class == "BrokerUnavailable"
    assert attempts[1].message == "503 (failure 2)"
    assert attempts[2].error_class is None
    assert all(a.started_at <= a.finished_at for a in attempts)
    assert len(recorder.runs) == 3


async def test_permanent_failure_writes_a_dead_letter_and_emails_the_strategy_owner(
    context: Services, make_worker: MakeWorker, settings: Settings, frozen_clock: FrozenClock
) -> None:
    seeded = await seed_strategy(context.db, email="owner@example.com")
    signal_id = await _signal(context, seeded)

    async def refuse(job: Job) -> None:
        raise InvalidOrder("quantity must be positive")

    worker = make_worker(
        {"refuse": JobType(run=refuse), **_email_types(context)},
        on_dead_letter=partial(notify_dead_letter_owner, settings=settings),
    )
    async with context.db.transaction() as session:
        job = await queue.enqueue(
            session,
            "refuse",
            {"signal_id": signal_id},
            max_attempts=3,
            user_id=seeded.user_id,
            strategy_id=seeded.strategy_id,
        )
    job_id = job.id
    assert await worker.run_once()

    [letter] = await _rows(context, DeadLetter)
    assert (letter.job_id, letter.kind, letter.attempts) == (job_id, "refuse", 1)
    assert letter.payload == {"signal_id": signal_id}
    assert letter.error_class == "InvalidOrder"
    assert letter.last_error == "InvalidOrder: quantity must be positive"
    assert (letter.user_id, letter.strategy_id) == (seeded.user_id, seeded.strategy_id)
    assert letter.resolved_at is None
    [attempt] = await _rows(context, JobAttempt, JobAttempt.job_id == job_id)
    assert attempt.outcome == "dead"
    # The email job was committed with the dead letter; the worker sends it next.
    assert len(await _rows(context, Job, Job.kind == SEND_EMAIL)) == 1
    assert _outbox(settings) == []
    await drain(worker, frozen_clock)
    [notice] = _outbox(settings)
    assert notice["To"] == "owner@example.com"
    assert "strategy" in notice["Subject"]
    body = notice.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert f"signal {signal_id}" in text
    assert "InvalidOrder: quantity must be positive" in text
    assert f"dead letter {letter.id}" in text


def _email_types(context: Services) -> dict[str, JobType]:
    assert context.worker is not None
    return {SEND_EMAIL: context.worker.job_types[SEND_EMAIL]}


async def test_exhausted_attempts_write_a_dead_letter_without_an_owner_email(
    context: Services, make_worker: MakeWorker, settings: Settings, frozen_clock: FrozenClock
) -> None:
    recorder = _flaky(failures=100)
    worker = make_worker(
        {"down": recorder.job_type, **_email_types(context)},
        on_dead_letter=partial(notify_dead_letter_owner, settings=settings),
    )
    job_id = await enqueue_job(context.db, "down")
    await drain(worker, frozen_clock)
    [letter] = await _rows(context, DeadLetter)
    assert (letter.job_id, letter.attempts, letter.error_class) == (job_id, 3, "BrokerUnavailable")
    assert "failure 3" in (letter.last_error or "")
    assert (letter.user_id, letter.strategy_id) == (None, None)
    outcomes = [a.outcome for a in await _rows(context, JobAttempt, JobAttempt.job_id == job_id)]
    assert sorted(outcomes) == ["dead", "retrying", "retrying"]
    assert len(recorder.runs) == 3
    assert _outbox(settings) == []


async def test_job_type_policy_overrides_the_default_attempt_budget(
    context: Services, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    recorder = _flaky(failures=100)
    patient = JobType(run=recorder, policy=RetryPolicy(max_attempts=5, base_delay=0.01))
    worker = make_worker({"down": patient})
    await enqueue_job(context.db, "down")
    await drain(worker, frozen_clock)
    assert len(recorder.runs) == 5
    [letter] = await _rows(context, DeadLetter)
    assert letter.attempts == 5


async def test_replayed_dead_letter_runs_again_with_a_fresh_budget_and_succeeds(
    context: Services, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    recorder = _flaky(failures=3)
    worker = make_worker({"flaky": recorder.job_type})
    job_id = await enqueue_job(context.db, "flaky")
    await drain(worker, frozen_clock)
    [letter] = await _rows(context, DeadLetter)
    admin = await seed_strategy(context.db, email="admin@example.com", token="admin-token-0123456")
    replayed_at = frozen_clock.now()
    async with context.db.transaction() as session:
        _, job = await dead_letters.replay_dead_letter(
            session,
            dead_letter_id=letter.id,
            resolved_by=admin.user_id,
            hooks=worker.replay_hooks,
            max_attempts=3,
        )
    assert job.id == job_id
    assert (job.status, job.attempts) == ("queued", 0)
    await drain(worker, frozen_clock)

    [done] = await _rows(context, Job, Job.id == job_id)
    assert (done.status, done.attempts) == ("done", 1)
    assert len(recorder.runs) == 4
    [resolved] = await _rows(context, DeadLetter)
    assert resolved.resolution == "replayed"
    assert resolved.resolved_by == admin.user_id
    assert resolved.resolved_at == replayed_at
    async with context.db.session() as session:
        record = await dead_letters.get_dead_letter(session, dead_letter_id=letter.id)
    assert [a.outcome for a in record.attempts] == ["retrying", "retrying", "dead", "succeeded"]


async def test_discarded_dead_letter_is_resolved_and_never_runs_again(
    context: Services, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    recorder = _flaky(failures=100)
    worker = make_worker({"down": recorder.job_type})
    job_id = await enqueue_job(context.db, "down")
    await drain(worker, frozen_clock)
    [letter] = await _rows(context, DeadLetter)
    async with context.db.transaction() as session:
        await dead_letters.discard_dead_letter(session, dead_letter_id=letter.id, resolved_by=None)
    await drain(worker, frozen_clock)
    assert len(recorder.runs) == 3
    [job] = await _rows(context, Job, Job.id == job_id)
    assert job.status == "dead"
    async with context.db.session() as session:
        unresolved, _ = await dead_letters.list_dead_letters(session)
        everything, _ = await dead_letters.list_dead_letters(session, unresolved_only=False)
    assert unresolved == []
    assert [(d.id, d.resolution) for d in everything] == [(letter.id, "discarded")]
    with pytest.raises(DeadLetterResolved):
        async with context.db.transaction() as session:
            await dead_letters.replay_dead_letter(
                session, dead_letter_id=letter.id, resolved_by=None, hooks={}, max_attempts=3
            )


async def test_replay_of_a_job_that_is_no_longer_dead_is_refused(
    context: Services, make_worker: MakeWorker, frozen_clock: FrozenClock
) -> None:
    worker = make_worker({"down": _flaky(failures=100).job_type})
    job_id = await enqueue_job(context.db, "down")
    await drain(worker, frozen_clock)
    [letter] = await _rows(context, DeadLetter)
    async with context.db.transaction() as session:
        await queue.requeue(session, job_id)  # e.g. replayed through another letter
    with pytest.raises(ConflictError, match="not dead"):
        async with context.db.transaction() as session:
            await dead_letters.replay_dead_letter(
                session, dead_letter_id=letter.id, resolved_by=None, hooks={}, max_attempts=3
            )


async def test_replayed_signal_executes_once_after_the_broker_recovers(
    context: Services, settings: Settings, frozen_clock: FrozenClock
) -> None:
    seeded = await seed_strategy(context.db)
    plan = FaultPlan(unavailable=3)
    default = context.brokers.build_default

    def build(account: BrokerAccount) -> Broker:
        return FaultyBroker(default(account), plan)

    context.brokers.build = build  # type: ignore[method-assign]
    assert context.worker is not None
    worker = context.worker
    signal_id = await ingest_alert(context, seeded)
    await drain(worker, frozen_clock)

    [signal] = await _rows(context, Signal, Signal.id == signal_id)
    assert signal.status == "failed"
    assert "gave up after 3 attempts" in (signal.reason or "")
    [letter] = await _rows(context, DeadLetter)
    assert (letter.kind, letter.strategy_id) == ("execute_signal", seeded.strategy_id)
    assert len(_outbox(settings)) == 1

    async with context.db.transaction() as session:
        await dead_letters.replay_dead_letter(
            session,
            dead_letter_id=letter.id,
            resolved_by=None,
            hooks=worker.replay_hooks,
            max_attempts=3,
        )
        reopened = await session.get(Signal, signal_id)
        assert reopened is not None
        assert (reopened.status, reopened.reason) == ("accepted", None)
    await drain(worker, frozen_clock)

    [signal] = await _rows(context, Signal, Signal.id == signal_id)
    assert signal.status == "executed"
    async with context.db.session() as session:
        orders = await session.scalar(
            select(func.count()).select_from(Order).where(Order.signal_id == signal_id)
        )
    assert orders == 1
    assert plan.submits_reaching_venue == 1
