"""Key rotation: re-encrypt every stored secret under the primary key, in committed batches.

A run walks each encrypted column in id order and skips rows already under the primary key,
so an interrupted run (crash, Ctrl-C, a failed batch) is resumed by running it again: the
batches it committed stay done, the one in flight was rolled back as a whole. Each row is
updated only if it still holds the envelope that was read (compare and set), so a secret
changed meanwhile through the API is never overwritten with an older one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog
from sqlalchemy import Table, select, update

from pinelab.db import Database
from pinelab.vault.cipher import ENVELOPE_VERSION, Vault, key_id_of
from pinelab.vault.exceptions import KeyConfigurationError, UndecryptableSecret
from pinelab.vault.keys import EncryptionKey, KeyRing, read_key_file, write_key_file

log = structlog.get_logger(__name__)

DEFAULT_BATCH_SIZE: Final = 100


@dataclass(frozen=True)
class EncryptedColumn:
    """A column of vault envelopes; each row's envelope is bound to (table, row id, purpose)."""

    table: Table
    column: str
    purpose: str

    def context(self, row_id: int) -> str:
        """Return the context a row's envelope is sealed for."""
        return f"{self.table.name}:{row_id}:{self.purpose}"


@dataclass
class RotationReport:
    """What a rotation run did."""

    primary_key_id: str
    rotated: int = 0
    batches: int = 0
    undecryptable: list[str] = field(default_factory=list)


AfterBatch = Callable[[RotationReport], Awaitable[None]]


async def rotate_secrets(
    db: Database,
    vault: Vault,
    columns: Sequence[EncryptedColumn],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    after_batch: AfterBatch | None = None,
) -> RotationReport:
    """Re-encrypt every secret not under the primary key; safe to interrupt and run again."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RotationReport(primary_key_id=vault.primary_key_id)
    for column in columns:
        last_id = 0
        while True:
            last_id, seen = await _rotate_batch(db, vault, column, last_id, batch_size, report)
            if not seen:
                break
            report.batches += 1
            if after_batch is not None:
                await after_batch(report)
    log.info(
        "secrets_rotated",
        primary_key_id=report.primary_key_id,
        rotated=report.rotated,
        undecryptable=len(report.undecryptable),
    )
    return report


async def _rotate_batch(
    db: Database,
    vault: Vault,
    column: EncryptedColumn,
    after_id: int,
    batch_size: int,
    report: RotationReport,
) -> tuple[int, int]:
    """Re-encrypt the next batch of stale rows after `after_id`; return (last id, rows seen)."""
    table, value = column.table, column.table.c[column.column]
    current = f"{ENVELOPE_VERSION}:{vault.primary_key_id}:%"
    query = (
        select(table.c.id, value)
        .where(table.c.id > after_id, value.is_not(None), value.not_like(current))
        .order_by(table.c.id)
        .limit(batch_size)
    )
    rotated = 0
    async with db.transaction() as session:
        rows = (await session.execute(query)).all()
        for row_id, envelope in rows:
            context = column.context(row_id)
            try:
                plaintext = vault.decrypt(envelope, context=context)
            except UndecryptableSecret:
                report.undecryptable.append(f"{table.name}:{row_id}")
                continue
            changed = await session.execute(
                update(table)
                .where(table.c.id == row_id, value == envelope)
                .values({column.column: vault.encrypt(plaintext, context=context)})
            )
            rotated += changed.rowcount  # type: ignore[attr-defined]
    report.rotated += rotated
    return (rows[-1][0] if rows else after_id), len(rows)


async def count_by_key(db: Database, columns: Sequence[EncryptedColumn]) -> Counter[str]:
    """Count the stored secrets under each key id ("unreadable" for a damaged value)."""
    counts: Counter[str] = Counter()
    async with db.session() as session:
        for column in columns:
            value = column.table.c[column.column]
            for envelope in await session.scalars(select(value).where(value.is_not(None))):
                try:
                    counts[key_id_of(envelope)] += 1
                except UndecryptableSecret:
                    counts["unreadable"] += 1
    return counts


def add_primary_key(ring: KeyRing) -> KeyRing:
    """Generate a new primary key into the ring's key file; the old keys stay, decrypt-only."""
    path = _key_file(ring)
    stored = read_key_file(path)
    promoted = stored.promoted(EncryptionKey.generate())
    write_key_file(path, promoted)
    log.info("encryption_key_added", path=str(path), key_id=promoted.primary.key_id)
    return promoted


def retire_old_keys(ring: KeyRing) -> KeyRing:
    """Drop every old key from the ring's key file, keeping only the primary."""
    path = _key_file(ring)
    stored = read_key_file(path)
    retired = KeyRing(stored.primary, (), source=stored.source, key_file=path)
    write_key_file(path, retired)
    log.info("encryption_keys_retired", path=str(path), key_ids=list(stored.key_ids[1:]))
    return retired


def _key_file(ring: KeyRing) -> Path:
    if ring.key_file is None:
        raise KeyConfigurationError(
            f"the keys come from the {ring.source}, not a key file: set the new key as "
            "PINELAB_ENCRYPTION_KEY and the old one in PINELAB_ENCRYPTION_OLD_KEYS "
            "(or change the passphrase and set PINELAB_ENCRYPTION_OLD_PASSPHRASE), "
            "restart, then run `pinelab rotate-key`"
        )
    return ring.key_file
