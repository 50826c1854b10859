"""Read the signal log: a user's signals, filtered and paged newest first."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from pinelab.errors import ResourceNotFoundError
from pinelab.signals.models import Signal
from pinelab.signals.schemas import SignalFilters


class Identified(Protocol):
    """A row with an integer id."""

    @property
    def id(self) -> int:
        """Return the row's id."""
        ...


RowT = TypeVar("RowT", bound=Identified)


async def fetch_page(
    session: AsyncSession,
    query: Select[RowT],
    id_column: InstrumentedAttribute[int],
    *,
    limit: int,
    before_id: int | None,
) -> tuple[list[RowT], int | None]:
    """Return up to `limit` rows below `before_id`, newest first, and the next page's cursor id."""
    if before_id is not None:
        query = query.where(id_column < before_id)
    rows = list((await session.scalars(query.order_by(id_column.desc()).limit(limit + 1))).all())
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


async def list_signals(
    session: AsyncSession,
    *,
    user_id: int,
    filters: SignalFilters,
    limit: int,
    before_id: int | None = None,
) -> tuple[list[Signal], int | None]:
    """Return a page of the user's signals, newest first, and the id the next page follows."""
    conditions: list[Any] = [Signal.user_id == user_id]
    if filters.strategy_id is not None:
        conditions.append(Signal.strategy_id == filters.strategy_id)
    if filters.status is not None:
        conditions.append(Signal.status == filters.status)
    if filters.ticker is not None:
        conditions.append(Signal.ticker == filters.ticker)
    if filters.received_from is not None:
        conditions.append(Signal.received_at >= filters.received_from)
    if filters.received_to is not None:
        conditions.append(Signal.received_at < filters.received_to)
    query = select(Signal).where(*conditions)
    return await fetch_page(session, query, Signal.id, limit=limit, before_id=before_id)


async def get_signal(session: AsyncSession, *, user_id: int, signal_id: int) -> Signal:
    """Return the user's signal with this id, or raise ResourceNotFoundError."""
    query = select(Signal).where(Signal.id == signal_id, Signal.user_id == user_id)
    signal = (await session.scalars(query)).one_or_none()
    if signal is None:
        raise ResourceNotFoundError("Signal", signal_id)
    return signal
