"""Dependencies shared by routers: the app context, settings and the database."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pinelab.api.context import AppContext
from pinelab.api.pagination import PageParams, page_params
from pinelab.config import Settings
from pinelab.db import Database


async def get_context(request: Request) -> AppContext:
    """Return the app context built at startup (async: a plain def would hop to a thread)."""
    context: AppContext = request.app.state.context
    return context


async def get_settings(context: Annotated[AppContext, Depends(get_context)]) -> Settings:
    """Return the settings."""
    return context.settings


async def get_database(context: Annotated[AppContext, Depends(get_context)]) -> Database:
    """Return the database."""
    return context.db


ContextDep = Annotated[AppContext, Depends(get_context)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
PageDep = Annotated[PageParams, Depends(page_params)]
