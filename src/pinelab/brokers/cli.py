"""`pinelab broker`: operate on broker accounts from the command line."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from pinelab.brokers import service
from pinelab.brokers.models import BrokerAccount
from pinelab.brokers.registry import BrokerRegistry
from pinelab.config import Settings
from pinelab.db import Database
from pinelab.errors import ConflictError

broker_app = typer.Typer(
    help="Check broker accounts.", no_args_is_help=True, pretty_exceptions_show_locals=False
)


@broker_app.command("check")
def check(
    ctx: typer.Context,
    account_ids: Annotated[
        list[int] | None, typer.Argument(help="Broker account ids (default: every live one)")
    ] = None,
) -> None:
    """Call each account's broker once and say what failed; exit 1 if any check failed."""
    settings: Settings = ctx.obj
    lines, failed = asyncio.run(_check_accounts(settings, account_ids or []))
    for line in lines:
        typer.echo(line)
    if failed:
        raise typer.Exit(1)


async def _check_accounts(settings: Settings, ids: list[int]) -> tuple[list[str], int]:
    db = Database(settings.resolved_database_url)
    registry = BrokerRegistry(db=db, settings=settings)
    lines: list[str] = []
    failed = 0
    try:
        async with db.session() as session:
            accounts = await service.live_broker_accounts(session, ids=ids)
        missing = sorted(set(ids) - {account.id for account in accounts})
        for account_id in missing:
            lines.append(f"account {account_id}: FAILED no such live broker account")
        failed += len(missing)
        for account in accounts:
            line, ok = await _check_one(registry, account)
            lines.append(line)
            failed += not ok
    finally:
        await registry.close()
        await db.dispose()
    if not lines:
        lines.append("no live broker accounts")
    return lines, failed


async def _check_one(registry: BrokerRegistry, account: BrokerAccount) -> tuple[str, bool]:
    mode = "paper" if account.paper else "live"
    name = f"account {account.id} ({account.kind}, {mode}, {account.label!r})"
    try:
        result = await service.check_broker_account(registry=registry, account=account)
    except ConflictError as exc:
        return f"{name}: FAILED {exc.message}", False
    if result.ok:
        return f"{name}: ok ({result.latency_ms} ms)", True
    return f"{name}: FAILED {result.error}: {result.message}", False
