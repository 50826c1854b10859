"""partial index for the duplicate-window check

The window check looks up earlier unkeyed alerts by (strategy, body hash). Indexing only rows
without an idempotency key keeps keyed alerts (TradingView's `id` + `time`) from updating a
random-order index on every webhook, which costs a page write per alert in each commit. The
key column (NULL in every entry) makes SQLite's planner prefer it to the unique (strategy, key)
index for the check's `idempotency_key IS NULL`.

Revision ID: 53d17d249851
Revises: b8a65f7fc0e6
Create Date: 2026-11-25 22:07:04.681490
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "53d17d249851"
down_revision: str | None = "b8a65f7fc0e6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNKEYED = sa.text("idempotency_key IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("signal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signal_strategy_id_body_hash"))
        batch_op.create_index(
            "ix_signal_unkeyed_body_hash",
            ["strategy_id", "idempotency_key", "body_hash"],
            unique=False,
            sqlite_where=UNKEYED,
            postgresql_where=UNKEYED,
        )


def downgrade() -> None:
    with op.batch_alter_table("signal", schema=None) as batch_op:
        batch_op.drop_index("ix_signal_unkeyed_body_hash")
        batch_op.create_index(
            batch_op.f("ix_signal_strategy_id_body_hash"),
            ["strategy_id", "body_hash"],
            unique=False,
        )
