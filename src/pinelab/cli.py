"""The `pinelab` command: serve, worker, migrate, revision, create-user."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
import uvicorn

from pinelab.config import Settings
from pinelab.db import migrate as migrations
from pinelab.logging import configure_logging

app = typer.Typer(help="PineLab: TradingView alerts to broker orders.", no_args_is_help=True)


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (PINELAB_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PINELAB_PORT)")] = None,
) -> None:
    """Serve the API, the dashboard and (unless disabled) the in-process worker."""
    settings = _settings()
    from pinelab.api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


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
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Password")],
    admin: Annotated[bool, typer.Option("--admin", help="Give the user the admin role")] = False,
) -> None:
    """Create a user (verified), optionally an admin."""
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
