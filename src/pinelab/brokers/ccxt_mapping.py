"""Translation between ccxt's unified structures and PineLab's reports, errors and capabilities."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import aiohttp
import ccxt.async_support as ccxt_async
import structlog

from pinelab.brokers.alpaca import retry_after
from pinelab.brokers.base import (
    Capabilities,
    FillReport,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    TimeInForce,
)
from pinelab.brokers.exceptions import (
    AmbiguousBrokerError,
    BrokerAuthFailed,
    BrokerError,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    PermanentBrokerError,
    RateLimited,
    UnknownSymbol,
)
from pinelab.logging import redact_text

log = structlog.get_logger(__name__)

ID_SEPARATOR: Final = "@"  # never part of a ccxt symbol
_MESSAGE_LIMIT: Final = 300
_STATUSES: Final = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
# Most specific first: OrderNotFound is an InvalidOrder, BadSymbol a BadRequest in ccxt.
_PERMANENT: Final[tuple[tuple[type[Exception], type[BrokerError]], ...]] = (
    (ccxt_async.OrderNotFound, OrderNotFound),
    (ccxt_async.InsufficientFunds, InsufficientFunds),
    (ccxt_async.BadSymbol, UnknownSymbol),
    (ccxt_async.AuthenticationError, BrokerAuthFailed),
    (ccxt_async.InvalidOrder, InvalidOrder),
    (ccxt_async.BadRequest, InvalidOrder),
    (ccxt_async.ArgumentsRequired, InvalidOrder),
    (ccxt_async.NotSupported, InvalidOrder),
    (ccxt_async.OperationRejected, InvalidOrder),
)
# What each ccxt error says, in our words: ccxt puts the exchange's raw answer body in its
# messages, which may hold anything the exchange echoes; that goes to the log (redacted), never
# into an answer or a stored reason. Most specific first.
_SAID: Final[tuple[tuple[type[Exception], str], ...]] = (
    (ccxt_async.DuplicateOrderId, "the exchange already holds an order with this client id"),
    (ccxt_async.OrderNotFound, "the exchange knows no such order"),
    (ccxt_async.InsufficientFunds, "insufficient funds"),
    (ccxt_async.BadSymbol, "the exchange does not list this symbol"),
    (ccxt_async.PermissionDenied, "the API key lacks a permission this needs"),
    (ccxt_async.AccountSuspended, "the exchange account is suspended"),
    (ccxt_async.AuthenticationError, "the exchange refused the API key or its signature"),
    (ccxt_async.InvalidOrder, "the exchange refused the order"),
    (ccxt_async.NotSupported, "the exchange does not support this request"),
    (ccxt_async.BadRequest, "the exchange refused the request"),
    (ccxt_async.RateLimitExceeded, "the exchange's rate limit was reached"),
    (ccxt_async.DDoSProtection, "the exchange's rate limit was reached"),
    (ccxt_async.RequestTimeout, "the exchange did not answer in time"),
    (ccxt_async.ExchangeNotAvailable, "the exchange is unavailable"),
    (ccxt_async.NetworkError, "could not reach the exchange"),
    (ccxt_async.BadResponse, "the exchange's answer could not be read"),
)
_NEVER_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, socket.gaierror)


@dataclass(frozen=True)
class Dialect:
    """What ccxt leaves exchange-specific about client order ids."""

    client_order_id_param: str = "clientOrderId"  # how create_order takes our id
    lookup_param: str | None = None  # fetch_order(None, None, {param: id}) finds it, no symbol
    duplicate_markers: tuple[str, ...] = ()  # texts of the venue's "id already used" refusal


DIALECTS: Final = {
    # ccxt drops the unified clientOrderId for Crypto.com; the venue's own name is client_oid.
    "cryptocom": Dialect("client_oid", "client_oid", ("DUPLICATE_CLORDID",)),
    # Binance refuses a reused id only while that order is open; a filled one's id is free again.
    "binance": Dialect(duplicate_markers=("Duplicate order sent",)),
}


class DuplicateClientOrderId(InvalidOrder):
    """The venue already holds an order with this client_order_id."""


def exchange_class(exchange_id: str) -> Any:
    """Return the ccxt class for an id, with HTTP 429/5xx classified before the body parser."""
    if exchange_id not in ccxt_async.exchanges:
        raise PermanentBrokerError(f"ccxt knows no exchange {exchange_id!r}")
    base: Any = getattr(ccxt_async, exchange_id)

    def handle_errors(self: Any, code: Any, reason: Any, *rest: Any) -> Any:
        _raise_for_http_status(self.id, code, reason, rest[2])
        return base.handle_errors(self, code, reason, *rest)

    return type(f"{base.__name__}_pinelab", (base,), {"handle_errors": handle_errors})


def _raise_for_http_status(
    exchange_id: str, code: int | None, reason: str | None, headers: Mapping[str, str] | None
) -> None:
    text = f"{exchange_id} answered HTTP {code}"
    error: Any = None  # ccxt is untyped: its errors take the attributes we mark them with
    if code == 429:
        error = ccxt_async.RateLimitExceeded(text)
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        error.retry_after = retry_after(lowered)
    elif code in (408, 504):  # a gateway gave up waiting: the venue may have acted
        error = ccxt_async.RequestTimeout(text)
    elif code is not None and code >= 500:
        error = ccxt_async.ExchangeNotAvailable(text)
        error.answered = True
    if error is not None:
        error.ours = True
        raise error


def broker_error(
    exc: Exception, exchange_id: str, dialect: Dialect, *, submitting: bool
) -> BrokerError:
    """Classify a ccxt error into PineLab's broker error tree, with a message of our own words."""
    text = str(exc)
    message = f"{exchange_id}: {said(exc)} ({type(exc).__name__})"
    log.warning(
        "exchange_error",
        exchange=exchange_id,
        error_type=type(exc).__name__,
        answer=redact_text(text[:_MESSAGE_LIMIT]),
    )
    if isinstance(exc, ccxt_async.DuplicateOrderId) or any(
        marker in text for marker in dialect.duplicate_markers
    ):
        return DuplicateClientOrderId(message)
    if isinstance(exc, ccxt_async.RateLimitExceeded | ccxt_async.DDoSProtection):
        return RateLimited(message, retry_after=getattr(exc, "retry_after", None))
    if isinstance(exc, ccxt_async.NetworkError | ccxt_async.BadResponse):
        if submitting and not outcome_known(exc):
            return AmbiguousBrokerError(message)
        return BrokerUnavailable(message)
    for vendor, ours in _PERMANENT:
        if isinstance(exc, vendor):
            return ours(message)
    # The venue answered with a refusal ccxt has no class for.
    return InvalidOrder(message) if submitting else PermanentBrokerError(message)


def said(exc: Exception) -> str:
    """Return what a ccxt error means, in our words, without the exchange's answer."""
    if getattr(exc, "ours", False):  # raised by `_raise_for_http_status`: no body in it
        return str(exc)
    for vendor, words in _SAID:
        if isinstance(exc, vendor):
            return words
    return "the exchange refused the request"


def outcome_known(exc: BaseException) -> bool:
    """Tell whether a failed request surely placed nothing: never sent, or answered 5xx."""
    if getattr(exc, "answered", False):
        return True
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, _NEVER_SENT):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def unreadable(exchange_id: str, exc: Exception) -> BrokerUnavailable:
    """Return the error for an answer that is not what ccxt promises."""
    return BrokerUnavailable(f"unexpected answer from {exchange_id}: {exc!r}"[:_MESSAGE_LIMIT])


def capabilities(exchange: Any) -> Capabilities:
    """Declare what the exchange takes, from ccxt's `has` and `features`."""
    has = exchange.has
    types = {OrderType.MARKET}
    if has.get("createLimitOrder") is not False:
        types.add(OrderType.LIMIT)
    if (
        has.get("createStopOrder")
        or has.get("createStopMarketOrder")
        or has.get("createTriggerOrder")
    ):
        types.add(OrderType.STOP)
    if has.get("createStopLimitOrder") or has.get("createTriggerOrder"):
        types.add(OrderType.STOP_LIMIT)
    if has.get("createTrailingPercentOrder"):
        types.add(OrderType.TRAILING_STOP)
    create = _features(exchange).get("createOrder") or {}
    offered = create.get("timeInForce") or {}
    times = {TimeInForce.DAY, TimeInForce.GTC}
    times.update(TimeInForce(name.lower()) for name in ("IOC", "FOK") if offered.get(name))
    return Capabilities(
        order_types=frozenset(types),
        time_in_force=frozenset(times),
        bracket_orders=False,
        oco_orders=False,
        fractional_quantity=True,
        notional_orders=False,
        short_selling=False,
        client_order_id=True,  # sent on every order; `has` does not say who ignores it
        extra={key: bool(has.get(key)) for key in ("fetchTickers", "fetchClosedOrders")},
    )


def _features(exchange: Any) -> dict[str, Any]:
    features = getattr(exchange, "features", None) or {}
    spot = features.get("spot") or {}
    return spot if isinstance(spot, dict) else {}


def symbol_required(exchange: Any, feature: str) -> bool:
    """Tell whether a ccxt call needs a symbol at this exchange (ccxt `features`)."""
    described = _features(exchange).get(feature)
    return isinstance(described, dict) and bool(described.get("symbolRequired"))


def compact(text: str) -> str:
    """Return a symbol without separators, upper-case ("btc_usdt" → "BTCUSDT")."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def symbol_index(markets: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Index the active spot markets by compacted symbol and id."""
    index: dict[str, str] = {}
    for market in markets:
        if not market.get("spot") or market.get("active") is False:
            continue
        symbol = str(market["symbol"])
        for name in (symbol, str(market.get("id") or symbol)):
            index.setdefault(compact(name), symbol)
    return index


def decimal(value: object) -> Decimal | None:
    """Return a ccxt number (string, float or int) as a Decimal, or None."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    return number if number.is_finite() else None


def milliseconds(moment: datetime) -> int:
    """Return epoch milliseconds, rounded down."""
    return int(moment.timestamp() * 1000)


def milliseconds_of(span: timedelta) -> int:
    """Return a duration in milliseconds."""
    return int(span.total_seconds() * 1000)


def moment(value: object) -> datetime | None:
    """Return epoch milliseconds as a UTC datetime, or None."""
    return None if value is None else datetime.fromtimestamp(int(str(value)) / 1000, tz=UTC)


def order_kind(request: OrderRequest, trigger: Decimal | None) -> tuple[str, dict[str, Any]]:
    """Return ccxt's order type and extra params for a request's type."""
    kind = request.order_type
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and trigger is None:
        raise InvalidOrder(f"a {kind} order needs a stop price")
    if kind is OrderType.TRAILING_STOP:
        if request.trail_percent is None:
            raise InvalidOrder("a trailing_stop order needs a trail percent")
        return "market", {"trailingPercent": float(request.trail_percent)}
    params: dict[str, Any] = {}
    if trigger is not None and kind in (OrderType.STOP, OrderType.STOP_LIMIT):
        params["triggerPrice"] = float(trigger)
    return ("limit" if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else "market"), params


def check_minimums(market: Mapping[str, Any], amount: Decimal, price: Decimal | None) -> None:
    """Refuse an amount below the market's minimum amount or, when priced, minimum cost."""
    limits = market.get("limits") or {}
    minimum = decimal((limits.get("amount") or {}).get("min"))
    if minimum is not None and amount < minimum:
        raise InvalidOrder(
            f"quantity {amount} is below {market['symbol']}'s minimum amount {minimum}"
        )
    least_cost = decimal((limits.get("cost") or {}).get("min"))
    if least_cost is not None and price is not None and amount * price < least_cost:
        raise InvalidOrder(
            f"order value {amount * price} is below {market['symbol']}'s minimum {least_cost}"
        )


def order_status(order: Mapping[str, Any]) -> OrderStatus:
    """Map ccxt's unified order status onto PineLab's."""
    raw = order.get("status")
    if raw == "open":
        filled = decimal(order.get("filled")) or Decimal(0)
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    if raw in _STATUSES:
        return _STATUSES[str(raw)]
    raise ValueError(f"unknown order status {raw!r}")


def order_type(order: Mapping[str, Any]) -> OrderType:
    """Map ccxt's order type (exchange spellings included) onto PineLab's."""
    kind = str(order.get("type") or "").lower()
    if "trailing" in kind:
        return OrderType.TRAILING_STOP
    triggered = order.get("triggerPrice") or "stop" in kind or "take_profit" in kind
    if triggered:
        return OrderType.STOP_LIMIT if "limit" in kind else OrderType.STOP
    return OrderType.LIMIT if kind == "limit" else OrderType.MARKET


def commission(
    fee: Mapping[str, Any] | None, symbol: str, price: Decimal | None, pair: Callable[..., Any]
) -> Decimal:
    """Return a fee in the quote currency (a fee in any third currency is not converted)."""
    cost = decimal((fee or {}).get("cost"))
    if not cost:
        return Decimal(0)
    base, quote = pair(symbol)
    currency = (fee or {}).get("currency")
    if currency == quote:
        return abs(cost)
    if currency == base and price is not None:
        return abs(cost) * price
    return Decimal(0)


def order_report(
    order: Mapping[str, Any], join: Callable[[str, str], str], pair: Callable[..., Any]
) -> OrderStatusReport:
    """Build a report from a ccxt order structure."""
    symbol = str(order["symbol"])
    filled = decimal(order.get("filled")) or Decimal(0)
    average = decimal(order.get("average")) if filled > 0 else None
    status = order_status(order)
    return OrderStatusReport(
        client_order_id=order.get("clientOrderId"),
        broker_order_id=join(str(order["id"]), symbol),
        symbol=symbol,
        side=OrderSide(str(order["side"]).lower()),
        order_type=order_type(order),
        status=status,
        quantity=decimal(order.get("amount")) or Decimal(0),
        filled_quantity=filled,
        average_fill_price=average,
        reason=f"{status.value} by the exchange" if status is OrderStatus.REJECTED else None,
        updated_at=moment(
            order.get("lastUpdateTimestamp")
            or order.get("lastTradeTimestamp")
            or order.get("timestamp")
        ),
        commission=commission(order.get("fee"), symbol, average, pair),
    )


def fill_report(
    trade: Mapping[str, Any],
    client_order_id: str | None,
    join: Callable[[str, str], str],
    pair: Callable[..., Any],
) -> FillReport:
    """Build a report from a ccxt trade structure."""
    symbol = str(trade["symbol"])
    price = decimal(trade.get("price"))
    quantity = decimal(trade.get("amount"))
    filled_at = moment(trade.get("timestamp"))
    if price is None or quantity is None or filled_at is None:
        raise ValueError(f"trade {trade.get('id')} lacks a price, amount or time")
    return FillReport(
        broker_fill_id=str(trade["id"]),
        broker_order_id=join(str(trade["order"]), symbol),
        client_order_id=client_order_id,
        symbol=symbol,
        side=OrderSide(str(trade["side"]).lower()),
        quantity=quantity,
        price=price,
        filled_at=filled_at,
        commission=commission(trade.get("fee"), symbol, price, pair),
    )


def trade_sort_key(trade: Mapping[str, Any]) -> tuple[int, int, str]:
    """Order trades by time, then by id (numeric ids compared as numbers)."""
    identifier = str(trade["id"])
    return int(trade.get("timestamp") or 0), len(identifier), identifier
