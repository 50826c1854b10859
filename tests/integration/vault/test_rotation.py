"""Key rotation over a real database: complete, interrupted between and within batches, resumed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, update

from pinelab.brokers.credentials import (
    CREDENTIALS_COLUMN,
    BrokerCredentials,
    open_credentials,
    seal_credentials,
)
from pinelab.brokers.models import BrokerAccount
from pinelab.db import Database
from pinelab.vault import EncryptionKey, KeyRing, Vault
from pinelab.vault.cipher import key_id_of
from pinelab.vault.rotation import RotationReport, count_by_key, rotate_secrets
from tests.factories import seed_strategy

ACCOUNTS = 10
BATCH = 3


class Interrupted(Exception):
    """Stands in for a crash or Ctrl-C."""


def credentials(n: int) -> BrokerCredentials:
    return BrokerCredentials(f"PKROTATION{n:08d}", f"rotation-secret-{n:04d}-abcdefghij")


async def seed_accounts(db: Database, vault: Vault) -> list[int]:
    seeded = await seed_strategy(db)
    ids = []
    async with db.transaction() as session:
        for n in range(ACCOUNTS):
            account = BrokerAccount(
                user_id=seeded.user_id, kind="alpaca", label=f"A{n}", starting_cash=Decimal(0)
            )
            session.add(account)
            await session.flush()
            account.credentials_encrypted = seal_credentials(
                vault, account_id=account.id, credentials=credentials(n)
            )
            ids.append(account.id)
    return ids


async def stored(db: Database) -> dict[int, str]:
    async with db.session() as session:
        rows = await session.execute(
            select(BrokerAccount.id, BrokerAccount.credentials_encrypted).where(
                BrokerAccount.credentials_encrypted.is_not(None)
            )
        )
        return {row.id: row.credentials_encrypted or "" for row in rows}


async def assert_all_readable_under(db: Database, vault: Vault, key_id: str) -> None:
    async with db.session() as session:
        accounts = (
            await session.scalars(
                select(BrokerAccount)
                .where(BrokerAccount.kind == "alpaca")
                .order_by(BrokerAccount.id)
            )
        ).all()
    assert [key_id_of(a.credentials_encrypted or "") for a in accounts] == [key_id] * ACCOUNTS
    assert [open_credentials(vault, a) for a in accounts] == [
        credentials(n) for n in range(ACCOUNTS)
    ]


@pytest.fixture
def old_key() -> EncryptionKey:
    return EncryptionKey.generate()


@pytest.fixture
def new_key() -> EncryptionKey:
    return EncryptionKey.generate()


@pytest.fixture
async def rotating(db: Database, old_key: EncryptionKey, new_key: EncryptionKey) -> Vault:
    """Accounts sealed under the old key, and a vault whose primary is now the new key."""
    await seed_accounts(db, Vault(KeyRing(old_key)))
    return Vault(KeyRing(new_key, (old_key,)))


async def test_rotation_reencrypts_every_secret_under_the_new_key(
    db: Database, rotating: Vault, new_key: EncryptionKey
) -> None:
    report = await rotate_secrets(db, rotating, [CREDENTIALS_COLUMN], batch_size=BATCH)

    assert (report.rotated, report.batches, report.undecryptable) == (ACCOUNTS, 4, [])
    await assert_all_readable_under(db, Vault(KeyRing(new_key)), new_key.key_id)
    assert await count_by_key(db, [CREDENTIALS_COLUMN]) == {new_key.key_id: ACCOUNTS}


async def test_rotation_interrupted_between_batches_resumes_where_it_stopped(
    db: Database, rotating: Vault, old_key: EncryptionKey, new_key: EncryptionKey
) -> None:
    async def crash_after_two_batches(report: RotationReport) -> None:
        if report.batches == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        await rotate_secrets(
            db,
            rotating,
            [CREDENTIALS_COLUMN],
            batch_size=BATCH,
            after_batch=crash_after_two_batches,
        )
    halfway = await count_by_key(db, [CREDENTIALS_COLUMN])
    resumed = await rotate_secrets(db, rotating, [CREDENTIALS_COLUMN], batch_size=BATCH)

    assert halfway == {new_key.key_id: 2 * BATCH, old_key.key_id: ACCOUNTS - 2 * BATCH}
    assert resumed.rotated == ACCOUNTS - 2 * BATCH  # the done rows were skipped, not redone
    await assert_all_readable_under(db, Vault(KeyRing(new_key)), new_key.key_id)


class FailingVault(Vault):
    """A vault whose encrypt fails on the n-th call: a crash in the middle of a batch."""

    def __init__(self, vault: Vault, *, fail_on: int) -> None:
        super().__init__(vault.ring)
        self.calls = 0
        self.fail_on = fail_on

    def encrypt(self, plaintext: bytes, *, context: str) -> str:
        self.calls += 1
        if self.calls == self.fail_on:
            raise Interrupted
        return super().encrypt(plaintext, context=context)


async def test_rotation_crashing_inside_a_batch_rolls_that_batch_back_and_resumes(
    db: Database, rotating: Vault, old_key: EncryptionKey, new_key: EncryptionKey
) -> None:
    before = await stored(db)
    failing = FailingVault(rotating, fail_on=BATCH + 2)  # second row of the second batch

    with pytest.raises(Interrupted):
        await rotate_secrets(db, failing, [CREDENTIALS_COLUMN], batch_size=BATCH)
    halfway = await stored(db)
    resumed = await rotate_secrets(db, rotating, [CREDENTIALS_COLUMN], batch_size=BATCH)

    ids = sorted(before)
    assert [key_id_of(halfway[i]) for i in ids] == [new_key.key_id] * BATCH + [old_key.key_id] * (
        ACCOUNTS - BATCH
    )
    assert all(halfway[i] == before[i] for i in ids[BATCH:])  # the failed batch left no trace
    assert resumed.rotated == ACCOUNTS - BATCH
    await assert_all_readable_under(db, Vault(KeyRing(new_key)), new_key.key_id)


async def test_rows_no_key_opens_are_reported_and_the_rest_rotated(
    db: Database, rotating: Vault, new_key: EncryptionKey
) -> None:
    ids = sorted(await stored(db))
    stray = Vault(KeyRing(EncryptionKey.generate())).encrypt(b"{}", context="x")
    async with db.transaction() as session:
        await session.execute(
            update(BrokerAccount)
            .where(BrokerAccount.id == ids[4])
            .values(credentials_encrypted=stray)
        )

    report = await rotate_secrets(db, rotating, [CREDENTIALS_COLUMN], batch_size=BATCH)
    again = await rotate_secrets(db, rotating, [CREDENTIALS_COLUMN], batch_size=BATCH)

    assert report.rotated == ACCOUNTS - 1
    assert report.undecryptable == again.undecryptable == [f"broker_account:{ids[4]}"]
    assert again.rotated == 0
    counts = await count_by_key(db, [CREDENTIALS_COLUMN])
    assert counts[new_key.key_id] == ACCOUNTS - 1
