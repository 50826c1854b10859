"""Alpaca Trading API v2 shapes to and from PineLab's: order bodies, reports, statuses, errors.

Pure functions only: no I/O, so every mapping can be tested on its own. The adapter that
sends the requests lives in `pinelab.brokers.alpaca`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final

from pinelab.brokers.base import (
    AccountReport,
    FillReport,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    PositionReport,
)
from pinelab.brokers.exceptions import (
    BrokerAuthFailed,
    BrokerError,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    RateLimited,
    UnknownSymbol,
)

_S = OrderStatus

# Every status Alpaca documents, mapped onto PineLab's state machine. A working status
# becomes partially_filled once anything has filled (see `map_status`).
ALPACA_STATUSES: Final[Mapping[str, OrderStatus]] = MappingProxyType(
    {
        "pending_new": _S.SUBMITTED,  # routed, not yet acknowledged by the venue
        "accepted": _S.ACCEPTED,  # held by Alpaca until the session opens
        "new": _S.ACCEPTED,
        "accepted_for_bidding": _S.ACCEPTED,
        "held": _S.ACCEPTED,  # a bracket leg waiting for its entry to fill
        "stopped": _S.ACCEPTED,  # a fill is guaranteed but has not happened
        "suspended": _S.ACCEPTED,
        "pending_cancel": _S.ACCEPTED,  # still working until the cancel is confirmed
        "pending_replace": _S.ACCEPTED,
        "done_for_day": _S.ACCEPTED,  # resumes next session
        "partially_filled": _S.PARTIALLY_FILLED,
        "calculated": _S.FILLED,  # done for the day; settles as filled only if fully filled
        "filled": _S.FILLED,
        "canceled": _S.CANCELED,
        "replaced": _S.CANCELED,  # this order stopped working; `replaced_by` took its place
        "expired": _S.EXPIRED,
        "rejected": _S.REJECTED,
    }
)
_PLAIN_STATUSES = frozenset({"new", "accepted", "filled", "partially_filled", "canceled"})

ORDER_FORBIDDEN_CODE = 40310000  # insufficient buying power or qty, wash trades


class DuplicateClientOrderId(InvalidOrder):
    """Alpaca already holds an order with this client_order_id."""


def map_status(alpaca_status: str, *, filled: Decimal, quantity: Decimal) -> OrderStatus:
    """Return PineLab's status for an Alpaca status and the order's fill progress."""
    status = ALPACA_STATUSES.get(alpaca_status, _S.ACCEPTED)  # an unknown status still works
    if alpaca_status == "calculated" and filled < quantity:
        status = _S.ACCEPTED
    if not status.is_terminal and filled > 0:
        return _S.PARTIALLY_FILLED
    return status


def status_reason(data: Mapping[str, Any]) -> str | None:
    """Say which Alpaca status lies behind a mapped one, when the names differ."""
    raw = str(data.get("status", ""))
    if raw in _PLAIN_STATUSES:
        return None
    if raw == "replaced" and data.get("replaced_by"):
        return f"replaced by Alpaca order {data['replaced_by']}"
    if raw not in ALPACA_STATUSES:
        return f"unrecognised Alpaca status {raw!r}"
    return f"Alpaca status {raw}"


def decimal_text(value: Decimal | None) -> str | None:
    """Write a Decimal the way Alpaca reads numbers (plain digits, never an exponent)."""
    return None if value is None else format(value, "f")


def order_body(request: OrderRequest, symbol: str) -> dict[str, Any]:
    """Build the JSON body of POST /v2/orders for a request."""
    body: dict[str, Any] = {
        "symbol": symbol,
        "side": request.side.value,
        "type": request.order_type.value,
        "time_in_force": request.time_in_force.value,
        "client_order_id": request.client_order_id,
        "qty": decimal_text(request.quantity),
        "notional": decimal_text(request.notional),
        "limit_price": decimal_text(request.limit_price),
        "stop_price": decimal_text(request.stop_price),
        "trail_percent": decimal_text(request.trail_percent),
    }
    body.update(_exit_legs(request))
    return {key: value for key, value in body.items() if value is not None}


def _exit_legs(request: OrderRequest) -> dict[str, Any]:
    """Return order_class and the legs: bracket with both exits, oto with one."""
    if not request.is_bracket:
        return {}
    legs: dict[str, Any] = {}
    if request.take_profit_price is not None:
        legs["take_profit"] = {"limit_price": decimal_text(request.take_profit_price)}
    stop_loss = request.stop_loss
    if stop_loss is not None:
        if stop_loss.order_type is OrderType.TRAILING_STOP:
            raise InvalidOrder("Alpaca bracket stop-loss legs cannot trail")
        leg = {"stop_price": decimal_text(stop_loss.stop_price)}
        if stop_loss.limit_price is not None:
            leg["limit_price"] = decimal_text(stop_loss.limit_price)
        legs["stop_loss"] = leg
    legs["order_class"] = "bracket" if len(legs) == 2 else "oto"
    return legs


def to_decimal(value: object) -> Decimal | None:
    """Read an Alpaca number (a string, or null); raise ValueError on garbage."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def to_datetime(value: object) -> datetime | None:
    """Read an Alpaca RFC 3339 timestamp (nanoseconds are cut to microseconds)."""
    if not value:
        return None
    return datetime.fromisoformat(str(value))


def order_report(data: Mapping[str, Any]) -> OrderStatusReport:
    """Turn an Alpaca order object (legs included) into a report."""
    filled = to_decimal(data.get("filled_qty")) or Decimal(0)
    ordered = to_decimal(data.get("qty"))
    quantity = filled if ordered is None else ordered  # notional orders carry no qty
    return OrderStatusReport(
        client_order_id=data.get("client_order_id"),
        broker_order_id=str(data["id"]),
        symbol=str(data["symbol"]),
        side=OrderSide(data["side"]),
        order_type=OrderType(data.get("type") or data["order_type"]),
        status=map_status(str(data["status"]), filled=filled, quantity=quantity),
        quantity=quantity,
        filled_quantity=filled,
        average_fill_price=to_decimal(data.get("filled_avg_price")),
        reason=status_reason(data),
        updated_at=to_datetime(data.get("updated_at")),
        legs=tuple(order_report(leg) for leg in data.get("legs") or ()),
    )


def account_report(data: Mapping[str, Any]) -> AccountReport:
    """Turn GET /v2/account into an account report."""
    return AccountReport(
        equity=_required(data, "equity"),
        cash=_required(data, "cash"),
        buying_power=_required(data, "buying_power"),
        currency=str(data.get("currency") or "USD"),
    )


def position_report(data: Mapping[str, Any], symbol: str) -> PositionReport:
    """Turn one Alpaca position into a report; short positions get a negative quantity."""
    quantity = _required(data, "qty")
    if data.get("side") == "short" and quantity > 0:
        quantity = -quantity
    return PositionReport(
        symbol=symbol,
        quantity=quantity,
        average_price=_required(data, "avg_entry_price"),
        market_price=to_decimal(data.get("current_price")),
    )


def fill_report(data: Mapping[str, Any], client_order_id: str | None) -> FillReport:
    """Turn one FILL activity into a report (Alpaca charges no per-fill commission here)."""
    filled_at = to_datetime(data.get("transaction_time"))
    if filled_at is None:
        raise ValueError("fill activity without transaction_time")
    side = str(data["side"])
    return FillReport(
        broker_fill_id=str(data["id"]),
        broker_order_id=str(data["order_id"]),
        client_order_id=client_order_id,
        symbol=str(data["symbol"]),
        side=OrderSide.BUY if side == "buy" else OrderSide.SELL,  # sell_short is a sell
        quantity=_required(data, "qty"),
        price=_required(data, "price"),
        filled_at=filled_at,
    )


def _required(data: Mapping[str, Any], key: str) -> Decimal:
    value = to_decimal(data.get(key))
    if value is None:
        raise ValueError(f"missing {key}")
    return value


def error_for_status(
    status_code: int,
    *,
    code: object,
    message: str,
    retry_after: float | None,
    not_found: type[BrokerError],
) -> BrokerError:
    """Classify an Alpaca error answer into PineLab's broker error tree."""
    text = f"Alpaca answered {status_code}: {message}"
    lowered = message.lower()
    if status_code == 429:
        return RateLimited(text, retry_after=retry_after)
    if status_code >= 500 or status_code == 408:
        return BrokerUnavailable(text, retry_after=retry_after)
    if status_code == 401:
        return BrokerAuthFailed(text)
    if status_code == 403:
        if "insufficient" in lowered:
            return InsufficientFunds(text)
        if code == ORDER_FORBIDDEN_CODE:  # e.g. a potential wash trade
            return InvalidOrder(text)
        return BrokerAuthFailed(text)
    if status_code == 404:
        return not_found(text)
    if "client_order_id" in lowered and "unique" in lowered:
        return DuplicateClientOrderId(text)
    if "asset" in lowered and "not found" in lowered:
        return UnknownSymbol(text)
    return InvalidOrder(text)
