"""Key rotation meets a stored value that is no envelope at all, and a batch size of zero."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from pinelab.brokers.credentials import CREDENTIALS_COLUMN, BrokerCredentials, seal_credentials
from pinelab.brokers.models import BrokerAccount
from pinelab.db import Database
from pinelab.vault import EncryptionKey, KeyRing, Vault
from pinelab.vault.rotation import count_by_key, rotate_secrets
from tests.factories import seed_strategy

DAMAGED = "not-an-envelope"


async def seed(db: Database, vault: Vault, *, damaged: bool) -> list[int]:
    """Store two sealed accounts and, when asked, one whose stored value is damaged."""
    seeded = await seed_strategy(db)
    ids = []
    async with db.transaction() as session:
        for n in range(3 if damaged else 2):
            account = BrokerAccount(
                user_id=seeded.user_id, kind="alpaca", label=f"A{n}", starting_cash=Decimal(0)
            )
            session.add(account)
            await session.flush()
            account.credentials_encrypted = (
                DAMAGED
                if n == 2
                else seal_credentials(
                    vault,
                    account_id=account.id,
                    credentials=BrokerCredentials(f"PKDAMAGED{n:07d}", f"secret-{n}-abcdefghijk"),
                )
            )
            ids.append(account.id)
    return ids


async def stored(db: Database) -> dict[int, str | None]:
    async with db.session() as session:
        rows = await session.execute(
            select(BrokerAccount.id, BrokerAccount.credentials_encrypted).where(
                BrokerAccount.kind == "alpaca"
            )
        )
        return {row.id: row.credentials_encrypted for row in rows}


async def test_a_damaged_value_is_counted_unreadable_reported_and_left_alone(
    db: Database,
) -> None:
    old_key, new_key = EncryptionKey.generate(), EncryptionKey.generate()
    ids = await seed(db, Vault(KeyRing(old_key)), damaged=True)

    before = await count_by_key(db, [CREDENTIALS_COLUMN])
    report = await rotate_secrets(db, Vault(KeyRing(new_key, (old_key,))), [CREDENTIALS_COLUMN])
    after = await count_by_key(db, [CREDENTIALS_COLUMN])

    assert before == {old_key.key_id: 2, "unreadable": 1}
    assert (report.rotated, report.undecryptable) == (2, [f"broker_account:{ids[2]}"])
    assert after == {new_key.key_id: 2, "unreadable": 1}
    assert (await stored(db))[ids[2]] == DAMAGED


@pytest.mark.parametrize("batch_size", [0, -1])
async def test_a_batch_size_below_one_is_refused_before_touching_anything(
    db: Database, batch_size: int
) -> None:
    old_key = EncryptionKey.generate()
    await seed(db, Vault(KeyRing(old_key)), damaged=False)
    before = await stored(db)

    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        await rotate_secrets(
            db,
            Vault(KeyRing(EncryptionKey.generate(), (old_key,))),
            [CREDENTIALS_COLUMN],
            batch_size=batch_size,
        )

    assert await stored(db) == before
