"""A stateful emulator of Crypto.com Exchange's REST API v1: the venue the CCXT adapter meets.

Why Crypto.com (ccxt id `cryptocom`): of the exchanges ccxt can point at a sandbox, it is one
of the few whose order calls need no symbol (fetch_order, cancel_order, fetch_open_orders and
fetch_my_trades work account-wide, as the `Broker` protocol asks), it keeps a client order id
(`client_oid`) that orders can be looked up by, and ccxt drives everything the adapter uses
through nine endpoints, all under `/exchange/v1`:

- GET  public/get-instruments, public/get-tickers (load_markets, prices for equity);
- POST private/get-currency-networks (load_markets fetches currencies when it has keys),
  private/create-order, private/get-order-detail, private/get-open-orders,
  private/cancel-order, private/user-balance, private/get-trades, and
  private/get-order-history (fetch_orders, for exchanges without a lookup by client id).

Private calls are JSON bodies `{id, method, params, api_key, sig, nonce}`. The emulator checks
the API key, a nonce within 60 s, and the HMAC-SHA256 signature over
`method + id + api_key + params-as-string + nonce`, as the venue does; a failure is HTTP 401
code 40101. Answers are `{id, method, code: 0, result}`; refusals are HTTP 400 with the
venue's code: 204 DUPLICATE_CLORDID (a reused client_oid, whatever that order's state),
213 invalid quantity (not a multiple of the quantity tick), 219 invalid price,
306 INSUFFICIENT_AVAILABLE_BALANCE, 30003 unknown instrument, 40401 NOT_FOUND (unknown order),
316 ORDER_NOT_CANCELABLE (an order no longer active). Deviations, on purpose: client_oid may
be 64 characters (the venue allows 36; PineLab's ids are 32, the contract suite's 41), and
fees are charged in the quote currency so that spot holdings stay exactly what was bought.

Market orders fill in full at the instrument's price; limit orders fill at once when they
cross, else rest (reserving funds) until `set_price` crosses them. Stop orders (STOP_LOSS,
STOP_LIMIT) rest until the price reaches `ref_price`. Tests reach into the books with
`set_price`, `fill` (a partial fill) and `force_status`; faults come from tests.fakes.faults.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.faults import BackgroundServer, FaultPlan

PREFIX = "/exchange/v1"
FEE_RATE = Decimal("0.001")
NONCE_WINDOW_MS = 60_000
MAX_CLIENT_OID = 64
_order_ids = itertools.count(6_540_219_377_766_741_832)
_trade_ids = itertools.count(5_755_600_460_443_882_762)


class VenueError(Exception):
    """A refusal the venue answers with its code and message."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def text(value: Decimal) -> str:
    """Write a number as the venue does: a plain decimal string."""
    return format(value.normalize(), "f") if value else "0"


def now_ms() -> int:
    """Return the time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def params_to_string(value: Any, level: int = 0) -> str:
    """Flatten request params the way the venue signs them (sorted keys, three levels)."""
    if level >= 3:
        return str(value)
    if isinstance(value, str):
        return value
    keys = value if isinstance(value, list) else sorted(value)
    out = ""
    for key in keys:
        out += key
        item = value[key]
        if isinstance(item, list):
            out += "".join(params_to_string(element, level + 1) for element in item)
        else:
            out += str(item)
    return out


def _places(tick: Decimal) -> int:
    exponent = tick.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclass
class Instrument:
    """A spot pair."""

    name: str
    base: str
    quote: str
    price_tick: Decimal
    qty_tick: Decimal
    tradable: bool = True

    def as_json(self) -> dict[str, Any]:
        """Return the instrument as public/get-instruments lists it."""
        return {
            "symbol": self.name, "inst_type": "CCY_PAIR",
            "display_name": f"{self.base}/{self.quote}", "base_ccy": self.base,
            "quote_ccy": self.quote, "quote_decimals": _places(self.price_tick),
            "quantity_decimals": _places(self.qty_tick),
            "price_tick_size": text(self.price_tick), "qty_tick_size": text(self.qty_tick),
            "max_leverage": "1", "tradable": self.tradable, "expiry_timestamp_ms": 0,
            "beta_product": False, "margin_buy_enabled": False, "margin_sell_enabled": False,
        }  # fmt: skip


@dataclass
class Order:
    """One order in the books."""

    client_oid: str
    instrument: Instrument
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None = None
    ref_price: Decimal | None = None
    time_in_force: str = "GOOD_TILL_CANCEL"
    status: str = "ACTIVE"
    filled: Decimal = Decimal(0)
    value: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)
    triggered: bool = False
    order_id: str = field(default_factory=lambda: str(next(_order_ids)))
    create_time: int = field(default_factory=now_ms)
    update_time: int = field(default_factory=now_ms)

    @property
    def remaining(self) -> Decimal:
        """Return the quantity still to fill."""
        return self.quantity - self.filled

    def as_json(self) -> dict[str, Any]:
        """Return the order as private/get-order-detail answers it."""
        average = self.value / self.filled if self.filled else Decimal(0)
        return {
            "account_id": "emulated", "order_id": self.order_id, "client_oid": self.client_oid,
            "order_type": self.order_type, "time_in_force": self.time_in_force,
            "side": self.side, "exec_inst": [], "quantity": text(self.quantity),
            "limit_price": text(self.limit_price or Decimal(0)),
            "order_value": text(self.quantity * (self.limit_price or Decimal(0))),
            "avg_price": text(average), "trigger_price": text(self.ref_price or Decimal(0)),
            "ref_price": text(self.ref_price or Decimal(0)),
            "cumulative_quantity": text(self.filled), "cumulative_value": text(self.value),
            "cumulative_fee": text(self.fee), "status": self.status,
            "update_user_id": "emulated", "order_date": "2026-01-01",
            "instrument_name": self.instrument.name,
            "fee_instrument_name": self.instrument.quote, "create_time": self.create_time,
            "create_time_ns": f"{self.create_time}000000", "update_time": self.update_time,
        }  # fmt: skip


DEFAULT_INSTRUMENTS = (
    Instrument("BTC_USDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.0001")),
    Instrument("ETH_USDT", "ETH", "USDT", Decimal("0.01"), Decimal("0.001")),
    Instrument("DOGE_USDT", "DOGE", "USDT", Decimal("0.00001"), Decimal(1)),
)
DEFAULT_PRICES = {"BTC_USDT": Decimal(50_000), "ETH_USDT": Decimal(3_000),
                  "DOGE_USDT": Decimal("0.1")}  # fmt: skip


def _decimal(params: dict[str, Any], key: str, code: int) -> Decimal | None:
    raw = params.get(key)
    if raw is None:
        return None
    try:
        value = Decimal(str(raw))
    except ArithmeticError as exc:
        raise VenueError(code, f"Invalid {key}") from exc
    if not value.is_finite() or value <= 0:
        raise VenueError(code, f"Invalid {key}")
    return value


def _ticker(name: str, price: Decimal, stamp: int) -> dict[str, Any]:
    last = text(price)
    return {"i": name, "a": last, "b": last, "k": last, "h": last, "l": last, "v": "0",
            "vv": "0", "c": "0", "t": stamp}  # fmt: skip


def _on_tick(value: Decimal, tick: Decimal) -> bool:
    return value % tick == 0


class CryptocomBooks:
    """The venue's state behind one lock, shared by the server thread and the test."""

    def __init__(self, *, cash: Decimal) -> None:
        self.lock = threading.RLock()
        self.instruments = {item.name: item for item in DEFAULT_INSTRUMENTS}
        self.prices = dict(DEFAULT_PRICES)
        self.balances: dict[str, Decimal] = {"USDT": cash}
        self.orders: dict[str, Order] = {}
        self.by_client_oid: dict[str, Order] = {}
        self.trades: list[dict[str, Any]] = []

    def instrument(self, name: object) -> Instrument:
        """Return a tradable instrument, or refuse with 30003."""
        found = self.instruments.get(str(name))
        if found is None or not found.tradable:
            raise VenueError(30003, "INVALID_INSTRUMENT")
        return found

    def find(self, params: dict[str, Any]) -> Order:
        """Return the order named by order_id or client_oid, or refuse with 40401."""
        with self.lock:
            order_id, client_oid = params.get("order_id"), params.get("client_oid")
            if order_id is not None:
                found = self.orders.get(str(order_id))
            elif client_oid is not None:
                found = self.by_client_oid.get(str(client_oid))
            else:
                raise VenueError(40004, "order_id or client_oid is required")
            if found is None:
                raise VenueError(40401, "NOT_FOUND")
            return found

    def create(self, params: dict[str, Any]) -> Order:
        """Validate, store and work a new order."""
        with self.lock:
            client_oid = str(params.get("client_oid") or f"auto-{secrets.token_hex(8)}")
            if len(client_oid) > MAX_CLIENT_OID:
                raise VenueError(40004, "client_oid is too long")
            if client_oid in self.by_client_oid:
                raise VenueError(204, "DUPLICATE_CLORDID")
            order = self._new_order(params, client_oid)
            self._reserve(order)
            self.orders[order.order_id] = order
            self.by_client_oid[client_oid] = order
            self._work(order, self.prices[order.instrument.name])
            return order

    def _new_order(self, params: dict[str, Any], client_oid: str) -> Order:
        instrument = self.instrument(params.get("instrument_name"))
        side, order_type = str(params.get("side")), str(params.get("type"))
        if side not in ("BUY", "SELL"):
            raise VenueError(40004, "Invalid side")
        if order_type not in ("MARKET", "LIMIT", "STOP_LOSS", "STOP_LIMIT"):
            raise VenueError(40004, f"Unsupported order type {order_type}")
        quantity = _decimal(params, "quantity", 213)
        if quantity is None or not _on_tick(quantity, instrument.qty_tick):
            raise VenueError(213, "Invalid quantity format")
        price = _decimal(params, "price", 219)
        ref_price = _decimal(params, "ref_price", 219)
        if order_type in ("LIMIT", "STOP_LIMIT") and price is None:
            raise VenueError(219, "price is required")
        if order_type.startswith("STOP") and ref_price is None:
            raise VenueError(219, "ref_price is required")
        for level in (price, ref_price):
            if level is not None and not _on_tick(level, instrument.price_tick):
                raise VenueError(219, "Invalid price format")
        return Order(
            client_oid=client_oid, instrument=instrument, side=side, order_type=order_type,
            quantity=quantity, limit_price=price, ref_price=ref_price,
            time_in_force=str(params.get("time_in_force") or "GOOD_TILL_CANCEL"),
        )  # fmt: skip

    def _reserve(self, order: Order) -> None:
        """Hold the funds the order may spend, or refuse with 306."""
        instrument = order.instrument
        if order.side == "SELL":
            currency, amount = instrument.base, order.quantity
        else:
            price = order.limit_price or order.ref_price or self.prices[instrument.name]
            currency, amount = instrument.quote, order.quantity * price * (1 + FEE_RATE)
        if self._available(currency) < amount:
            raise VenueError(306, "INSUFFICIENT_AVAILABLE_BALANCE")
        order.reserved = amount

    def _available(self, currency: str) -> Decimal:
        held = Decimal(0)
        for order in self.orders.values():
            if order.status != "ACTIVE" or order.reserved == 0:
                continue
            side_currency = (
                order.instrument.base if order.side == "SELL" else order.instrument.quote
            )
            if side_currency == currency:
                held += order.reserved
        return self.balances.get(currency, Decimal(0)) - held

    def _work(self, order: Order, price: Decimal) -> None:
        """Fill the order at `price` if it is marketable there."""
        if order.status != "ACTIVE":
            return
        if order.order_type.startswith("STOP") and not order.triggered:
            rising = order.side == "BUY"
            assert order.ref_price is not None
            if not (price >= order.ref_price if rising else price <= order.ref_price):
                return
            order.triggered = True
        if order.limit_price is not None:
            assert order.limit_price is not None
            crosses = (
                price <= order.limit_price if order.side == "BUY" else price >= order.limit_price
            )
            if not crosses:
                return
        self.execute(order, order.remaining, price)

    def execute(self, order: Order, quantity: Decimal, price: Decimal) -> None:
        """Book one trade of `quantity` at `price` for the order."""
        with self.lock:
            instrument, notional = order.instrument, quantity * price
            fee = (notional * FEE_RATE).quantize(Decimal("0.00000001"))
            sign = 1 if order.side == "BUY" else -1
            base = self.balances.get(instrument.base, Decimal(0)) + sign * quantity
            self.balances[instrument.base] = base
            self.balances[instrument.quote] -= sign * notional + fee
            order.filled += quantity
            order.value += notional
            order.fee += fee
            order.update_time = now_ms()
            if order.side == "BUY":
                order.reserved = max(Decimal(0), order.reserved - notional - fee)
            else:
                order.reserved -= quantity
            if order.remaining == 0:
                order.status, order.reserved = "FILLED", Decimal(0)
            self.trades.append(self._trade(order, quantity, price, fee))

    def _trade(
        self, order: Order, quantity: Decimal, price: Decimal, fee: Decimal
    ) -> dict[str, Any]:
        created = now_ms()
        return {
            "account_id": "emulated", "event_date": "2026-01-01", "journal_type": "TRADING",
            "side": order.side, "instrument_name": order.instrument.name, "fees": text(-fee),
            "trade_id": str(next(_trade_ids)), "trade_match_id": secrets.token_hex(8),
            "create_time": created, "create_time_ns": f"{created}000000",
            "traded_price": text(price), "traded_quantity": text(quantity),
            "fee_instrument_name": order.instrument.quote, "client_oid": order.client_oid,
            "taker_side": "TAKER", "order_id": order.order_id,
        }  # fmt: skip

    def cancel(self, params: dict[str, Any]) -> Order:
        """Cancel an active order, or refuse with 316."""
        with self.lock:
            order = self.find(params)
            if order.status != "ACTIVE":
                raise VenueError(316, "ORDER_NOT_CANCELABLE")
            order.status, order.reserved, order.update_time = "CANCELED", Decimal(0), now_ms()
            return order

    def open_orders(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """List active orders, newest first, optionally for one instrument."""
        with self.lock:
            wanted = params.get("instrument_name")
            rows = [
                order.as_json()
                for order in self.orders.values()
                if order.status == "ACTIVE" and wanted in (None, order.instrument.name)
            ]
            return rows[::-1]

    def history(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """List finished orders created between start_time and end_time, newest first."""
        with self.lock:
            start = int(params.get("start_time") or now_ms() - 86_400_000)
            end = int(params.get("end_time") or now_ms())
            wanted = params.get("instrument_name")
            rows = [
                order.as_json()
                for order in self.orders.values()
                if order.status != "ACTIVE"
                and start <= order.create_time <= end
                and wanted in (None, order.instrument.name)
            ]
            return rows[::-1][: int(params.get("limit") or 100)]

    def trade_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """List trades between start_time and end_time, newest first, at most `limit`."""
        with self.lock:
            start = int(params.get("start_time") or now_ms() - 86_400_000)
            end = int(params.get("end_time") or now_ms())
            wanted = params.get("instrument_name")
            rows = [
                trade
                for trade in self.trades
                if start <= trade["create_time"] <= end
                and wanted in (None, trade["instrument_name"])
            ]
            return rows[::-1][: int(params.get("limit") or 100)]

    def balance(self) -> list[dict[str, Any]]:
        """Answer private/user-balance: one account with a row per currency held."""
        with self.lock:
            rows = []
            for currency, quantity in sorted(self.balances.items()):
                reserved = quantity - self._available(currency)
                row = {"instrument_name": currency, "quantity": text(quantity),
                       "reserved_qty": text(reserved), "market_value": text(quantity),
                       "collateral_weight": "1", "collateral_amount": text(quantity),
                       "max_withdrawal_balance": text(quantity - reserved),
                       "hourly_interest_rate": "0"}  # fmt: skip
                rows.append(row)
            cash = text(self.balances.get("USDT", Decimal(0)))
            account = {"instrument_name": "USD", "total_available_balance": cash,
                       "total_margin_balance": cash, "total_cash_balance": cash,
                       "total_initial_margin": "0", "position_balances": rows}  # fmt: skip
            return [account]

    def tickers(self) -> list[dict[str, Any]]:
        """Answer public/get-tickers with each instrument's last price."""
        with self.lock:
            stamp = now_ms()
            return [_ticker(name, price, stamp) for name, price in self.prices.items()]

    def set_price(self, name: str, price: Decimal) -> None:
        """Move the market; resting orders it crosses fill."""
        with self.lock:
            self.instrument(name)
            self.prices[name] = price
            for order in list(self.orders.values()):
                if order.instrument.name == name:
                    self._work(order, price)


class CryptocomEmulator:
    """Crypto.com Exchange's REST API v1 on 127.0.0.1, with books a test can read and move."""

    def __init__(self, *, cash: Decimal = Decimal(100_000)) -> None:
        self.api_key = secrets.token_hex(12)
        self.api_secret = secrets.token_hex(16)
        self.books = CryptocomBooks(cash=cash)
        self.requests: list[tuple[str, str]] = []
        self._private: dict[str, Callable[[dict[str, Any]], Any]] = {
            "private/get-currency-networks": self._currency_networks,
            "private/create-order": self._create,
            "private/get-order-detail": lambda params: self.books.find(params).as_json(),
            "private/get-open-orders": lambda params: {"data": self.books.open_orders(params)},
            "private/cancel-order": self._cancel,
            "private/user-balance": lambda params: {"data": self.books.balance()},
            "private/get-trades": lambda params: {"data": self.books.trade_list(params)},
            "private/get-order-history": lambda params: {"data": self.books.history(params)},
        }
        app = Starlette(
            routes=[
                Route(f"{PREFIX}/public/get-instruments", self._instruments),
                Route(f"{PREFIX}/public/get-tickers", self._tickers),
                Route(f"{PREFIX}/private/{{name}}", self._private_call, methods=["POST"]),
            ]
        )
        self.server = BackgroundServer(app, FaultPlan())

    @property
    def faults(self) -> FaultPlan:
        """Return the fault plan the server applies."""
        return self.server.plan

    @property
    def url(self) -> str:
        """Return the base URL of the server."""
        return self.server.url

    @property
    def urls(self) -> dict[str, str]:
        """Return ccxt's `urls['api']` entries pointing at this server."""
        return {"base": self.url, "v1": f"{self.url}{PREFIX}", "v2": f"{self.url}/v2",
                "derivatives": f"{self.url}/v2"}  # fmt: skip

    def set_price(self, instrument: str, price: Decimal) -> None:
        """Move the market for an instrument ("BTC_USDT")."""
        self.books.set_price(instrument, price)

    def fill(self, order_id: str, quantity: Decimal, price: Decimal) -> None:
        """Execute part (or all) of a resting order now."""
        self.books.execute(self.books.orders[order_id], quantity, price)

    def force_status(self, order_id: str, status: str) -> None:
        """Put an order in any venue status (ACTIVE, FILLED, CANCELED, REJECTED, EXPIRED)."""
        with self.books.lock:
            order = self.books.orders[order_id]
            order.status, order.reserved = status, Decimal(0)

    async def _instruments(self, request: Request) -> Response:
        self.requests.append(("GET", "public/get-instruments"))
        data = [item.as_json() for item in self.books.instruments.values()]
        return JSONResponse({"id": 1, "method": "public/get-instruments", "code": 0,
                             "result": {"data": data}})  # fmt: skip

    async def _tickers(self, request: Request) -> Response:
        self.requests.append(("GET", "public/get-tickers"))
        return JSONResponse({"id": -1, "method": "public/get-tickers", "code": 0,
                             "result": {"data": self.books.tickers()}})  # fmt: skip

    async def _private_call(self, request: Request) -> Response:
        method = f"private/{request.path_params['name']}"
        self.requests.append(("POST", method))
        body = await request.json()
        request_id = body.get("id") if isinstance(body, dict) else None
        try:
            params = self._authenticate(method, body)
            handler = self._private.get(method)
            if handler is None:
                raise VenueError(40004, f"unknown method {method}", status=404)
            result = handler(params)
        except VenueError as exc:
            return JSONResponse(
                {"id": request_id, "method": method, "code": exc.code, "message": exc.message},
                status_code=exc.status,
            )
        return JSONResponse({"id": request_id, "method": method, "code": 0, "result": result})

    def _authenticate(self, method: str, body: Any) -> dict[str, Any]:
        """Check the key, the nonce and the signature; return the params."""
        if not isinstance(body, dict) or not isinstance(body.get("params"), dict):
            raise VenueError(40001, "BAD_REQUEST")
        params: dict[str, Any] = body["params"]
        key, sig = str(body.get("api_key", "")), str(body.get("sig", ""))
        nonce = str(body.get("nonce", ""))
        payload = f"{body.get('method')}{body.get('id')}{key}{params_to_string(params)}{nonce}"
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(sig, expected) and body.get("method") == method
        if not (secrets.compare_digest(key, self.api_key) and signed):
            raise VenueError(40101, "UNAUTHORIZED", status=401)
        if not nonce.isdigit() or abs(int(nonce) - now_ms()) > NONCE_WINDOW_MS:
            raise VenueError(40102, "INVALID_NONCE", status=401)
        return params

    def _currency_networks(self, params: dict[str, Any]) -> dict[str, Any]:
        currencies = sorted({c for i in self.books.instruments.values() for c in (i.base, i.quote)})
        return {
            "update_time": now_ms(),
            "currency_map": {
                code: {"full_name": code, "default_network": None, "network_list": []}
                for code in currencies
            },
        }

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        order = self.books.create(params)
        return {"order_id": order.order_id, "client_oid": order.client_oid}

    def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        order = self.books.cancel(params)
        return {"order_id": order.order_id, "client_oid": order.client_oid}


@contextmanager
def running_emulator(**options: Any) -> Iterator[CryptocomEmulator]:
    """Start an emulator on a free 127.0.0.1 port and stop it afterwards."""
    emulator = CryptocomEmulator(**options)
    emulator.server.start()
    try:
        yield emulator
    finally:
        emulator.server.stop()
