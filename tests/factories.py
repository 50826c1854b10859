"""Seed rows directly, ingest alerts and read rows back, for tests below the HTTP layer."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select, update

from pinelab.accounts import service as accounts
from pinelab.accounts.models import User
from pinelab.accounts.security import hash_password
from pinelab.brokers.base import Broker
from pinelab.brokers.credentials import BrokerCredentials, seal_credentials
from pinelab.brokers.models import BrokerAccount
from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs import queue
from pinelab.jobs.models import Job
from pinelab.main import Services
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy, StrategyBrokerAccount
from pinelab.strategies.tokens import hash_token
from pinelab.trading.execution import execute_signal
from tests.waiting import eventually

FAST_HASH = "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$Kp2Fq5eMTaN4JYQbmjG8cw"


@dataclass(frozen=True)
class Seeded:
    """Ids of a seeded user, paper account and strategy, and the strategy's webhook token."""

    user_id: int
    account_id: int
    strategy_id: int
    token: str


async def seed_strategy(
    db: Database,
    *,
    email: str = "trader@example.com",
    token: str = "test-token-0123456789",
    starting_cash: Decimal = Decimal(100000),
    slippage_bps: Decimal = Decimal(0),
    commission: Decimal = Decimal(0),
    real_password: str | None = None,
    **strategy_fields: object,
) -> Seeded:
    """Create a user with a paper account and a strategy bound to it."""
    async with db.transaction() as session:
        user = User(
            email=email, password_hash=hash_password(real_password) if real_password else FAST_HASH
        )
        session.add(user)
        await session.flush()
        account = BrokerAccount(
            user_id=user.id,
            kind="paper",
            label="paper",
            starting_cash=starting_cash,
            slippage_bps=slippage_bps,
            commission_per_order=commission,
        )
        session.add(account)
        await session.flush()
        fields: dict[str, object] = {
            "sizing_type": "fixed",
            "sizing_value": Decimal(1),
        } | strategy_fields
        strategy = Strategy(
            user_id=user.id,
            name="strategy",
            token_hash=hash_token(token),
            token_hint=token[:6],
            **fields,
        )
        session.add(strategy)
        await session.flush()
        session.add(StrategyBrokerAccount(strategy_id=strategy.id, broker_account_id=account.id))
    return Seeded(user.id, account.id, strategy.id, token)


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


async def enqueue_job(db: Database, kind: str, payload: dict[str, Any] | None = None) -> int:
    """Queue one job of a kind (three attempts) in its own transaction; return its id."""
    async with db.transaction() as session:
        job = await queue.enqueue(session, kind, payload or {}, max_attempts=3)
    return job.id


async def stored_job(db: Database, job_id: int) -> Job:
    """Read a job back as it is stored now."""
    async with db.session() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


async def settled_signal(db: Database, signal_id: int) -> Signal:
    """Wait until the worker is done with a signal (it is no longer accepted); return it."""

    async def settled() -> Signal | None:
        async with db.session() as session:
            signal = await session.get(Signal, signal_id)
        return signal if signal is not None and signal.status != "accepted" else None

    return await eventually(settled, what=f"signal {signal_id} to be executed")


_alert_ids = itertools.count(1)


async def ingest_alert(services: Services, seeded: Seeded, **fields: Any) -> int:
    """Ingest an alert (buy 10 AAPL at 100 unless `fields` say otherwise) as the webhook does;
    return its signal id."""
    alert = {"ticker": "AAPL", "action": "buy", "quantity": "10", "price": "100"} | fields
    assert services.ingestor is not None
    result = await services.ingestor.ingest(
        token=seeded.token,
        body=orjson.dumps({"id": f"alert-{next(_alert_ids)}"} | alert),
        content_type="application/json",
        source_ip=None,
    )
    return result.signal_id


async def all_rows(db: Database, model: Any) -> list[Any]:
    """Read every row of a model, oldest first."""
    async with db.session() as session:
        return list((await session.scalars(select(model).order_by(model.id))).all())


async def execute(services: Services, signal_id: int) -> None:
    """Execute a signal as the worker's execute_signal job does."""
    await execute_signal(
        signal_id, db=services.db, brokers=services.brokers, metrics=services.metrics
    )


def signal_values(
    strategy_id: int, user_id: int, key: str | None, body: str = "buy AAPL 1"
) -> dict[str, Any]:
    """The column values of an accepted alert, as ingestion hands them to the signal writer."""
    return {
        "user_id": user_id,
        "strategy_id": strategy_id,
        "received_at": now(),
        "source_ip": None,
        "content_type": "text/plain",
        "raw_body": body,
        "body_hash": hashlib.sha256(body.encode()).hexdigest(),
        "intent": None,
        "ticker": "AAPL",
        "action": "buy",
        "status": "accepted",
        "reason": None,
        "idempotency_key": key,
        "duplicate_of_id": None,
        "executed_at": None,
    }


async def session_headers(db: Database, secret_key: str, user_id: int) -> dict[str, str]:
    """Open a session for a seeded user, as a login would, and return its bearer header."""
    policy = accounts.TokenPolicy(
        secret_key=secret_key, access_ttl_seconds=900, refresh_ttl_seconds=3600
    )
    async with db.transaction() as session:
        user = await session.get(User, user_id)
        assert user is not None
        login = accounts.VerifiedLogin(user_id=user_id, checked_hash=user.password_hash)
        issued = await accounts.start_session(session, login=login, policy=policy)
    return {"Authorization": f"Bearer {issued.access_token}"}
