"""`pinelab rotate-key`: re-encrypt every stored secret under a new primary key."""

from __future__ import annotations

import asyncio
from collections import Counter

import typer

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.vault.cipher import Vault, build_vault
from pinelab.vault.exceptions import KeyConfigurationError
from pinelab.vault.keys import load_keyring
from pinelab.vault.rotation import (
    EncryptedColumn,
    RotationReport,
    add_primary_key,
    count_by_key,
    retire_old_keys,
    rotate_secrets,
)


def rotate_key(
    settings: Settings,
    *,
    columns: list[EncryptedColumn],
    generate: bool,
    retire_old: bool,
    batch_size: int,
) -> None:
    """Re-encrypt every secret in `columns` under the primary key (first a new one, `generate`)."""
    try:
        vault = build_vault(settings)
        if generate:
            added = add_primary_key(vault.ring)
            vault.use(load_keyring(settings))
            typer.echo(f"new primary key {added.primary.key_id} written to {added.key_file}")
        report, counts = asyncio.run(_rotate(settings, vault, columns, batch_size))
        typer.echo(_summary(report, counts))
        if retire_old and not report.undecryptable:
            _retire(vault, counts)
    except KeyConfigurationError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if report.undecryptable:
        raise typer.Exit(1)


async def _rotate(
    settings: Settings, vault: Vault, columns: list[EncryptedColumn], batch_size: int
) -> tuple[RotationReport, Counter[str]]:
    db = Database(settings.resolved_database_url)
    try:
        report = await rotate_secrets(db, vault, columns, batch_size=batch_size)
        return report, await count_by_key(db, columns)
    finally:
        await db.dispose()


def _summary(report: RotationReport, counts: Counter[str]) -> str:
    stale = sum(n for key_id, n in counts.items() if key_id != report.primary_key_id)
    lines = [
        f"re-encrypted {report.rotated} secret(s) under key {report.primary_key_id}; "
        f"{counts[report.primary_key_id]} are under it, {stale} under other keys"
    ]
    lines.extend(f"cannot decrypt {row} with the configured keys" for row in report.undecryptable)
    return "\n".join(lines)


def _retire(vault: Vault, counts: Counter[str]) -> None:
    stale = sum(n for key_id, n in counts.items() if key_id != vault.primary_key_id)
    if stale:
        typer.echo(f"not retiring the old keys: {stale} secret(s) still need them", err=True)
        raise typer.Exit(1)
    retired = retire_old_keys(vault.ring)
    typer.echo(f"old keys removed from {retired.key_file}; only {retired.primary.key_id} remains")
