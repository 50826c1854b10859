"""two factor and session activity

TOTP 2FA (the secret sealed in the vault, hashed one-time backup codes, single-use login
challenges) and, on each refresh session, when its login began and when it was last used.

Revision ID: 1726a0569ac7
Revises: c3f1a9d27e45
Create Date: 2026-12-07 20:31:02.604089
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pinelab.db.base

revision: str = "1726a0569ac7"
down_revision: str | None = "c3f1a9d27e45"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_challenge",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("challenge_hash", sa.String(length=64), nullable=False),
        sa.Column("password_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", pinelab.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", pinelab.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", pinelab.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_login_challenge_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_challenge")),
        sa.UniqueConstraint("challenge_hash", name=op.f("uq_login_challenge_challenge_hash")),
    )
    with op.batch_alter_table("login_challenge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_challenge_user_id"), ["user_id"], unique=False)

    op.create_table(
        "two_factor",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("enabled_at", pinelab.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("created_at", pinelab.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_two_factor_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_two_factor")),
        sa.UniqueConstraint("user_id", name=op.f("uq_two_factor_user_id")),
    )
    op.create_table(
        "two_factor_backup_code",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code_hash", sa.String(length=97), nullable=False),
        sa.Column("used_at", pinelab.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", pinelab.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_two_factor_backup_code_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_two_factor_backup_code")),
    )
    with op.batch_alter_table("two_factor_backup_code", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_two_factor_backup_code_user_id"), ["user_id"], unique=False
        )

    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("signed_in_at", pinelab.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("last_used_at", pinelab.db.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("signed_in_at")

    with op.batch_alter_table("two_factor_backup_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_two_factor_backup_code_user_id"))

    op.drop_table("two_factor_backup_code")
    op.drop_table("two_factor")
    with op.batch_alter_table("login_challenge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_challenge_user_id"))

    op.drop_table("login_challenge")
