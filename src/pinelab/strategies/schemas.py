"""Request and response bodies of the strategies API.

Policy: every request body rejects unknown fields (`extra="forbid"`), so a misspelt setting is a
422 naming it rather than silently ignored; every string, list and number is bounded. The
passphrase is write-only and the webhook token appears only in the answer that issues it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from pinelab.api.schemas import StrictBody
from pinelab.brokers.symbols import checked_ticker
from pinelab.signals.intent import QuantityType
from pinelab.strategies.models import DEFAULT_DUPLICATE_WINDOW_SECONDS, Strategy

MAX_ID = 2**63 - 1
MAX_BROKER_ACCOUNTS = 20
MAX_ALLOWED_SYMBOLS = 500
MAX_AMOUNT = Decimal("1e12")
MAX_DUPLICATE_WINDOW_SECONDS = 86400

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Passphrase = Annotated[str, StringConstraints(min_length=8, max_length=128)]
# Kept in the canonical form alerts are read into (brokers/symbols.py): "NASDAQ:aapl" is AAPL.
Ticker = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(checked_ticker),
]
Amount = Annotated[Decimal, Field(gt=0, le=MAX_AMOUNT, max_digits=30, decimal_places=12)]
DuplicateWindow = Annotated[int, Field(ge=0, le=MAX_DUPLICATE_WINDOW_SECONDS)]


Item = TypeVar("Item", int, str)


def _unique(values: list[Item]) -> list[Item]:
    """Drop repeats, keeping the first occurrence's place."""
    return list(dict.fromkeys(values))


BrokerAccountIds = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_ID)]],
    Field(min_length=1, max_length=MAX_BROKER_ACCOUNTS),
    AfterValidator(_unique),
]
AllowedSymbols = Annotated[
    list[Ticker], Field(min_length=1, max_length=MAX_ALLOWED_SYMBOLS), AfterValidator(_unique)
]


class SizingType(StrEnum):
    """The quantity types that can be a strategy's default rule (a subset of QuantityType)."""

    FIXED = QuantityType.FIXED.value
    NOTIONAL = QuantityType.NOTIONAL.value
    PERCENT_OF_EQUITY = QuantityType.PERCENT_OF_EQUITY.value


class SizingRule(StrictBody):
    """How much to trade when an alert carries no quantity; unknown fields are rejected.

    `fixed` is a quantity, `notional` an amount of cash, `percent_of_equity` a percent (<= 100).
    The alert-only kinds (`percent_of_position`, `risk_amount`) need what only an alert says (a
    position to take a share of, a stop loss), so they are no default rule.
    """

    type: SizingType
    value: Amount

    @field_validator("value")
    @classmethod
    def _percent_at_most_hundred(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        if info.data.get("type") is SizingType.PERCENT_OF_EQUITY and value > 100:
            raise ValueError("a percent_of_equity value must be at most 100")
        return value


class StrategyCreate(StrictBody):
    """A new strategy (webhook endpoint); unknown fields are rejected."""

    name: Name
    broker_account_ids: BrokerAccountIds
    sizing: SizingRule
    enabled: bool = True
    duplicate_window_seconds: DuplicateWindow = Field(
        DEFAULT_DUPLICATE_WINDOW_SECONDS,
        description="An unkeyed alert whose identical body arrived this many seconds before "
        "is a duplicate (0: none is); an alert with an idempotency_key is deduped by the key",
    )
    passphrase: Passphrase | None = Field(None, description="Write-only second secret")
    allowed_symbols: AllowedSymbols | None = None
    max_position_quantity: Amount | None = None


class StrategyUpdate(StrictBody):
    """Changes to a strategy; omitted fields stay, unknown fields are rejected.

    `passphrase`, `allowed_symbols` and `max_position_quantity` are cleared with null.
    """

    name: Name | None = None
    broker_account_ids: BrokerAccountIds | None = None
    sizing: SizingRule | None = None
    enabled: bool | None = None
    duplicate_window_seconds: DuplicateWindow | None = None
    passphrase: Passphrase | None = Field(None, description="Write-only; null clears it")
    allowed_symbols: AllowedSymbols | None = None
    max_position_quantity: Amount | None = None

    @field_validator("name", "broker_account_ids", "sizing", "enabled", "duplicate_window_seconds")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; omit the field to keep it")
        return value


class StrategyRead(BaseModel):
    """A strategy as the API shows it: never the token or the passphrase."""

    id: int
    name: str
    broker_account_ids: list[int]
    sizing: SizingRule
    enabled: bool
    duplicate_window_seconds: int
    has_passphrase: bool
    allowed_symbols: list[str] | None
    max_position_quantity: Decimal | None
    token_hint: str = Field(description="The token's first characters, to tell tokens apart")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, strategy: Strategy) -> Self:
        """Build the read view of a stored strategy."""
        return cls(
            id=strategy.id,
            name=strategy.name,
            broker_account_ids=strategy.broker_account_ids,
            sizing=SizingRule(type=SizingType(strategy.sizing_type), value=strategy.sizing_value),
            enabled=strategy.enabled,
            duplicate_window_seconds=strategy.duplicate_window_seconds,
            has_passphrase=strategy.passphrase_hash is not None,
            allowed_symbols=strategy.allowed_symbols,
            max_position_quantity=strategy.max_position_quantity,
            token_hint=strategy.token_hint,
            created_at=strategy.created_at,
            updated_at=strategy.updated_at,
        )


class StrategyCreated(StrategyRead):
    """A strategy with its webhook token and URL: shown in this answer only, never again."""

    token: str
    webhook_url: str

    @classmethod
    def issued(cls, strategy: Strategy, *, token: str, base_url: str) -> Self:
        """Build the one answer that carries a freshly issued token."""
        read = StrategyRead.from_model(strategy)
        return cls(**read.model_dump(), token=token, webhook_url=f"{base_url}/webhooks/{token}")
