"""Cursor pagination: lists answer {items, next_cursor} and take `limit` and `cursor`."""

from __future__ import annotations

import base64
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from pinelab.errors import ErrorDetail, ValidationFailed

T = TypeVar("T")

MAX_LIMIT = 200
MAX_ROW_ID = 2**63 - 1  # the largest id a BIGINT primary key holds


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first."""

    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    """Where a page starts and how long it is."""

    limit: int = 50
    before_id: int | None = None


def encode_cursor(last_id: int) -> str:
    """Return an opaque cursor that continues after the row with this id."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def next_cursor(next_id: int | None) -> str | None:
    """Return the cursor of the next page, or None on the last page."""
    return encode_cursor(next_id) if next_id is not None else None


def decode_cursor(cursor: str) -> int:
    """Return the id a cursor continues after, or raise a 422 naming `cursor`.

    Only what `encode_cursor` could have written passes: `id:` and a row id in range, in digits.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        prefix, _, value = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        if prefix != "id" or not (value.isascii() and value.isdigit()):
            raise ValueError(prefix)
        last_id = int(value)
        if not 1 <= last_id <= MAX_ROW_ID:
            raise ValueError(value)
        return last_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "Invalid cursor", details=[ErrorDetail("cursor", "not a cursor this API issued")]
        ) from exc


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=100, description="next_cursor of the previous page")
    ] = None,
) -> PageParams:
    """Read `limit` and `cursor` from the query string."""
    return PageParams(limit=limit, before_id=decode_cursor(cursor) if cursor else None)
