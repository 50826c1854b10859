"""A stateful emulator of Alpaca's Trading API v2, served on 127.0.0.1 for the adapter's tests.

What it keeps: assets (equities and one crypto pair), orders with unique client_order_ids,
bracket/oto legs, positions, cash, and FILL activities. Venue rules, close to Alpaca's:

- Every request needs the APCA-API-KEY-ID / APCA-API-SECRET-KEY pair, else 401.
- Each symbol has a price (set by the test with `set_price`); market orders fill at it in
  full, notional ones for notional / price shares (9 decimals). Limits, stops, stop limits
  and trailing stops (trail_percent) rest until a price crosses them, then fill at that price.
- A cash account: buying power is cash; a buy costing more is 403 code 40310000
  "insufficient buying power"; selling more than is held is 403 "insufficient qty".
- Validation failures are 422 code 40010001; an unknown asset is 422 'asset "X" not found';
  a reused client_order_id is 422 "client_order_id must be unique"; an order id that is not a
  UUID is 422, an unknown one 404; canceling a closed order is 422.
- Bracket legs are `held` until the entry fills, then work; one filling cancels the other.
- Cancels are immediate, unless `books.cancel_reads` is set: then the order shows
  `pending_cancel` for that many reads first. `books.trading_blocked` blocks the account.
- Positions list crypto without the slash ("BTCUSD"), as Alpaca does.

Tests reach into the books with `set_price`, `fill` (partial fills) and `force_status`.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.fakes.faults import BackgroundServer, FaultPlan

OPEN_STATUSES = frozenset(
    {"new", "accepted", "pending_new", "partially_filled", "held", "accepted_for_bidding",
     "pending_cancel", "pending_replace", "done_for_day", "stopped", "suspended", "calculated"}
)  # fmt: skip
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NINE_PLACES = Decimal("0.000000001")
REQUIRED_PRICES = {
    "market": (),
    "limit": ("limit_price",),
    "stop": ("stop_price",),
    "stop_limit": ("limit_price", "stop_price"),
    "trailing_stop": ("trail_percent",),
}
HUNDRED = Decimal(100)


class VenueError(Exception):
    """An Alpaca error answer."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(message: str) -> VenueError:
    """Return Alpaca's 422 for a request it will not take."""
    return VenueError(422, 40010001, message)


def timestamp(moment: datetime | None) -> str | None:
    """Write a time as Alpaca does: RFC 3339 with nanoseconds."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def text(value: Decimal | None) -> str | None:
    """Write a number as Alpaca does: a string."""
    return None if value is None else format(value.normalize(), "f")


@dataclass
class Asset:
    """A tradable instrument."""

    symbol: str
    asset_class: str = "us_equity"
    exchange: str = "NASDAQ"
    tradable: bool = True
    fractionable: bool = True
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def as_json(self) -> dict[str, Any]:
        """Return the asset as GET /v2/assets answers it."""
        return {
            "id": self.id, "class": self.asset_class, "exchange": self.exchange,
            "symbol": self.symbol, "name": f"{self.symbol} emulated",
            "status": "active" if self.tradable else "inactive", "tradable": self.tradable,
            "marginable": False, "shortable": False, "easy_to_borrow": False,
            "fractionable": self.fractionable,
        }  # fmt: skip


@dataclass
class Order:
    """One order in the emulator's books."""

    client_order_id: str
    symbol: str
    asset_class: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    order_class: str = ""
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    hwm: Decimal | None = None
    triggered: bool = False
    parent_id: str | None = None
    legs: list[Order] = field(default_factory=list)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    filled_at: datetime | None = None
    canceled_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """Tell whether the order still works (or waits, for a held leg)."""
        return self.status in OPEN_STATUSES

    def as_json(self, *, nested: bool = True) -> dict[str, Any]:
        """Return the order object as Alpaca writes it."""
        return {
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": timestamp(self.created_at), "updated_at": timestamp(self.updated_at),
            "submitted_at": timestamp(self.created_at), "filled_at": timestamp(self.filled_at),
            "expired_at": None, "canceled_at": timestamp(self.canceled_at), "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.symbol)),
            "symbol": self.symbol, "asset_class": self.asset_class,
            "notional": text(self.notional), "qty": text(self.qty),
            "filled_qty": text(self.filled_qty), "filled_avg_price": text(self.filled_avg_price),
            "order_class": self.order_class, "order_type": self.type, "type": self.type,
            "side": self.side, "time_in_force": self.time_in_force,
            "limit_price": text(self.limit_price), "stop_price": text(self.stop_price),
            "status": self.status, "extended_hours": False,
            "legs": [leg.as_json() for leg in self.legs] if nested and self.legs else None,
            "trail_percent": text(self.trail_percent), "trail_price": None,
            "hwm": text(self.hwm),
        }  # fmt: skip


@dataclass
class Position:
    """A long holding."""

    qty: Decimal
    avg_entry_price: Decimal


DEFAULT_ASSETS = (
    Asset("AAPL"),
    Asset("MSFT"),
    Asset("SPY", exchange="ARCA"),
    Asset("BTC/USD", asset_class="crypto", exchange="CRYPTO"),
    Asset("OLDCO", exchange="NYSE", tradable=False),
)
DEFAULT_PRICES = {"AAPL": Decimal(100), "MSFT": Decimal(300), "SPY": Decimal(500),
                  "BTC/USD": Decimal(50_000)}  # fmt: skip


def _number(body: dict[str, Any], key: str) -> Decimal | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError as exc:
        raise invalid(f"invalid {key}: {value!r}") from exc
    if not number.is_finite() or number <= 0:
        raise invalid(f"{key} must be > 0")
    return number


def _crosses(side: str, price: Decimal, level: Decimal, *, stop: bool) -> bool:
    """Tell whether a price reaches a stop (stop=True) or a limit level for a side."""
    rising = (side == "buy") == stop
    return price >= level if rising else price <= level


class AlpacaBooks:
    """The venue's state; every method holds one lock, so tests and the server may share it."""

    def __init__(self, *, cash: Decimal) -> None:
        self.lock = threading.RLock()
        self.cash = cash
        self.assets = {asset.symbol: asset for asset in DEFAULT_ASSETS}
        self.prices = dict(DEFAULT_PRICES)
        self.orders: dict[str, Order] = {}
        self.by_client_id: dict[str, Order] = {}
        self.positions: dict[str, Position] = {}
        self.activities: list[dict[str, Any]] = []
        self.trading_blocked = False
        self.cancel_reads = 0  # reads of a canceled order that still show pending_cancel
        self._pending_cancels: dict[str, int] = {}

    def asset(self, symbol: str) -> Asset | None:
        """Find an asset by its symbol, crypto with or without the slash."""
        wanted = symbol.upper().replace("/", "")
        return next((a for a in self.assets.values() if a.symbol.replace("/", "") == wanted), None)

    def order(self, order_id: str) -> Order:
        """Return an order by id: 422 for an id that is not a UUID, 404 for an unknown one."""
        if not UUID_PATTERN.match(order_id):
            raise invalid("order_id is missing")
        found = self.orders.get(order_id)
        if found is None:
            raise VenueError(404, 40410000, "order not found")
        return found

    def submit(self, body: dict[str, Any]) -> Order:
        """Validate, store and work a new order."""
        with self.lock:
            client_order_id = str(body.get("client_order_id") or uuid.uuid4())
            if client_order_id in self.by_client_id:
                raise invalid("client_order_id must be unique")
            order = self._new_order(body, client_order_id)
            self._check_affordable(order)
            for stored in (order, *order.legs):
                self.orders[stored.id] = stored
                self.by_client_id[stored.client_order_id] = stored
            self._work(order)
            return order

    def _new_order(self, body: dict[str, Any], client_order_id: str) -> Order:
        symbol = str(body.get("symbol") or "").upper()
        asset = self.asset(symbol)
        if asset is None:
            raise invalid(f'asset "{symbol}" not found')
        if not asset.tradable:
            raise invalid(f"asset {symbol} is not tradable")
        order = Order(
            client_order_id=client_order_id,
            symbol=asset.symbol,
            asset_class=asset.asset_class,
            side=str(body.get("side")),
            type=str(body.get("type")),
            time_in_force=str(body.get("time_in_force")),
            qty=_number(body, "qty"),
            notional=_number(body, "notional"),
            limit_price=_number(body, "limit_price"),
            stop_price=_number(body, "stop_price"),
            trail_percent=_number(body, "trail_percent"),
            order_class=str(body.get("order_class") or "simple"),
        )
        self._validate(order, asset)
        order.legs = self._legs(order, body)
        return order

    def _validate(self, order: Order, asset: Asset) -> None:
        if order.side not in ("buy", "sell"):
            raise invalid("side must be buy or sell")
        if order.time_in_force not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise invalid("invalid time_in_force")
        if (order.qty is None) == (order.notional is None):
            raise invalid("qty or notional is required, but not both")
        fractional = order.qty is not None and order.qty != order.qty.to_integral_value()
        if order.notional is not None or fractional:
            if not asset.fractionable:
                raise invalid(f"asset {asset.symbol} is not fractionable")
            if asset.asset_class == "us_equity" and order.time_in_force != "day":
                raise invalid("fractional orders must be DAY orders")
        if order.notional is not None and order.type != "market":
            raise invalid("notional orders must be market orders")
        if order.type not in REQUIRED_PRICES:
            raise invalid(f"invalid order type {order.type!r}")
        for name in REQUIRED_PRICES[order.type]:
            if getattr(order, name) is None:
                raise invalid(f"{name} is required for {order.type} orders")

    def _legs(self, order: Order, body: dict[str, Any]) -> list[Order]:
        if order.order_class == "simple":
            return []
        if order.order_class not in ("bracket", "oto"):
            raise invalid(f"order_class {order.order_class} is not supported here")
        take_profit = _number(body.get("take_profit") or {}, "limit_price")
        stop_loss = body.get("stop_loss") or {}
        stop, stop_limit = _number(stop_loss, "stop_price"), _number(stop_loss, "limit_price")
        wanted = 2 if order.order_class == "bracket" else 1
        if (take_profit is not None) + (stop is not None) != wanted:
            raise invalid(f"{order.order_class} orders need {wanted} of take_profit / stop_loss")
        if order.qty is None or order.qty != order.qty.to_integral_value():
            raise invalid("fractional orders must be simple orders")
        if order.time_in_force not in ("day", "gtc"):
            raise invalid("bracket orders must be day or gtc orders")
        if (
            take_profit is not None
            and stop is not None
            and (take_profit <= stop if order.side == "buy" else take_profit >= stop)
        ):
            raise invalid("take_profit.limit_price must be beyond stop_loss.stop_price")
        exit_side = "sell" if order.side == "buy" else "buy"
        legs = []
        if take_profit is not None:
            legs.append(self._leg(order, exit_side, "limit", limit_price=take_profit))
        if stop is not None:
            kind = "stop" if stop_limit is None else "stop_limit"
            legs.append(self._leg(order, exit_side, kind, stop_price=stop, limit_price=stop_limit))
        return legs

    def _leg(
        self,
        parent: Order,
        side: str,
        kind: str,
        *,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> Order:
        return Order(
            client_order_id=str(uuid.uuid4()), symbol=parent.symbol,
            asset_class=parent.asset_class, side=side, type=kind,
            time_in_force=parent.time_in_force, qty=parent.qty, order_class=parent.order_class,
            status="held", parent_id=parent.id, limit_price=limit_price, stop_price=stop_price,
        )  # fmt: skip

    def buying_power(self) -> Decimal:
        """Return cash less what open buy orders hold back."""
        held = sum((self._cost(o) for o in self.orders.values() if o.is_open), Decimal(0))
        return self.cash - held

    def _cost(self, order: Order) -> Decimal:
        if order.side != "buy" or order.status == "held":
            return Decimal(0)
        if order.notional is not None:
            return order.notional
        price = order.limit_price or order.stop_price or self.prices.get(order.symbol, Decimal(0))
        return ((order.qty or Decimal(0)) - order.filled_qty) * price

    def _check_affordable(self, order: Order) -> None:
        if order.side == "buy":
            if self._cost(order) > self.buying_power():
                raise VenueError(403, 40310000, "insufficient buying power")
            return
        price = self.prices.get(order.symbol, Decimal(1))
        wanted = order.qty if order.qty is not None else (order.notional or Decimal(0)) / price
        position = self.positions.get(order.symbol)
        held = position.qty if position else Decimal(0)
        committed = sum(
            ((o.qty or Decimal(0)) - o.filled_qty for o in self.orders.values()
             if o.symbol == order.symbol and o.side == "sell" and o.is_open and o.status != "held"),
            Decimal(0),
        )  # fmt: skip
        if wanted > held - committed:
            raise VenueError(
                403,
                40310000,
                f"insufficient qty available for order (requested: {text(wanted)}, "
                f"available: {text(held - committed)})",
            )

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move a symbol's price and work every open order of that symbol, oldest first."""
        with self.lock:
            asset = self.asset(symbol)
            if asset is None:
                raise KeyError(symbol)
            self.prices[asset.symbol] = price
            for order in sorted(self.orders.values(), key=lambda o: o.created_at):
                if order.symbol == asset.symbol:
                    self._work(order)

    def _work(self, order: Order) -> None:
        price = self.prices.get(order.symbol)
        if not order.is_open or order.status == "held" or price is None:
            return
        fill_price = self._fill_price(order, price)
        if fill_price is not None:
            remaining = None if order.qty is None else order.qty - order.filled_qty
            self.fill(order.id, remaining, fill_price)
        elif order.time_in_force in ("ioc", "fok"):
            self._close(order, "canceled")

    def _fill_price(self, order: Order, price: Decimal) -> Decimal | None:
        if order.type == "trailing_stop":
            self._trail(order, price)
        if order.type in ("stop", "stop_limit", "trailing_stop") and not order.triggered:
            if order.stop_price is None or not _crosses(
                order.side, price, order.stop_price, stop=True
            ):
                return None
            order.triggered = True
        if order.type in ("market", "stop", "trailing_stop"):
            return price
        assert order.limit_price is not None
        return price if _crosses(order.side, price, order.limit_price, stop=False) else None

    def _trail(self, order: Order, price: Decimal) -> None:
        higher = order.side == "sell"
        if order.hwm is None or (price > order.hwm if higher else price < order.hwm):
            order.hwm = price
        offset = order.hwm * (order.trail_percent or Decimal(0)) / HUNDRED
        stop = order.hwm - offset if higher else order.hwm + offset
        order.stop_price = stop.quantize(Decimal("0.01"))

    def fill(self, order_id: str, qty: Decimal | None, price: Decimal) -> None:
        """Execute `qty` of an order at `price` (None: a notional order's whole amount)."""
        with self.lock:
            order = self.order(order_id)
            if qty is None:
                qty = ((order.notional or Decimal(0)) / price).quantize(NINE_PLACES, ROUND_DOWN)
            now = datetime.now(UTC)
            total = order.filled_qty + qty
            paid = (order.filled_avg_price or Decimal(0)) * order.filled_qty + price * qty
            order.filled_avg_price = paid / total
            order.filled_qty = total
            done = order.qty is None or total >= order.qty
            order.status = "filled" if done else "partially_filled"
            order.updated_at = now
            order.filled_at = now if done else None
            self._book(order.symbol, order.side, qty, price)
            self.activities.append(self._activity(order, qty, price, now))
            if done:
                self._on_filled(order)

    def _book(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> None:
        signed = qty if side == "buy" else -qty
        self.cash -= signed * price
        position = self.positions.get(symbol)
        if position is None:
            self.positions[symbol] = Position(qty=signed, avg_entry_price=price)
            return
        new_qty = position.qty + signed
        if new_qty == 0:
            del self.positions[symbol]
        elif signed > 0:
            cost = position.qty * position.avg_entry_price + signed * price
            self.positions[symbol] = Position(qty=new_qty, avg_entry_price=cost / new_qty)
        else:
            position.qty = new_qty

    def _activity(
        self, order: Order, qty: Decimal, price: Decimal, now: datetime
    ) -> dict[str, Any]:
        leaves = Decimal(0) if order.qty is None else order.qty - order.filled_qty
        return {
            "id": f"{now:%Y%m%d%H%M%S%f}::{uuid.uuid4()}", "activity_type": "FILL",
            "transaction_time": timestamp(now),
            "type": "fill" if order.status == "filled" else "partial_fill",
            "price": text(price), "qty": text(qty), "side": order.side, "symbol": order.symbol,
            "leaves_qty": text(leaves), "order_id": order.id, "cum_qty": text(order.filled_qty),
            "order_status": order.status,
        }  # fmt: skip

    def _on_filled(self, order: Order) -> None:
        for leg in order.legs:
            leg.status, leg.qty, leg.updated_at = "new", order.filled_qty, datetime.now(UTC)
        for leg in order.legs:
            self._work(leg)
        if order.parent_id is not None:
            for sibling in self.orders[order.parent_id].legs:
                if sibling is not order and sibling.is_open:
                    self._close(sibling, "canceled")

    def _close(self, order: Order, status: str) -> None:
        order.status, order.updated_at = status, datetime.now(UTC)
        if status == "canceled":
            order.canceled_at = order.updated_at
        for leg in order.legs:
            if leg.is_open:
                self._close(leg, status)

    def cancel(self, order_id: str) -> None:
        """Cancel an open order and its legs; a closed one is 422."""
        with self.lock:
            order = self.order(order_id)
            if not order.is_open:
                raise VenueError(422, 42210000, f'order is already in "{order.status}" state')
            if self.cancel_reads > 0:
                order.status = "pending_cancel"
                self._pending_cancels[order.id] = self.cancel_reads
                return
            self._close(order, "canceled")

    def read(self, order_id: str) -> Order:
        """Return an order for GET; a pending cancel settles after `cancel_reads` reads."""
        with self.lock:
            order = self.order(order_id)
            left = self._pending_cancels.get(order.id)
            if left is not None:
                if left <= 0:
                    del self._pending_cancels[order.id]
                    self._close(order, "canceled")
                else:
                    self._pending_cancels[order.id] = left - 1
            return order

    def force_status(self, order_id: str, status: str) -> None:
        """Put an order in any Alpaca status (for the status-mapping tests)."""
        with self.lock:
            order = self.order(order_id)
            order.status, order.updated_at = status, datetime.now(UTC)

    def account(self) -> dict[str, Any]:
        """Return the account object."""
        with self.lock:
            market_value = sum(
                (p.qty * self.prices.get(s, p.avg_entry_price) for s, p in self.positions.items()),
                Decimal(0),
            )
            equity = self.cash + market_value
            return {
                "id": "emulated-account", "account_number": "PA0000000", "status": "ACTIVE",
                "currency": "USD", "cash": text(self.cash),
                "buying_power": text(self.buying_power()),
                "equity": text(equity), "portfolio_value": text(equity),
                "long_market_value": text(market_value), "short_market_value": "0",
                "pattern_day_trader": False, "trading_blocked": self.trading_blocked,
                "account_blocked": False, "multiplier": "1",
            }  # fmt: skip

    def position_list(self) -> list[dict[str, Any]]:
        """Return the open positions, crypto without the slash."""
        with self.lock:
            rows = []
            for symbol, position in sorted(self.positions.items()):
                asset = self.assets[symbol]
                price = self.prices.get(symbol, position.avg_entry_price)
                rows.append({
                    "asset_id": asset.id, "symbol": symbol.replace("/", ""),
                    "exchange": asset.exchange, "asset_class": asset.asset_class,
                    "avg_entry_price": text(position.avg_entry_price), "qty": text(position.qty),
                    "side": "long" if position.qty > 0 else "short",
                    "market_value": text(position.qty * price),
                    "cost_basis": text(position.qty * position.avg_entry_price),
                    "current_price": text(price),
                })  # fmt: skip
            return rows

    def order_list(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Answer GET /v2/orders: status, symbols, nested, after, direction, limit."""
        status = params.get("status", "open")
        nested = params.get("nested") == "true"
        symbols = set(filter(None, params.get("symbols", "").split(",")))
        after = params.get("after")
        with self.lock:
            chosen = [
                o for o in self.orders.values()
                if (status == "all" or (status == "open") == o.is_open)
                and (not symbols or o.symbol in symbols)
                and (not nested or o.parent_id is None)
                and (after is None or o.created_at > datetime.fromisoformat(after))
            ]  # fmt: skip
            chosen.sort(key=lambda o: o.created_at, reverse=params.get("direction") != "asc")
            return [o.as_json(nested=nested) for o in chosen[: int(params.get("limit", "50"))]]

    def fill_activities(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Answer GET /v2/account/activities/FILL: after, direction, page_size, page_token."""
        after = params.get("after")
        size = min(int(params.get("page_size", "100")), 100)
        with self.lock:
            rows = [
                a for a in self.activities
                if after is None
                or datetime.fromisoformat(a["transaction_time"]) > datetime.fromisoformat(after)
            ]  # fmt: skip
        if params.get("direction", "desc") != "asc":
            rows.reverse()
        token = params.get("page_token")
        if token is not None:
            ids = [row["id"] for row in rows]
            rows = rows[ids.index(token) + 1 :] if token in ids else []
        return rows[:size]


def _error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VenueError)
    return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)


class AlpacaEmulator:
    """Alpaca's Trading API v2 served on 127.0.0.1, with books a test can read and move."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        cash: Decimal = Decimal(100_000),
    ) -> None:
        self.api_key = api_key or f"PK{secrets.token_hex(8).upper()}"
        self.api_secret = api_secret or secrets.token_hex(20)
        self.books = AlpacaBooks(cash=cash)
        self.requests: list[tuple[float, str, str]] = []
        self.server = BackgroundServer(self._guard, FaultPlan())
        self._app = Starlette(
            routes=[
                Route("/v2/account", self._account),
                Route("/v2/assets/{symbol:path}", self._asset),
                Route("/v2/positions", self._positions),
                Route("/v2/account/activities/{activity_type}", self._activities),
                Route("/v2/orders", self._submit, methods=["POST"]),
                Route("/v2/orders", self._orders, methods=["GET"]),
                Route("/v2/orders:by_client_order_id", self._by_client_order_id),
                Route("/v2/orders/{order_id}", self._order, methods=["GET"]),
                Route("/v2/orders/{order_id}", self._cancel, methods=["DELETE"]),
            ],
            exception_handlers={VenueError: _error_response},
        )

    @property
    def faults(self) -> FaultPlan:
        """Return the fault plan the server applies."""
        return self.server.plan

    @property
    def url(self) -> str:
        """Return the base URL to give the adapter."""
        return self.server.url

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the market (resting orders that it crosses fill)."""
        self.books.set_price(symbol, price)

    def fill(self, order_id: str, qty: Decimal, price: Decimal) -> None:
        """Execute part (or all) of an order now."""
        self.books.fill(order_id, qty, price)

    def force_status(self, order_id: str, status: str) -> None:
        """Put an order in any Alpaca status."""
        self.books.force_status(order_id, status)

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Log the request and check the API key pair, as Alpaca's gateway does."""
        if scope["type"] == "http":
            self.requests.append((time.monotonic(), scope["method"], scope["path"]))
            headers = dict(scope["headers"])
            key = headers.get(b"apca-api-key-id", b"").decode()
            secret = headers.get(b"apca-api-secret-key", b"").decode()
            if not (
                secrets.compare_digest(key, self.api_key)
                and secrets.compare_digest(secret, self.api_secret)
            ):
                denied = JSONResponse(
                    {"code": 40110000, "message": "request is not authorized"}, status_code=401
                )
                await denied(scope, receive, send)
                return
        await self._app(scope, receive, send)

    async def _account(self, request: Request) -> Response:
        return JSONResponse(self.books.account())

    async def _asset(self, request: Request) -> Response:
        asset = self.books.asset(request.path_params["symbol"])
        if asset is None:
            raise VenueError(404, 40410000, "asset not found")
        return JSONResponse(asset.as_json())

    async def _positions(self, request: Request) -> Response:
        return JSONResponse(self.books.position_list())

    async def _activities(self, request: Request) -> Response:
        kind = request.path_params["activity_type"]
        if kind != "FILL":
            raise invalid(f"invalid activity type: {kind}")
        return JSONResponse(self.books.fill_activities(dict(request.query_params)))

    async def _submit(self, request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict):
            raise invalid("request body must be an object")
        return JSONResponse(self.books.submit(body).as_json())

    async def _orders(self, request: Request) -> Response:
        return JSONResponse(self.books.order_list(dict(request.query_params)))

    async def _by_client_order_id(self, request: Request) -> Response:
        client_order_id = request.query_params.get("client_order_id")
        if not client_order_id:
            raise invalid("client_order_id is required")
        order = self.books.by_client_id.get(client_order_id)
        if order is None:
            raise VenueError(404, 40410000, "order not found")
        return JSONResponse(order.as_json())

    async def _order(self, request: Request) -> Response:
        return JSONResponse(self.books.read(request.path_params["order_id"]).as_json())

    async def _cancel(self, request: Request) -> Response:
        self.books.cancel(request.path_params["order_id"])
        return Response(status_code=204)


@contextmanager
def running_emulator(**options: Any) -> Iterator[AlpacaEmulator]:
    """Start an emulator on a free 127.0.0.1 port and stop it afterwards."""
    emulator = AlpacaEmulator(**options)
    emulator.server.start()
    try:
        yield emulator
    finally:
        emulator.server.stop()
