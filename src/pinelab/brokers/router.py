"""HTTP routes of the brokers package: the caller's broker accounts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from pinelab.accounts.dependencies import CurrentUser, VerifiedUser
from pinelab.api.deps import DatabaseDep, PageDep
from pinelab.api.pagination import Page, next_cursor
from pinelab.brokers import service
from pinelab.brokers.dependencies import BrokersDep, ValidBrokerAccount
from pinelab.brokers.schemas import (
    BrokerAccountCheck,
    BrokerAccountCreate,
    BrokerAccountRead,
    BrokerAccountUpdate,
)
from pinelab.strategies.dependencies import TokensDep

router = APIRouter(prefix="/broker-accounts", tags=["broker accounts"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such broker account of yours"}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    409: {"description": "starting_cash changed after the account placed orders"},
}
_UNREADABLE: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    409: {"description": "The credentials cannot be decrypted with the configured keys"},
}


@router.post("", status_code=201, responses={403: {"description": "EmailNotVerified"}})
async def create_broker_account(
    body: BrokerAccountCreate, user: VerifiedUser, db: DatabaseDep, brokers: BrokersDep
) -> BrokerAccountRead:
    """Create a broker account (credentials stored encrypted, never shown); no broker is called."""
    async with db.transaction() as session:
        account = await service.create_broker_account(
            session, user_id=user.id, data=body.root, vault=brokers.vault
        )
    return BrokerAccountRead.model_validate(account)


@router.get("")
async def list_broker_accounts(
    user: CurrentUser, db: DatabaseDep, page: PageDep
) -> Page[BrokerAccountRead]:
    """List your live broker accounts, newest first."""
    async with db.session() as session:
        accounts, next_id = await service.list_broker_accounts(
            session, user_id=user.id, limit=page.limit, before_id=page.before_id
        )
    return Page[BrokerAccountRead](
        items=[BrokerAccountRead.model_validate(account) for account in accounts],
        next_cursor=next_cursor(next_id),
    )


@router.get("/{broker_account_id}", responses=_NOT_FOUND)
async def get_broker_account(account: ValidBrokerAccount) -> BrokerAccountRead:
    """Show one of your broker accounts."""
    return BrokerAccountRead.model_validate(account)


@router.patch("/{broker_account_id}", responses=_CONFLICT)
async def update_broker_account(
    account: ValidBrokerAccount,
    body: BrokerAccountUpdate,
    db: DatabaseDep,
    brokers: BrokersDep,
    tokens: TokensDep,
) -> BrokerAccountRead:
    """Change the label, the credentials, or (paper) costs and, before any order, starting cash."""
    async with db.transaction() as session:
        updated = await service.update_broker_account(
            session,
            user_id=account.user_id,
            broker_account_id=account.id,
            changes=body,
            vault=brokers.vault,
        )
    brokers.forget(account.id)
    tokens.invalidate()
    return BrokerAccountRead.model_validate(updated)


@router.post("/{broker_account_id}/test", responses=_UNREADABLE)
async def check_broker_account(
    account: ValidBrokerAccount, brokers: BrokersDep
) -> BrokerAccountCheck:
    """Check that the broker answers and accepts the credentials; `ok` false says what failed."""
    check = await service.check_broker_account(registry=brokers, account=account)
    return BrokerAccountCheck.model_validate(check, from_attributes=True)


@router.delete("/{broker_account_id}", status_code=204, responses=_NOT_FOUND)
async def archive_broker_account(
    account: ValidBrokerAccount, db: DatabaseDep, brokers: BrokersDep, tokens: TokensDep
) -> Response:
    """Archive a broker account: hidden, unbound from strategies; its orders and history stay."""
    async with db.transaction() as session:
        await service.archive_broker_account(
            session, user_id=account.user_id, broker_account_id=account.id
        )
    brokers.forget(account.id)
    tokens.invalidate()
    return Response(status_code=204)
