"""Tables of the trading package: orders, their history, fills, positions, reconciliation runs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pinelab.clock import now
from pinelab.db.base import Base, BigId, Money, UTCDateTime


class Order(Base):
    """An order PineLab placed (or tried to place) for one signal in one broker account."""

    __tablename__ = "trade_order"
    __table_args__ = (Index("ix_trade_order_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    signal_id: Mapped[int | None] = mapped_column(
        ForeignKey("signal.id", ondelete="SET NULL"), index=True
    )
    strategy_id: Mapped[int | None] = mapped_column(
        ForeignKey("strategy.id", ondelete="SET NULL"), index=True
    )
    broker_account_id: Mapped[int] = mapped_column(
        ForeignKey("broker_account.id", ondelete="CASCADE"), index=True
    )
    parent_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("trade_order.id", ondelete="CASCADE")
    )
    leg: Mapped[str | None] = mapped_column(String(16))  # take_profit | stop_loss for bracket legs
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    broker_order_id: Mapped[str | None] = mapped_column(String(128), index=True)
    ticker: Mapped[str] = mapped_column(String(64), index=True)
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    order_type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    limit_price: Mapped[Decimal | None] = mapped_column(Money)
    stop_price: Mapped[Decimal | None] = mapped_column(Money)
    trail_percent: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20), index=True)
    filled_quantity: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    average_fill_price: Mapped[Decimal | None] = mapped_column(Money)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When reconciliation told the owner the order is still open after an hour (once per order).
    pending_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OrderEvent(Base):
    """One step in an order's life: the status history."""

    __tablename__ = "order_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("trade_order.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Fill(Base):
    """An execution reported by the broker; the realized P&L it produced is kept with it."""

    __tablename__ = "fill"
    __table_args__ = (UniqueConstraint("order_id", "broker_fill_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    order_id: Mapped[int] = mapped_column(
        ForeignKey("trade_order.id", ondelete="CASCADE"), index=True
    )
    broker_account_id: Mapped[int] = mapped_column(
        ForeignKey("broker_account.id", ondelete="CASCADE")
    )
    strategy_id: Mapped[int | None] = mapped_column(ForeignKey("strategy.id", ondelete="SET NULL"))
    broker_fill_id: Mapped[str] = mapped_column(String(128))
    ticker: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal] = mapped_column(Money)
    commission: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    realized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    filled_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Position(Base):
    """A strategy's position in one ticker at one broker account (its sub-book)."""

    __tablename__ = "position"
    __table_args__ = (UniqueConstraint("broker_account_id", "strategy_id", "ticker"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    broker_account_id: Mapped[int] = mapped_column(
        ForeignKey("broker_account.id", ondelete="CASCADE")
    )
    strategy_id: Mapped[int | None] = mapped_column(ForeignKey("strategy.id", ondelete="SET NULL"))
    ticker: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    average_price: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    realized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    commissions: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    last_price: Mapped[Decimal | None] = mapped_column(Money)
    last_price_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class ReconciliationRun(Base):
    """One pass of the reconciler over broker accounts, and what it found and fixed."""

    __tablename__ = "reconciliation_run"
    __table_args__ = (Index("ix_reconciliation_run_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))  # periodic | manual
    status: Mapped[str] = mapped_column(String(16))  # running | finished | failed
    scope: Mapped[str] = mapped_column(String(16))  # all | user | account
    # Whose accounts the run covered (null: every user's) and who asked for it.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    broker_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("broker_account.id", ondelete="SET NULL")
    )
    requested_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    window_hours: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accounts: Mapped[int] = mapped_column(Integer, default=0)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    fills_recorded: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    drift: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
