"""Query filters and response bodies of the orders, fills, positions and P&L API.

Money and quantities are exact decimals and appear in JSON as strings ("100.5", not 100.5), so
no client loses precision to binary floating point. Times are ISO 8601 in UTC; a filter time
without an offset is read as UTC. Every query parameter is bounded.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pinelab.api.schemas import QueryFilters
from pinelab.brokers.base import OrderStatus
from pinelab.signals.schemas import RowId, Ticker, UtcDateTime

PnlGroup = Literal["account", "strategy", "day"]
DEFAULT_PNL_GROUPS: tuple[PnlGroup, ...] = ("account", "strategy")
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(9999, 12, 30)


class _TimeRange(QueryFilters):
    """A half-open time range [from, to) on the row's own timestamp."""

    def _check_range(self, start: datetime | None, end: datetime | None) -> None:
        if start is not None and end is not None and start > end:
            raise ValueError("the range's start must not be after its end")


class OrderFilters(_TimeRange):
    """Which orders to list; every filter is optional and they combine with AND."""

    strategy_id: RowId | None = Field(None, description="Only this strategy's orders")
    broker_account_id: RowId | None = Field(None, description="Only orders in this account")
    ticker: Ticker | None = Field(None, description="Only orders for this ticker (exact)")
    status: OrderStatus | None = Field(None, description="Only orders in this status")
    signal_id: RowId | None = Field(None, description="Only orders placed for this signal")
    created_from: UtcDateTime | None = Field(None, description="Created at or after this time")
    created_to: UtcDateTime | None = Field(None, description="Created before this time")

    @model_validator(mode="after")
    def _ordered(self) -> OrderFilters:
        self._check_range(self.created_from, self.created_to)
        return self


class FillFilters(_TimeRange):
    """Which fills to list; every filter is optional and they combine with AND."""

    strategy_id: RowId | None = Field(None, description="Only this strategy's fills")
    broker_account_id: RowId | None = Field(None, description="Only fills in this account")
    ticker: Ticker | None = Field(None, description="Only fills in this ticker (exact)")
    order_id: RowId | None = Field(None, description="Only fills of this order")
    filled_from: UtcDateTime | None = Field(None, description="Filled at or after this time")
    filled_to: UtcDateTime | None = Field(None, description="Filled before this time")

    @model_validator(mode="after")
    def _ordered(self) -> FillFilters:
        self._check_range(self.filled_from, self.filled_to)
        return self


class PositionFilters(QueryFilters):
    """Which positions to list."""

    broker_account_id: RowId | None = Field(None, description="Only positions in this account")
    strategy_id: RowId | None = Field(None, description="Only this strategy's positions")
    ticker: Ticker | None = Field(None, description="Only positions in this ticker (exact)")
    include_flat: bool = Field(False, description="Also list positions whose quantity is 0")


class PnlQuery(QueryFilters):
    """Which P&L to report and how to break it down (unknown parameters are ignored)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    broker_account_id: RowId | None = Field(None, description="Only this account")
    strategy_id: RowId | None = Field(None, description="Only this strategy")
    from_date: date | None = Field(
        None,
        alias="from",
        ge=EARLIEST_DATE,
        le=LATEST_DATE,
        description="First UTC day of realized P&L (inclusive)",
    )
    to_date: date | None = Field(
        None,
        alias="to",
        ge=EARLIEST_DATE,
        le=LATEST_DATE,
        description="Last UTC day of realized P&L (inclusive)",
    )
    group_by: list[PnlGroup] = Field(
        default_factory=lambda: list(DEFAULT_PNL_GROUPS),
        max_length=3,
        description="Breakdowns to include (repeat the parameter); default account and strategy",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PnlQuery:
        if self.from_date and self.to_date and self.from_date > self.to_date:
            raise ValueError("from must not be after to")
        return self


class OrderRead(BaseModel):
    """An order PineLab placed (or tried to place) for a signal in one broker account."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    signal_id: int | None
    strategy_id: int | None
    broker_account_id: int
    parent_order_id: int | None
    leg: str | None = Field(description="take_profit or stop_loss for a bracket leg")
    client_order_id: str = Field(description="PineLab's id for the order: the idempotency key")
    broker_order_id: str | None = Field(description="The venue's id for the order")
    ticker: str
    symbol: str = Field(description="The ticker as the broker spells it")
    status: OrderStatus
    side: str
    order_type: str
    time_in_force: str
    quantity: Decimal
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_percent: Decimal | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None


class OrderEventRead(BaseModel):
    """One step in an order's life."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str
    from_status: str | None
    to_status: str
    detail: dict[str, Any] | None
    occurred_at: datetime


class FillRead(BaseModel):
    """One execution reported by the broker, with the realized P&L it produced."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    order_id: int
    broker_account_id: int
    strategy_id: int | None
    broker_fill_id: str
    ticker: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    realized_pnl: Decimal = Field(description="P&L this fill realized (gross of commission)")
    filled_at: datetime


class OrderDetail(OrderRead):
    """An order with its status history (oldest first) and its fills."""

    history: list[OrderEventRead]
    fills: list[FillRead]


class PositionRead(BaseModel):
    """A strategy's position in one ticker at one broker account (negative quantity is short)."""

    ticker: str
    broker_account_id: int
    strategy_id: int | None
    quantity: Decimal
    average_price: Decimal
    realized_pnl: Decimal = Field(description="Realized so far, gross of commissions")
    commissions: Decimal
    last_price: Decimal | None = Field(description="The last known price")
    last_price_at: datetime | None
    unrealized_pnl: Decimal | None = Field(description="At the last price; null with no price")
    market_value: Decimal | None = Field(description="quantity × last price; null with no price")
    updated_at: datetime


class PnlAmounts(BaseModel):
    """P&L figures; net is realized plus unrealized less commissions."""

    realized_pnl: Decimal
    unrealized_pnl: Decimal
    commissions: Decimal
    net_pnl: Decimal


class AccountPnl(PnlAmounts):
    """P&L of one broker account."""

    broker_account_id: int


class StrategyPnl(PnlAmounts):
    """P&L of one strategy (null id: orders of a strategy since deleted)."""

    strategy_id: int | None


class DayPnl(BaseModel):
    """Realized P&L and commissions of fills on one UTC day."""

    day: date
    realized_pnl: Decimal
    commissions: Decimal
    net_pnl: Decimal = Field(description="realized less commissions")


class PnlReport(BaseModel):
    """Totals and the breakdowns asked for (null when not asked for).

    Realized P&L and commissions come from fills in the date range. Unrealized P&L marks the
    open positions at their last known price as of now, so it counts only when the range
    reaches today (no `to`, or `to` on or after today); a position with no price adds 0.
    """

    totals: PnlAmounts
    by_account: list[AccountPnl] | None = None
    by_strategy: list[StrategyPnl] | None = None
    by_day: list[DayPnl] | None = None


class ReconciliationRunCreate(BaseModel):
    """Reconcile your accounts now: all of them, or one."""

    model_config = ConfigDict(extra="forbid")

    broker_account_id: RowId | None = Field(None, description="Only this account of yours")


class AdminReconciliationRunCreate(BaseModel):
    """Reconcile now: every user's accounts, one user's, or one account."""

    model_config = ConfigDict(extra="forbid")

    user_id: RowId | None = Field(None, description="Only this user's accounts")
    broker_account_id: RowId | None = Field(None, description="Only this account")


class ReconciliationRunRead(BaseModel):
    """One reconciliation pass: what it checked, what it fixed, what needs a human."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    trigger: Literal["periodic", "manual"]
    status: Literal["running", "finished", "failed"]
    scope: Literal["all", "user", "account"]
    user_id: int | None = Field(description="Whose accounts (null: every user's)")
    broker_account_id: int | None = Field(description="The one account reconciled, if one")
    requested_by: int | None = Field(description="Who asked (null: the periodic job)")
    window_hours: float = Field(description="Working orders created this far back were checked")
    started_at: datetime
    finished_at: datetime | None
    accounts: int = Field(description="Broker accounts visited")
    checked: int = Field(description="Orders the broker was asked about")
    updated: int = Field(description="Orders whose status, fills or broker id changed")
    fills_recorded: int = Field(description="Fills that were missing and are now recorded")
    flagged: int = Field(description="Orders still working more than an hour after creation")
    drift: int = Field(description="Symbols where our position differs from the broker's")
    errors: int = Field(description="Failures (per account or per order); the run went on")
    details: dict[str, Any] = Field(
        description="Per account: changes, unresolved, flagged, drift (symbol, ours, broker,"
        " difference) and errors"
    )
