"""Dependencies every router may use: settings, secret key, database and page parameters.

Each reads what the composition root (`pinelab.main`) put on `app.state`; dependencies of a
domain (its registry, its limiter, ownership checks) live in that domain's `dependencies.py`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pinelab.api.pagination import PageParams, page_params
from pinelab.config import Settings
from pinelab.db import Database


async def get_settings(request: Request) -> Settings:
    """Return the settings (async: a plain def would hop to a thread)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_secret_key(request: Request) -> str:
    """Return the key that signs tokens and hashes passphrases (resolved once, at startup)."""
    key: str = request.app.state.secret_key
    return key


async def get_database(request: Request) -> Database:
    """Return the database."""
    db: Database = request.app.state.db
    return db


SettingsDep = Annotated[Settings, Depends(get_settings)]
SecretKeyDep = Annotated[str, Depends(get_secret_key)]
DatabaseDep = Annotated[Database, Depends(get_database)]
PageDep = Annotated[PageParams, Depends(page_params)]
