"""Tables of the signals package: every alert received, accepted or not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from pinelab.clock import now
from pinelab.db.base import Base, BigId, UTCDateTime


class Signal(Base):
    """One alert as received: raw body, source, parsed intent and what became of it."""

    __tablename__ = "signal"
    __table_args__ = (
        UniqueConstraint("strategy_id", "idempotency_key"),
        Index("ix_signal_user_id_id", "user_id", "id"),
        # The duplicate-window check looks up unkeyed alerts only (a keyed alert is a repeat by
        # its key): partial, so keyed alerts skip a random-order insert on every webhook. The
        # (always NULL) key column makes it the planner's choice over the unique index above.
        Index(
            "ix_signal_unkeyed_body_hash",
            "strategy_id",
            "idempotency_key",
            "body_hash",
            sqlite_where=text("idempotency_key IS NULL"),
            postgresql_where=text("idempotency_key IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategy.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(100))
    raw_body: Mapped[str] = mapped_column(Text)
    body_hash: Mapped[str] = mapped_column(String(64))
    intent: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ticker: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    duplicate_of_id: Mapped[int | None] = mapped_column(BigId)
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
