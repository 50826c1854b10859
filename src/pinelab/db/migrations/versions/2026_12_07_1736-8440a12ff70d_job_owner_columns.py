"""job owner columns

A job row names its owner (user and strategy, either may be empty), so the queue writes a dead
letter's owner from the row instead of reading the domain's tables. No index: nothing looks
jobs up by owner, and every index is one more write per queued alert.

Revision ID: 8440a12ff70d
Revises: 53d17d249851
Create Date: 2026-12-07 17:36:28.965190
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8440a12ff70d"
down_revision: str | None = "53d17d249851"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("retry_queue", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "strategy_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_retry_queue_strategy_id_strategy"),
            "strategy",
            ["strategy_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_retry_queue_user_id_user_account"),
            "user_account",
            ["user_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("retry_queue", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_retry_queue_user_id_user_account"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_retry_queue_strategy_id_strategy"), type_="foreignkey"
        )
        batch_op.drop_column("strategy_id")
        batch_op.drop_column("user_id")
