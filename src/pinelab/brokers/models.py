"""Tables of the brokers package: broker accounts and the paper broker's own books."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pinelab.clock import now
from pinelab.db.base import Base, BigId, Money, UTCDateTime


class BrokerAccount(Base):
    """A user's account at a broker; PineLab places orders in it."""

    __tablename__ = "broker_account"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(64))  # paper | alpaca | ccxt:<exchange id>
    label: Mapped[str] = mapped_column(String(100))
    paper: Mapped[bool] = mapped_column(Boolean, default=True)
    starting_cash: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    commission_per_order: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    slippage_bps: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    credentials_hint: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaperAccount(Base):
    """The paper broker's cash for one broker account."""

    __tablename__ = "paper_account"

    broker_account_id: Mapped[int] = mapped_column(
        ForeignKey("broker_account.id", ondelete="CASCADE"), primary_key=True
    )
    cash: Mapped[Decimal] = mapped_column(Money)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class PaperOrder(Base):
    """An order as the paper broker (the venue) knows it."""

    __tablename__ = "paper_order"
    __table_args__ = (UniqueConstraint("broker_account_id", "client_order_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    broker_account_id: Mapped[int] = mapped_column(
        ForeignKey("broker_account.id", ondelete="CASCADE"), index=True
    )
    broker_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_order_id: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    order_type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    limit_price: Mapped[Decimal | None] = mapped_column(Money)
    stop_price: Mapped[Decimal | None] = mapped_column(Money)
    trail_percent: Mapped[Decimal | None] = mapped_column(Money)
    trail_reference: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20), index=True)
    filled_quantity: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    average_fill_price: Mapped[Decimal | None] = mapped_column(Money)
    reject_reason: Mapped[str | None] = mapped_column(String(255))
    parent_broker_order_id: Mapped[str | None] = mapped_column(String(64))
    oco_group: Mapped[str | None] = mapped_column(String(64))
    # A stop_limit order works as a limit once its stop has been touched.
    triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bracket legs to place once this entry fills.
    take_profit_price: Mapped[Decimal | None] = mapped_column(Money)
    stop_loss_type: Mapped[str | None] = mapped_column(String(16))
    stop_loss_price: Mapped[Decimal | None] = mapped_column(Money)
    stop_loss_limit_price: Mapped[Decimal | None] = mapped_column(Money)
    stop_loss_trail_percent: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class PaperFill(Base):
    """An execution by the paper broker."""

    __tablename__ = "paper_fill"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    broker_account_id: Mapped[int] = mapped_column(
        ForeignKey("broker_account.id", ondelete="CASCADE"), index=True
    )
    paper_order_id: Mapped[int] = mapped_column(ForeignKey("paper_order.id", ondelete="CASCADE"))
    broker_fill_id: Mapped[str] = mapped_column(String(64), unique=True)
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal] = mapped_column(Money)
    commission: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    filled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)


class PaperPosition(Base):
    """The paper broker's net position in one symbol."""

    __tablename__ = "paper_position"
    __table_args__ = (UniqueConstraint("broker_account_id", "symbol"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    broker_account_id: Mapped[int] = mapped_column(
        ForeignKey("broker_account.id", ondelete="CASCADE"), index=True
    )
    symbol: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Money)
    average_price: Mapped[Decimal] = mapped_column(Money)


class PaperQuote(Base):
    """The last price the paper broker saw for a symbol (from an alert)."""

    __tablename__ = "paper_quote"
    __table_args__ = (UniqueConstraint("broker_account_id", "symbol"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    broker_account_id: Mapped[int] = mapped_column(
        ForeignKey("broker_account.id", ondelete="CASCADE"), index=True
    )
    symbol: Mapped[str] = mapped_column(String(64))
    price: Mapped[Decimal] = mapped_column(Money)
    quoted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
