"""Request and response bodies of the broker-accounts API.

Policy: every request body rejects unknown fields (`extra="forbid"`), so a misspelt field is a
422 naming it rather than a silently ignored setting; every string and number is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from pinelab.api.schemas import StrictBody
from pinelab.brokers.credentials import BrokerCredentials, exchange_facts, is_ccxt_exchange

# The kinds this build can create; each has its own member of `AccountSpec` below.
SUPPORTED_KINDS: tuple[str, ...] = ("paper", "alpaca", "ccxt")

MAX_CASH = Decimal("1e12")
MAX_COMMISSION = Decimal("1e6")
MAX_SLIPPAGE_BPS = Decimal(1000)

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
StartingCash = Annotated[Decimal, Field(gt=0, le=MAX_CASH, max_digits=30, decimal_places=8)]
Commission = Annotated[Decimal, Field(ge=0, le=MAX_COMMISSION, max_digits=24, decimal_places=8)]
SlippageBps = Annotated[Decimal, Field(ge=0, le=MAX_SLIPPAGE_BPS, max_digits=12, decimal_places=4)]


class PaperAccountCreate(StrictBody):
    """A simulated account filled by PineLab's own paper broker; unknown fields are rejected."""

    kind: Literal["paper"]
    label: Label
    paper: Literal[True] = True
    starting_cash: StartingCash = Decimal(100000)
    commission_per_order: Commission = Decimal(0)
    slippage_bps: SlippageBps = Decimal(0)


def _bounded_secret(low: int, high: int, pattern: str | None, rule: str) -> Callable[[Any], Any]:
    """Return a validator: strip a string, check its length (and pattern); never echo it."""
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            raise ValueError("must be a string")
        value = value.strip()
        if not low <= len(value) <= high or (compiled and not compiled.fullmatch(value)):
            raise ValueError(rule)
        return value

    return check


AlpacaKeyId = Annotated[
    SecretStr,
    BeforeValidator(
        _bounded_secret(16, 32, r"[A-Za-z0-9]+", "must be 16 to 32 letters and digits")
    ),
]
AlpacaSecret = Annotated[
    SecretStr,
    BeforeValidator(
        _bounded_secret(20, 64, r"[\x21-\x7e]+", "must be 20 to 64 characters without spaces")
    ),
]
ExchangeSecret = Annotated[
    SecretStr, BeforeValidator(_bounded_secret(1, 256, None, "must be 1 to 256 characters"))
]


class CredentialsBody(StrictBody):
    """Credentials as sent: write-only, never echoed; any value in an error is hidden."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    def to_credentials(self) -> BrokerCredentials:
        """Return the plain credentials to seal."""
        values = {name: getattr(self, name) for name in ("api_key", "api_secret", "password")}
        plain = {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in values.items()
        }
        return BrokerCredentials(**plain)


class AlpacaCredentials(CredentialsBody):
    """An Alpaca API key id ("PK…" for paper, "AK…" for live) and its secret."""

    api_key: AlpacaKeyId
    api_secret: AlpacaSecret
    password: None = None


class CcxtCredentials(CredentialsBody):
    """An exchange API key and secret, and the passphrase some exchanges (OKX…) require."""

    api_key: ExchangeSecret
    api_secret: ExchangeSecret
    password: ExchangeSecret | None = None


class AlpacaAccountCreate(StrictBody):
    """An Alpaca account (paper unless `paper` is false); unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    kind: Literal["alpaca"]
    label: Label
    paper: bool = True
    credentials: AlpacaCredentials

    @field_validator("credentials")
    @classmethod
    def _key_matches_mode(cls, value: AlpacaCredentials, info: ValidationInfo) -> AlpacaCredentials:
        # Alpaca issues paper key ids starting "PK" and live ones "AK": a mix-up is the usual 401.
        prefix = value.api_key.get_secret_value()[:2].upper()
        paper = info.data.get("paper", True)
        if paper and prefix == "AK":
            raise ValueError("api_key is a live key (AK…) but paper is true")
        if not paper and prefix == "PK":
            raise ValueError("api_key is a paper key (PK…) but paper is false")
        return value


class CcxtAccountCreate(StrictBody):
    """An account at an exchange ccxt supports; `paper` uses its sandbox."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    kind: Literal["ccxt"]
    label: Label
    exchange: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=40)]
    paper: bool = Field(True, validate_default=True)
    credentials: CcxtCredentials

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        if not is_ccxt_exchange(value):
            raise ValueError("is not an exchange ccxt supports (see ccxt.exchanges)")
        unsupported = exchange_facts(value).unsupported_credentials
        if unsupported:
            raise ValueError(f"needs {', '.join(unsupported)}, which PineLab does not support")
        return value

    @field_validator("paper")
    @classmethod
    def _sandbox_exists(cls, value: bool, info: ValidationInfo) -> bool:
        exchange = info.data.get("exchange")
        if value and exchange and not exchange_facts(exchange).has_sandbox:
            raise ValueError(f"{exchange} has no sandbox: set paper to false for a live account")
        return value

    @field_validator("credentials")
    @classmethod
    def _password_if_needed(cls, value: CcxtCredentials, info: ValidationInfo) -> CcxtCredentials:
        exchange = info.data.get("exchange")
        if exchange and value.password is None and exchange_facts(exchange).needs_password:
            raise ValueError(f"{exchange} needs a password (the API key's passphrase)")
        return value


def _tag_free_errors(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate, then report errors by field name: `kind` for an unknown kind, no tag prefix."""
    try:
        return handler(value)
    except ValidationError as exc:
        details = [_renamed(error, value) for error in exc.errors()]
        raise ValidationError.from_exception_data(exc.title, details) from None


def _renamed(error: Any, value: Any) -> InitErrorDetails:
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(SUPPORTED_KINDS)
        message = PydanticCustomError(
            "unsupported_kind", "must be one of: {kinds}", {"kinds": kinds}
        )
        return InitErrorDetails(type=message, loc=("kind",), input=value)
    location = tuple(error["loc"])
    if location and location[0] in SUPPORTED_KINDS:
        location = location[1:]
    return InitErrorDetails(
        type=PydanticCustomError(error["type"], error["msg"]), loc=location, input=error["input"]
    )


# Another kind joins by adding its model to this union (and its name to SUPPORTED_KINDS).
AccountSpec = Annotated[
    PaperAccountCreate | AlpacaAccountCreate | CcxtAccountCreate,
    Field(discriminator="kind"),
    WrapValidator(_tag_free_errors),
]


class BrokerAccountCreate(RootModel[AccountSpec]):
    """A new broker account, chosen by `kind`; unknown fields are rejected."""


class CredentialsUpdate(CredentialsBody):
    """New credentials for an Alpaca or CCXT account; checked against the account's kind."""

    api_key: ExchangeSecret
    api_secret: ExchangeSecret
    password: ExchangeSecret | None = None


class BrokerAccountUpdate(StrictBody):
    """Changes to a broker account; omitted fields stay as they are, unknown fields are rejected.

    Costs and `starting_cash` belong to paper accounts (cash only while it has no orders);
    `credentials` to Alpaca and CCXT accounts, replacing the stored ones whole.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    label: Label | None = None
    starting_cash: StartingCash | None = None
    commission_per_order: Commission | None = None
    slippage_bps: SlippageBps | None = None
    credentials: CredentialsUpdate | None = None

    @field_validator(
        "label", "starting_cash", "commission_per_order", "slippage_bps", "credentials"
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; omit the field to keep it")
        return value


class BrokerAccountRead(BaseModel):
    """A broker account as the API shows it: credentials never appear, only their hint."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    exchange: str | None = None
    label: str
    paper: bool
    starting_cash: Decimal
    commission_per_order: Decimal
    slippage_bps: Decimal
    credentials_hint: str | None = None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _split_kind(cls, data: Any) -> Any:
        """Show a stored kind "ccxt:<exchange>" as kind "ccxt" plus `exchange`."""
        values = (
            dict(data)
            if isinstance(data, dict)
            else {name: getattr(data, name, None) for name in cls.model_fields}
        )
        kind, _, exchange = str(values.get("kind", "")).partition(":")
        if exchange:
            values["kind"], values["exchange"] = kind, exchange
        return values


class BrokerAccountCheck(BaseModel):
    """The outcome of a connectivity check: what failed, if anything, and how long it took."""

    ok: bool
    error: str | None = None
    message: str
    retryable: bool = False
    latency_ms: int
    checked_at: datetime
