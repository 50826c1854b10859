"""default duplicate window

Duplicates are now decided by the sender's explicit `idempotency_key`, or for an unkeyed alert
by its identical body within the strategy's duplicate window: `id` and `time` no longer form a
key. Strategies still at the old default window (0, which left resends of unkeyed alerts
undetected and relied on `id`/`time` keys) get the new default of 60 seconds, so a TradingView
resend after a 5xx stays a duplicate after the upgrade. Keys stored before stay in the unique
index; no new alert produces them.

Revision ID: c3f1a9d27e45
Revises: 8440a12ff70d
Create Date: 2026-12-07 20:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3f1a9d27e45"
down_revision: str | None = "8440a12ff70d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_WINDOW_SECONDS = 60

_strategy = sa.table("strategy", sa.column("duplicate_window_seconds", sa.Integer()))


def upgrade() -> None:
    op.execute(
        _strategy.update()
        .where(_strategy.c.duplicate_window_seconds == 0)
        .values(duplicate_window_seconds=DEFAULT_WINDOW_SECONDS)
    )


def downgrade() -> None:
    # Which strategies chose 60 themselves is not recorded: the windows stay as they are.
    pass
