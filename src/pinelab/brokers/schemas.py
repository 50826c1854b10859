"""Request and response bodies of the broker-accounts API.

Policy: every request body rejects unknown fields (`extra="forbid"`), so a misspelt field is a
422 naming it rather than a silently ignored setting; every string and number is bounded.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

# The kinds this build can create; each has its own member of `AccountSpec` below.
SUPPORTED_KINDS: tuple[str, ...] = ("paper",)

MAX_CASH = Decimal("1e12")
MAX_COMMISSION = Decimal("1e6")
MAX_SLIPPAGE_BPS = Decimal(1000)

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
StartingCash = Annotated[Decimal, Field(gt=0, le=MAX_CASH, max_digits=30, decimal_places=8)]
Commission = Annotated[Decimal, Field(ge=0, le=MAX_COMMISSION, max_digits=24, decimal_places=8)]
SlippageBps = Annotated[Decimal, Field(ge=0, le=MAX_SLIPPAGE_BPS, max_digits=12, decimal_places=4)]


class StrictBody(BaseModel):
    """A request body: unknown fields are rejected (422 naming the field)."""

    model_config = ConfigDict(extra="forbid")


class PaperAccountCreate(StrictBody):
    """A simulated account filled by PineLab's own paper broker; unknown fields are rejected."""

    kind: Literal["paper"]
    label: Label
    paper: Literal[True] = True
    starting_cash: StartingCash = Decimal(100000)
    commission_per_order: Commission = Decimal(0)
    slippage_bps: SlippageBps = Decimal(0)


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
    PaperAccountCreate, Field(discriminator="kind"), WrapValidator(_tag_free_errors)
]


class BrokerAccountCreate(RootModel[AccountSpec]):
    """A new broker account, chosen by `kind`; unknown fields are rejected."""


class BrokerAccountUpdate(StrictBody):
    """Changes to a broker account; omitted fields stay as they are, unknown fields are rejected.

    `starting_cash` can change only while the account has no orders.
    """

    label: Label | None = None
    starting_cash: StartingCash | None = None
    commission_per_order: Commission | None = None
    slippage_bps: SlippageBps | None = None

    @field_validator("label", "starting_cash", "commission_per_order", "slippage_bps")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; omit the field to keep it")
        return value


class BrokerAccountRead(BaseModel):
    """A broker account as the API shows it (credentials never appear)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    label: str
    paper: bool
    starting_cash: Decimal
    commission_per_order: Decimal
    slippage_bps: Decimal
    credentials_hint: str | None = None
    created_at: datetime
    updated_at: datetime
