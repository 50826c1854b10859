"""Query filters and response bodies of the signal log API.

Every query parameter is bounded. Times are ISO 8601; a time without an offset is read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pinelab.api.schemas import QueryFilters
from pinelab.brokers.symbols import checked_ticker

MAX_ID = 2**63 - 1

SignalStatus = Literal["accepted", "rejected", "duplicate", "executed", "failed"]

# The passphrase value in a JSON body (string or bare) or in a text alert's key=value option.


def _as_utc(value: datetime) -> datetime:
    """Read a naive time as UTC and move an aware one to UTC."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("time is out of range") from exc


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
# Filters take a ticker as alerts do and look up its canonical form ("BINANCE:btcusdt" → BTCUSDT).
Ticker = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(checked_ticker)]


class SignalFilters(QueryFilters):
    """Which signals to list; every filter is optional and they combine with AND."""

    strategy_id: RowId | None = Field(None, description="Only this strategy's signals")
    status: SignalStatus | None = Field(None, description="Only signals in this status")
    ticker: Ticker | None = Field(None, description="Only signals for this ticker (exact)")
    received_from: UtcDateTime | None = Field(
        None, description="Received at or after this time (ISO 8601; UTC when no offset)"
    )
    received_to: UtcDateTime | None = Field(
        None, description="Received before this time (ISO 8601; UTC when no offset)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> SignalFilters:
        if self.received_from and self.received_to and self.received_from > self.received_to:
            raise ValueError("received_from must not be after received_to")
        return self


class SignalRead(BaseModel):
    """One alert as received, and what became of it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    strategy_id: int
    received_at: datetime
    source_ip: str | None
    content_type: str | None
    status: str = Field(description="accepted, rejected, duplicate, executed or failed")
    reason: str | None
    ticker: str | None
    action: str | None
    intent: dict[str, Any] | None = Field(description="The parsed alert (no passphrase)")
    duplicate_of_id: int | None
    executed_at: datetime | None
    raw_body: str = Field(
        description="The body as received; a passphrase value is redacted before it is stored"
    )
