"""Tables of the strategies package."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pinelab.clock import now
from pinelab.db.base import Base, BigId, Money, UTCDateTime

# TradingView resends an alert's identical body 5 s after a 5xx, at most 3 times (its support
# page "Webhook resubmission"): a minute covers the resends with their 3 s timeouts.
DEFAULT_DUPLICATE_WINDOW_SECONDS = 60


class Strategy(Base):
    """A webhook endpoint: its alerts fan out to every bound broker account."""

    __tablename__ = "strategy"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_hint: Mapped[str] = mapped_column(String(16))
    passphrase_hash: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    sizing_type: Mapped[str] = mapped_column(String(24), default="fixed")
    sizing_value: Mapped[Decimal] = mapped_column(Money, default=Decimal(1))
    duplicate_window_seconds: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_DUPLICATE_WINDOW_SECONDS
    )
    allowed_symbols: Mapped[list[str] | None] = mapped_column(JSON)
    max_position_quantity: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    bindings: Mapped[list[StrategyBrokerAccount]] = relationship(
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="StrategyBrokerAccount.broker_account_id",
    )

    @property
    def broker_account_ids(self) -> list[int]:
        """Return the ids of the bound broker accounts."""
        return [binding.broker_account_id for binding in self.bindings]


class StrategyBrokerAccount(Base):
    """A binding: alerts of the strategy place orders in this broker account."""

    __tablename__ = "strategy_broker_account"

    strategy_id: Mapped[int] = mapped_column(
        ForeignKey("strategy.id", ondelete="CASCADE"), primary_key=True
    )
    broker_account_id: Mapped[int] = mapped_column(
        ForeignKey("broker_account.id", ondelete="CASCADE"), primary_key=True
    )
