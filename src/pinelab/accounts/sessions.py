"""A user's sessions: which are live, when each was last used, and revoking one.

Access tokens name their session (the `sid` claim), and every authenticated request loads
the user and that session together: a revoked or expired session, or a disabled user, stops
its access tokens at the next request. `last_used_at` is written at most once a minute per
session, so reads do not turn into a write each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.accounts.models import AuthSession, User
from pinelab.clock import now
from pinelab.errors import ResourceNotFoundError

TOUCH_INTERVAL: Final = timedelta(seconds=60)


@dataclass(frozen=True)
class ActiveSession:
    """The user behind a live session, and when the session was last used."""

    user: User
    last_used_at: datetime | None

    @property
    def due_for_touch(self) -> bool:
        """Tell whether `last_used_at` is old enough to be written again."""
        return self.last_used_at is None or now() - self.last_used_at >= TOUCH_INTERVAL


async def active_session(
    session: AsyncSession, *, user_id: int, session_id: int
) -> ActiveSession | None:
    """Return the active user of a live session of theirs, or None."""
    result = await session.execute(
        select(User, AuthSession.last_used_at)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(
            User.id == user_id,
            User.is_active.is_(True),
            AuthSession.id == session_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now(),
        )
    )
    row = result.first()
    return None if row is None else ActiveSession(user=row[0], last_used_at=row[1])


async def touch(session: AsyncSession, session_id: int) -> None:
    """Record that a session was used now."""
    await session.execute(
        update(AuthSession).where(AuthSession.id == session_id).values(last_used_at=now())
    )


async def list_sessions(session: AsyncSession, *, user_id: int) -> list[AuthSession]:
    """Return a user's live sessions, the most recently used first."""
    result = await session.execute(
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now(),
        )
        .order_by(AuthSession.id.desc())
    )
    return sorted(result.scalars().all(), key=_last_activity, reverse=True)


async def revoke_session(session: AsyncSession, *, user_id: int, session_id: int) -> None:
    """Revoke one live session of a user (its tokens stop at once); 404 if not theirs."""
    result = await session.execute(
        update(AuthSession)
        .where(
            AuthSession.id == session_id,
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=now())
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise ResourceNotFoundError("Session", session_id)


def _last_activity(row: AuthSession) -> datetime:
    return row.last_used_at or row.signed_in_at or row.created_at
