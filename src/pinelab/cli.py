"""The `pinelab` command: serve, worker, migrate, revision, check-config, create-user, rotate-key,
broker check, dead-letters."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from pinelab.api.limits import PROTOCOL
from pinelab.brokers.cli import broker_app
from pinelab.config import Settings
from pinelab.db import migrate as migrations
from pinelab.jobs.cli import DeadLetterSetup, dead_letters_app
from pinelab.logging import configure_logging
from pinelab.ops.files import make_data_dir_private
from pinelab.vault import build_vault

app = typer.Typer(
    help="PineLab: TradingView alerts to broker orders.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _settings() -> Settings:
    """Read the settings; on a bad value print one line per problem (never a traceback), exit 2."""
    from pinelab.ops.checks import load_settings

    settings, problems = load_settings(Path(".env"))
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem.variable}: {problem.message}", err=True)
        typer.echo("run `pinelab check-config` for the fix of each", err=True)
        raise typer.Exit(2)
    configure_logging(settings)
    make_data_dir_private(settings.data_dir)
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (PINELAB_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PINELAB_PORT)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="API processes on the one port")] = 1,
) -> None:
    """Serve the API, the dashboard and (unless disabled) the in-process worker."""
    _refuse_broken_config()
    settings = _settings()
    # A fresh data dir gets its generated keys here, once, before the API processes start:
    # processes started together would each generate their own.
    settings.resolved_secret_key()
    build_vault(settings)
    uvicorn.run(
        "pinelab.main:create_app",
        factory=True,
        workers=workers,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
        # httptools plus a header cap, the idle timeout and the request deadline (api/limits.py).
        http=PROTOCOL,
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
    )


def _refuse_broken_config() -> None:
    from pinelab.ops.checks import check_all, has_errors, render

    settings, problems = check_all(Path(".env"), connect=True)
    if settings.check_config_on_start and has_errors(problems):
        typer.echo(render(problems), err=True)
        raise typer.Exit(1)


@app.command("check-config")
def check_config(
    env_file: Annotated[Path, typer.Option(help="The .env file to read")] = Path(".env"),
    offline: Annotated[bool, typer.Option(help="Skip the connection tests")] = False,
) -> None:
    """Check every setting and connection; print every problem at once; exit 1 on any error."""
    from pinelab.ops.checks import check_all, has_errors, render

    _, problems = check_all(env_file, connect=not offline)
    typer.echo(render(problems))
    if has_errors(problems):
        raise typer.Exit(1)


@app.command()
def worker() -> None:
    """Run the job worker and the periodic scheduler, without HTTP, until SIGTERM or SIGINT."""
    settings = _settings()
    from pinelab.main import run_worker

    code = asyncio.run(run_worker(settings))
    if code:
        typer.echo("worker not started: another process runs the worker (see the log)", err=True)
        raise typer.Exit(code)


def _dead_letters_setup(ctx: typer.Context) -> None:
    """Inspect, replay and discard dead letters."""
    from pinelab.main import replay_hooks

    ctx.obj = DeadLetterSetup(_settings(), replay_hooks())


app.add_typer(dead_letters_app, name="dead-letters", callback=_dead_letters_setup)


def _broker_settings(ctx: typer.Context) -> None:
    """Check broker accounts."""
    ctx.obj = _settings()


app.add_typer(broker_app, name="broker", callback=_broker_settings)


@app.command("rotate-key")
def rotate_key(
    generate: Annotated[
        bool, typer.Option("--generate", help="First write a new primary key into the key file")
    ] = False,
    retire_old: Annotated[
        bool, typer.Option("--retire-old", help="Afterwards drop the old keys from the key file")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per batch")] = 100,
) -> None:
    """Re-encrypt every stored secret under the primary key; safe to interrupt and run again."""
    from pinelab.main import encrypted_columns
    from pinelab.vault.cli import rotate_key as rotate

    rotate(
        _settings(),
        columns=encrypted_columns(),
        generate=generate,
        retire_old=retire_old,
        batch_size=batch_size,
    )


def _read_password(*, from_stdin: bool) -> str:
    """Return the password from stdin's first line, or from a hidden prompt on a terminal."""
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            typer.echo("error: no password on stdin (write it on the first line)", err=True)
            raise typer.Exit(2)
        return password
    entered: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return entered


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    migrations.upgrade(settings.resolved_database_url, revision)
    typer.echo(f"database at {revision}")


@app.command()
def revision(message: Annotated[str, typer.Option("-m", "--message", help="What changes")]) -> None:
    """Write a new migration from the difference between the models and the database."""
    settings = _settings()
    migrations.revision(settings.resolved_database_url, message)


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="Email address")],
    admin: Annotated[bool, typer.Option("--admin", help="Give the user the admin role")] = False,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from the first line of stdin (also when stdin is not a "
            "terminal); otherwise it is asked for, hidden, twice",
        ),
    ] = False,
) -> None:
    """Create a user (verified), optionally an admin; the password comes from a prompt or stdin."""
    password = _read_password(from_stdin=password_stdin)
    settings = _settings()

    async def _create() -> int:
        from pinelab.accounts.service import create_user as create
        from pinelab.db import Database

        db = Database(settings.resolved_database_url)
        try:
            async with db.transaction() as session:
                user = await create(
                    session,
                    email=email,
                    password=password,
                    role="admin" if admin else "user",
                    verified=True,
                )
                return user.id
        finally:
            await db.dispose()

    try:
        user_id = asyncio.run(_create())
    except Exception as exc:
        from pinelab.errors import BusinessLogicError

        if isinstance(exc, BusinessLogicError):
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None
        raise
    typer.echo(f"created user {user_id} <{email}>{' (admin)' if admin else ''}")
