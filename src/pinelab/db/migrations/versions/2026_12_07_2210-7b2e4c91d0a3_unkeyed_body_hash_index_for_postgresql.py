"""the duplicate-window index PostgreSQL can use: (strategy_id, body_hash), unkeyed rows only

PostgreSQL drops a qual the partial predicate implies (`idempotency_key IS NULL`) from the index
conditions, so with the key column second only `strategy_id` could lead the index and every
lookup scanned the strategy's rows: the planner chose a sequential scan (11-13 ms at 90,000
signals, growing with the table). Since issue 14 every alert is unkeyed and checked, so that was
on every batch. SQLite keeps its index: there the key column is what makes the planner prefer
it to the unique (strategy, key) index.

Revision ID: 7b2e4c91d0a3
Revises: 54e9d73e5b98
Create Date: 2026-12-07 22:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b2e4c91d0a3"
down_revision: str | None = "54e9d73e5b98"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNKEYED = sa.text("idempotency_key IS NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_signal_unkeyed_body_hash", table_name="signal")
    op.create_index(
        "ix_signal_unkeyed_strategy_body_hash",
        "signal",
        ["strategy_id", "body_hash"],
        unique=False,
        postgresql_where=UNKEYED,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_signal_unkeyed_strategy_body_hash", table_name="signal")
    op.create_index(
        "ix_signal_unkeyed_body_hash",
        "signal",
        ["strategy_id", "idempotency_key", "body_hash"],
        unique=False,
        postgresql_where=UNKEYED,
    )
