"""Base classes of the API's input models, each stating its unknown-field policy."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictBody(BaseModel):
    """A request body: unknown fields are rejected (422 naming the field).

    A typo in a JSON body must not silently fall back to a default (a strategy's sizing, say).
    """

    model_config = ConfigDict(extra="forbid")


class QueryFilters(BaseModel):
    """Query-string filters of a list: unknown parameters are ignored.

    Links and bookmarks keep working as filters are added or retired; every known parameter is
    still typed and bounded (a bad value is a 422 naming it).
    """

    model_config = ConfigDict(extra="ignore")
