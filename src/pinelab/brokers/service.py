"""Broker accounts: create, list, read, change, check and archive a user's accounts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from pydantic import ValidationError
from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.brokers.credentials import BrokerCredentials, seal_credentials
from pinelab.brokers.exceptions import BrokerError, RetryableBrokerError
from pinelab.brokers.models import BrokerAccount, PaperAccount, PaperOrder
from pinelab.brokers.registry import BrokerRegistry, CredentialsUnavailable
from pinelab.brokers.schemas import (
    AlpacaAccountCreate,
    BrokerAccountUpdate,
    CcxtAccountCreate,
    CredentialsUpdate,
    PaperAccountCreate,
)
from pinelab.clock import now
from pinelab.errors import ConflictError, ErrorDetail, ResourceNotFoundError, ValidationFailed
from pinelab.strategies.models import StrategyBrokerAccount
from pinelab.trading.models import Order
from pinelab.vault import Vault

AccountCreate = PaperAccountCreate | AlpacaAccountCreate | CcxtAccountCreate
PAPER_ONLY_FIELDS: Final = ("starting_cash", "commission_per_order", "slippage_bps")
CHECK_TIMEOUT_SECONDS: Final = 30.0


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of one connectivity check against a broker."""

    ok: bool
    message: str
    latency_ms: int
    checked_at: datetime
    error: str | None = None
    retryable: bool = False


async def create_broker_account(
    session: AsyncSession, *, user_id: int, data: AccountCreate, vault: Vault
) -> BrokerAccount:
    """Store a new broker account for a user, credentials encrypted; the broker is not contacted."""
    account = _new_account(user_id, data)
    session.add(account)
    await session.flush()
    if not isinstance(data, PaperAccountCreate):
        _store_credentials(vault, account, data.credentials.to_credentials())
        await session.flush()
    return account


def _new_account(user_id: int, data: AccountCreate) -> BrokerAccount:
    if isinstance(data, PaperAccountCreate):
        return BrokerAccount(
            user_id=user_id,
            kind=data.kind,
            label=data.label,
            paper=data.paper,
            starting_cash=data.starting_cash,
            commission_per_order=data.commission_per_order,
            slippage_bps=data.slippage_bps,
        )
    kind = "alpaca" if isinstance(data, AlpacaAccountCreate) else f"ccxt:{data.exchange}"
    return BrokerAccount(
        user_id=user_id,
        kind=kind,
        label=data.label,
        paper=data.paper,
        starting_cash=Decimal(0),
        commission_per_order=Decimal(0),
        slippage_bps=Decimal(0),
    )


def _store_credentials(
    vault: Vault, account: BrokerAccount, credentials: BrokerCredentials
) -> None:
    account.credentials_encrypted = seal_credentials(
        vault, account_id=account.id, credentials=credentials
    )
    account.credentials_hint = credentials.hint


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


async def live_broker_accounts(
    session: AsyncSession, *, ids: Sequence[int] = ()
) -> list[BrokerAccount]:
    """Return every user's live accounts (or just those with these ids), oldest first."""
    query = select(BrokerAccount).where(BrokerAccount.archived_at.is_(None))
    if ids:
        query = query.where(BrokerAccount.id.in_(ids))
    return list((await session.scalars(query.order_by(BrokerAccount.id))).all())


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
    session: AsyncSession,
    *,
    user_id: int,
    broker_account_id: int,
    changes: BrokerAccountUpdate,
    vault: Vault,
) -> BrokerAccount:
    """Apply changes to the user's account; starting cash only while it has no orders."""
    account = await get_broker_account(
        session, user_id=user_id, broker_account_id=broker_account_id, for_update=True
    )
    _check_fields_fit_kind(account, changes)
    if changes.credentials is not None:
        credentials = _credentials_for(account, changes.credentials)
        _store_credentials(vault, account, credentials)
    values = changes.model_dump(exclude_unset=True, exclude={"credentials"})
    new_cash = values.pop("starting_cash", None)
    if new_cash is not None and new_cash != account.starting_cash:
        await _reset_starting_cash(session, account, new_cash)
    for name, value in values.items():
        setattr(account, name, value)
    account.updated_at = now()
    await session.flush()
    return account


def _check_fields_fit_kind(account: BrokerAccount, changes: BrokerAccountUpdate) -> None:
    """Refuse credentials for a paper account and paper costs for a real one (422)."""
    given = changes.model_fields_set
    if account.kind == "paper":
        misplaced = [("credentials", "a paper account takes no credentials")]
    else:
        misplaced = [(name, "only paper accounts have this") for name in PAPER_ONLY_FIELDS]
    details = [ErrorDetail(name, message) for name, message in misplaced if name in given]
    if details:
        raise ValidationFailed(
            f"{', '.join(d.field for d in details)} cannot be set on this account", details=details
        )


def _credentials_for(account: BrokerAccount, body: CredentialsUpdate) -> BrokerCredentials:
    """Check new credentials by the rules of the account's kind, as a create would."""
    kind, _, exchange = account.kind.partition(":")
    plain = body.to_credentials()
    spec: dict[str, object] = {
        "kind": kind,
        "label": account.label,
        "paper": account.paper,
        "credentials": {
            "api_key": plain.api_key,
            "api_secret": plain.api_secret,
            **({"password": plain.password} if plain.password is not None else {}),
        },
    }
    model: type[AlpacaAccountCreate | CcxtAccountCreate] = AlpacaAccountCreate
    if kind == "ccxt":
        model, spec["exchange"] = CcxtAccountCreate, exchange
    try:
        return model.model_validate(spec).credentials.to_credentials()
    except ValidationError as exc:
        details = [
            ErrorDetail(".".join(str(part) for part in error["loc"]), error["msg"], error["type"])
            for error in exc.errors()
        ]
    raise ValidationFailed("the credentials do not fit this account", details=details)


async def check_broker_account(
    *, registry: BrokerRegistry, account: BrokerAccount
) -> ConnectionCheck:
    """Make one authenticated call to the account's broker and report what failed, if anything."""
    started = time.monotonic()
    try:
        broker = await registry.get(account)
        await asyncio.wait_for(broker.check_connection(), CHECK_TIMEOUT_SECONDS)
    except CredentialsUnavailable as exc:
        raise ConflictError(
            exc.message, details=[ErrorDetail("credentials", exc.message, "conflict")]
        ) from None
    except BrokerError as exc:
        retryable = isinstance(exc, RetryableBrokerError)
        return _checked(started, False, exc.message, type(exc).__name__, retryable)
    except TimeoutError:
        message = f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
        return _checked(started, False, message, "Timeout", True)
    return _checked(started, True, "connected: the broker accepted the credentials")


def _checked(
    started: float, ok: bool, message: str, error: str | None = None, retryable: bool = False
) -> ConnectionCheck:
    latency = round((time.monotonic() - started) * 1000)
    return ConnectionCheck(ok, message, latency, now(), error, retryable)


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
