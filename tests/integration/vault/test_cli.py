"""`pinelab rotate-key` and `pinelab broker check` through the real command, in a subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from pinelab.brokers.credentials import (
    CREDENTIALS_COLUMN,
    BrokerCredentials,
    open_credentials,
    seal_credentials,
)
from pinelab.brokers.models import BrokerAccount
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.vault import build_vault
from pinelab.vault.rotation import count_by_key
from tests.cli_support import cli_settings, run_pinelab
from tests.factories import seed_strategy
from tests.fakes.alpaca_emulator import AlpacaEmulator, running_emulator


@pytest.fixture
def settings(cli_data_dir: Path) -> Settings:
    return cli_settings(cli_data_dir)


@pytest.fixture
def emulator() -> Iterator[AlpacaEmulator]:
    with running_emulator() as running:
        yield running


async def add_alpaca_accounts(settings: Settings, *pairs: BrokerCredentials) -> list[int]:
    vault = build_vault(settings)
    db = Database(settings.resolved_database_url)
    try:
        seeded = await seed_strategy(db)
        ids = []
        async with db.transaction() as session:
            for n, credentials in enumerate(pairs):
                account = BrokerAccount(
                    user_id=seeded.user_id, kind="alpaca", label=f"Alpaca {n}",
                    starting_cash=Decimal(0),
                )  # fmt: skip
                session.add(account)
                await session.flush()
                account.credentials_encrypted = seal_credentials(
                    vault, account_id=account.id, credentials=credentials
                )
                ids.append(account.id)
        return ids
    finally:
        await db.dispose()


async def key_counts_and_credentials(
    settings: Settings, ids: list[int]
) -> tuple[dict[str, int], list[BrokerCredentials]]:
    vault = build_vault(settings)
    db = Database(settings.resolved_database_url)
    try:
        counts = dict(await count_by_key(db, [CREDENTIALS_COLUMN]))
        async with db.session() as session:
            accounts = [await session.get_one(BrokerAccount, i) for i in ids]
        return counts, [open_credentials(vault, account) for account in accounts]
    finally:
        await db.dispose()


PAIRS = (
    BrokerCredentials("PKFIRSTACCOUNT0001", "first-secret-0123456789"),
    BrokerCredentials("PKSECONDACCOUNT002", "second-secret-0123456789"),
)


async def test_rotate_key_generates_a_key_reencrypts_and_retires_the_old_one(
    settings: Settings,
) -> None:
    ids = await add_alpaca_accounts(settings, *PAIRS)
    key_file = settings.data_dir / "encryption.key"
    original = json.loads(key_file.read_text())["primary"]

    rotated = run_pinelab(settings.data_dir, "rotate-key", "--generate")
    written = json.loads(key_file.read_text())
    counts, opened = await key_counts_and_credentials(settings, ids)
    retired = run_pinelab(settings.data_dir, "rotate-key", "--retire-old")
    after_retiring = json.loads(key_file.read_text())
    _, still_opened = await key_counts_and_credentials(settings, ids)

    assert rotated.returncode == 0, rotated.stderr
    assert written["old"] == [original]
    assert written["primary"] != original
    new_id = build_vault(settings).primary_key_id
    assert counts == {new_id: 2}
    assert f"re-encrypted 2 secret(s) under key {new_id}" in rotated.stdout
    assert opened == list(PAIRS)
    assert retired.returncode == 0, retired.stderr
    assert after_retiring["old"] == []
    assert still_opened == list(PAIRS)
    assert original not in rotated.stdout + rotated.stderr + retired.stdout + retired.stderr


async def test_generate_refuses_when_keys_come_from_the_environment(settings: Settings) -> None:
    key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

    result = run_pinelab(settings.data_dir, "rotate-key", "--generate", PINELAB_ENCRYPTION_KEY=key)

    assert result.returncode == 2
    assert "PINELAB_ENCRYPTION_OLD_KEYS" in result.stderr
    assert key not in result.stderr + result.stdout


async def test_broker_check_says_which_account_failed_and_why(
    settings: Settings, emulator: AlpacaEmulator
) -> None:
    good = BrokerCredentials(emulator.api_key, emulator.api_secret)
    bad = BrokerCredentials(emulator.api_key, "a-wrong-secret-0123456789")
    good_id, bad_id = await add_alpaca_accounts(settings, good, bad)

    result = run_pinelab(
        settings.data_dir,
        "broker",
        "check",
        PINELAB_BROKER_BASE_URLS=json.dumps({"alpaca": emulator.url}),
    )

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    good_line = next(line for line in lines if line.startswith(f"account {good_id} "))
    bad_line = next(line for line in lines if line.startswith(f"account {bad_id} "))
    assert ": ok (" in good_line
    assert "FAILED BrokerAuthFailed" in bad_line
    assert emulator.api_secret not in result.stdout + result.stderr
