"""AlertIntent: what an alert asks for, once parsed and validated (see ../shared/ALERTS.md)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pinelab.brokers.base import OrderType, TimeInForce


class Action(StrEnum):
    """What the alert wants done in its ticker."""

    BUY = "buy"
    SELL = "sell"
    EXIT = "exit"
    CANCEL = "cancel"
    ADD = "add"


class QuantityType(StrEnum):
    """How `quantity` is to be read."""

    FIXED = "fixed"
    NOTIONAL = "notional"
    PERCENT_OF_EQUITY = "percent_of_equity"
    PERCENT_OF_POSITION = "percent_of_position"  # of the open position in the ticker
    RISK_AMOUNT = "risk_amount"  # money lost if the stop loss is hit: amount / |entry - stop|


class Sentiment(StrEnum):
    """The strategy's market position after the alert."""

    LONG = "long"
    SHORT = "short"
    FLAT = "flat"


@dataclass(frozen=True)
class ExitTarget:
    """A take-profit or stop-loss given as a price, a percent or an amount from the entry."""

    price: Decimal | None = None
    percent: Decimal | None = None
    amount: Decimal | None = None
    order_type: OrderType = OrderType.STOP
    limit_price: Decimal | None = None


@dataclass(frozen=True)
class AlertIntent:
    """A parsed alert. `passphrase` is checked at ingest and never stored."""

    ticker: str
    action: Action
    quantity: Decimal | None = None
    quantity_type: QuantityType = QuantityType.FIXED
    price: Decimal | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    take_profit: ExitTarget | None = None
    stop_loss: ExitTarget | None = None
    sentiment: Sentiment | None = None
    position_size: Decimal | None = None
    alert_id: str | None = None
    alert_time: str | None = None
    # The sender's explicit key: the same strategy and key twice is a duplicate. `id` and
    # `time` are never keys: Pine's order id and a time to the second repeat between alerts.
    idempotency_key: str | None = None
    passphrase: str | None = None
    dialect: str | None = None  # the service whose message this was, when not PineLab's own

    @classmethod
    def of(cls, values: dict[str, Any]) -> AlertIntent:
        """Build an intent from a value for every field, as the parser does for every alert.

        The same object as `AlertIntent(**values)`, built without the frozen dataclass's
        `__init__`, which sets each of the 18 fields through `object.__setattr__` (measured at
        a sixth of the parser's time).
        """
        if values.keys() != _FIELD_NAMES:
            missing = sorted(_FIELD_NAMES - values.keys())
            unknown = sorted(values.keys() - _FIELD_NAMES)
            raise TypeError(f"AlertIntent.of: missing {missing}, unknown {unknown}")
        intent = object.__new__(cls)
        intent.__dict__.update(values)
        return intent

    @property
    def order_price(self) -> Decimal | None:
        """The price the order trades at, as sizing and venue limits read it: a limit (or stop
        limit) order's limit price, a stop order's stop price, else the alert's price."""
        if self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            return self.limit_price
        if self.order_type is OrderType.STOP:
            return self.stop_price
        return self.price

    def to_record(self) -> dict[str, Any]:
        """Return a JSON-ready dict for the signal log, without the passphrase."""
        # A copy of the fields converted by kind, not dataclasses.asdict (which deep-copies and
        # inspects every value): this runs for every alert.
        record = dict(self.__dict__)
        del record["passphrase"]
        for name in _DECIMAL_FIELDS:
            if record[name] is not None:
                record[name] = str(record[name])
        for name in _ENUM_FIELDS:
            if record[name] is not None:
                record[name] = record[name].value
        for name in _TARGET_FIELDS:
            if record[name] is not None:
                record[name] = {key: _jsonable(getattr(record[name], key)) for key in _EXIT_FIELDS}
        return record

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> AlertIntent:
        """Rebuild an intent stored by `to_record`."""
        values = dict(data)
        for name in (
            "quantity",
            "price",
            "limit_price",
            "stop_price",
            "trail_percent",
            "position_size",
        ):
            if values.get(name) is not None:
                values[name] = Decimal(values[name])
        for name in ("take_profit", "stop_loss"):
            if values.get(name) is not None:
                values[name] = _exit_target(values[name])
        values["action"] = Action(values["action"])
        values["quantity_type"] = QuantityType(values["quantity_type"])
        values["order_type"] = OrderType(values["order_type"])
        values["time_in_force"] = TimeInForce(values["time_in_force"])
        if values.get("sentiment") is not None:
            values["sentiment"] = Sentiment(values["sentiment"])
        return cls(**values)


_EXIT_FIELDS = tuple(f.name for f in fields(ExitTarget))
_FIELD_NAMES = frozenset(f.name for f in fields(AlertIntent))
_DECIMAL_FIELDS = tuple(f.name for f in fields(AlertIntent) if "Decimal" in str(f.type))
_ENUM_FIELDS = ("action", "quantity_type", "order_type", "time_in_force", "sentiment")
_TARGET_FIELDS = ("take_profit", "stop_loss")


def _exit_target(data: dict[str, Any]) -> ExitTarget:
    return ExitTarget(
        price=_dec(data.get("price")),
        percent=_dec(data.get("percent")),
        amount=_dec(data.get("amount")),
        order_type=OrderType(data.get("order_type", OrderType.STOP)),
        limit_price=_dec(data.get("limit_price")),
    )


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | bool):
        return value.value if isinstance(value, StrEnum) else value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, ExitTarget):
        return {name: _jsonable(getattr(value, name)) for name in _EXIT_FIELDS}
    return value
