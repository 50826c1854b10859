"""`pinelab broker check` with named accounts, unknown ids, unreadable credentials, or none."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from pinelab.brokers.credentials import BrokerCredentials, seal_credentials
from pinelab.brokers.models import BrokerAccount
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.vault import build_vault
from tests.cli_support import cli_settings, run_pinelab
from tests.factories import seed_strategy

UNKNOWN_ID = 999_999


@pytest.fixture
def settings(cli_data_dir: Path) -> Settings:
    return cli_settings(cli_data_dir)


async def seed_paper_and_unreadable(settings: Settings) -> tuple[int, int]:
    """A paper account, and an Alpaca account whose credentials were sealed for another row."""
    vault = build_vault(settings)
    db = Database(settings.resolved_database_url)
    try:
        seeded = await seed_strategy(db)
        async with db.transaction() as session:
            account = BrokerAccount(
                user_id=seeded.user_id, kind="alpaca", label="Moved", starting_cash=Decimal(0)
            )
            session.add(account)
            await session.flush()
            account.credentials_encrypted = seal_credentials(
                vault,
                account_id=account.id + 1,
                credentials=BrokerCredentials("PKMOVEDCREDS000001", "moved-secret-0123456789"),
            )
            return seeded.account_id, account.id
    finally:
        await db.dispose()


def test_named_accounts_are_checked_and_unknown_or_unreadable_ones_fail(
    settings: Settings,
) -> None:
    paper_id, moved_id = asyncio.run(seed_paper_and_unreadable(settings))

    result = run_pinelab(
        settings.data_dir, "broker", "check", str(paper_id), str(moved_id), str(UNKNOWN_ID)
    )

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"account {UNKNOWN_ID}: FAILED no such live broker account"
    assert lines[1].startswith(f"account {paper_id} (paper, paper, 'paper'): ok (")
    assert lines[2].startswith(f"account {moved_id} (alpaca, paper, 'Moved'): FAILED ")
    assert "cannot be decrypted with the configured keys" in lines[2]
    assert "moved-secret" not in result.stdout + result.stderr
    assert len(lines) == 3


def test_a_check_where_every_account_answers_exits_0(settings: Settings) -> None:
    paper_id, _ = asyncio.run(seed_paper_and_unreadable(settings))

    result = run_pinelab(settings.data_dir, "broker", "check", str(paper_id))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"account {paper_id} (paper, paper, 'paper'): ok (")


def test_with_no_live_accounts_the_check_says_so_and_exits_0(settings: Settings) -> None:
    result = run_pinelab(settings.data_dir, "broker", "check")

    assert (result.returncode, result.stdout) == (0, "no live broker accounts\n")
