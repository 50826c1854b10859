"""The CCXT adapter: any spot exchange ccxt knows, behind the `Broker` protocol.

It drives `ccxt.async_support` and never mocks or bypasses it; what it adds, documented once:

- Symbols come from the loaded markets: "BTCUSDT", "CRYPTOCOM:BTCUSDT", "btc_usdt" and
  "BTC/USDT" all resolve to the spot market "BTC/USDT"; anything else, a perpetual
  ("BTCUSDT.P") or a continuous future ("BTC1!") included, is `UnknownSymbol`
  (brokers/symbols.py).
- Quantities and prices are cut to the market's precision with ccxt's `amount_to_precision`
  / `price_to_precision`; a quantity that rounds to nothing, or falls below the market's
  minimum amount or (when a price is known) minimum cost, is `InvalidOrder` before sending.
- Our client_order_id travels under the exchange's own parameter (`ccxt_mapping.DIALECTS`;
  ccxt's unified `clientOrderId` elsewhere). Resubmitting one the venue already holds returns
  that order. Lookup by client id uses the exchange's direct query where one exists (Crypto.com
  `client_oid`), else a scan of the open orders and those of the last day (`RECENT_ORDERS`):
  lookups follow an ambiguous submission within minutes, and older ones are reconciled.
- Exchanges that need a symbol to fetch or cancel an order (ccxt `features` says so, e.g.
  Binance) get broker_order_ids of the form "<venue id>@<symbol>", so no call ever lacks it.
  There, account-wide calls (open orders, fills, the client id scan) can only cover the
  symbols this adapter has traded since it started; Crypto.com needs no symbol anywhere.
- Errors: every ccxt error becomes one of `pinelab.brokers.exceptions` (`ccxt_mapping`).
  HTTP 429 and 5xx are classified by status before the exchange's body parser runs (some
  parsers, Crypto.com's included, turn any non-JSON or unknown body into a bare ExchangeError).
  On create_order a network failure is `AmbiguousBrokerError` unless the connection was never
  made (refused, DNS, connect timeout: `BrokerUnavailable`): what cannot be told apart is a
  read timeout or a dropped connection before versus after the venue took the order (a
  request written into a keep-alive connection the venue had closed counts as dropped).
  A 5xx answer to create_order is `BrokerUnavailable` (the venue answered; the job's retry
  asks by client id first), except 408/504, a gateway that gave up waiting: ambiguous.
  429 is `RateLimited` with Retry-After read from the answer itself, not shared state.
- Spot only: positions are the non-zero balances other than the quote currency, priced at the
  last trade (one `fetch_tickers` call); a spot venue keeps no cost basis, so `average_price`
  is that price too and PineLab's own books hold the true average. Equity is the quote
  currency's total plus every such holding at its last price; holdings with no market
  against the quote currency are left out.
- Time in force DAY is sent as the exchange default (GTC: crypto venues do not close).
  Brackets, notional and short orders are not offered (see `capabilities`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TypeVar

import ccxt.async_support as ccxt_async

from pinelab import clock
from pinelab.brokers import ccxt_mapping as mapping
from pinelab.brokers.base import (
    AccountReport,
    Capabilities,
    FillReport,
    OrderRequest,
    OrderStatus,
    OrderStatusReport,
    PositionReport,
    TimeInForce,
)
from pinelab.brokers.exceptions import (
    AmbiguousBrokerError,
    BrokerError,
    InvalidOrder,
    OrderNotFound,
    PermanentBrokerError,
    UnknownSymbol,
)
from pinelab.brokers.symbols import ccxt_candidate
from pinelab.brokers.tls import tls_context

FILLS_WINDOW: Final = timedelta(days=1)
FILLS_PAGE: Final = 100
RECENT_ORDERS: Final = timedelta(days=1)  # several venues cap order history queries at a day
_CLIENT_ID_MEMORY: Final = 10_000
_T = TypeVar("_T")


class CcxtBroker:
    """One account at one ccxt exchange (spot), live or sandbox."""

    def __init__(
        self,
        *,
        exchange_id: str,
        api_key: str,
        api_secret: str,
        password: str | None = None,
        sandbox: bool = False,
        urls_override: dict[str, Any] | None = None,
        timeout: float = 10.0,
        options: dict[str, Any] | None = None,
        quote_currency: str = "USDT",
        rate_limit: bool = True,
    ) -> None:
        self.exchange_id = exchange_id
        self.quote_currency = quote_currency.upper()
        self.dialect = mapping.DIALECTS.get(exchange_id, mapping.Dialect())
        config: dict[str, Any] = {
            "apiKey": api_key,
            "secret": api_secret,
            "timeout": int(timeout * 1000),
            "enableRateLimit": rate_limit,
            "number": str,  # numbers stay decimal strings: Decimal(...) is exact
            "options": {"defaultType": "spot", **(options or {})},
            "ssl_context": tls_context(),  # else each exchange object builds its own
        }
        if password is not None:
            config["password"] = password
        self.exchange: Any = mapping.exchange_class(exchange_id)(config)
        if sandbox:
            if not self.exchange.urls.get("test"):
                raise PermanentBrokerError(f"{exchange_id} has no sandbox")
            self.exchange.set_sandbox_mode(True)
        if urls_override:  # merged into urls["api"]; where that is one URL, pass {"api": url}
            api = self.exchange.urls["api"]
            merged = {**api, **urls_override} if isinstance(api, dict) else urls_override["api"]
            self.exchange.urls["api"] = merged
        self.capabilities: Capabilities = mapping.capabilities(self.exchange)
        self._symbols: dict[str, str] = {}
        self._traded: set[str] = set()
        self._client_ids: OrderedDict[str, str | None] = OrderedDict()

    # --- symbols ----------------------------------------------------------------------------

    async def resolve_symbol(self, ticker: str) -> str:
        """Map a TradingView ticker ("CRYPTOCOM:BTCUSDT") to the spot market ("BTC/USDT")."""
        if not self._symbols:
            markets = await self._call(self.exchange.load_markets())
            self._symbols = mapping.symbol_index(markets.values())
        candidate = ccxt_candidate(ticker)
        symbol = self._symbols.get(mapping.compact(candidate))
        if symbol is None:
            raise UnknownSymbol(f"{self.exchange_id} has no spot market for {ticker!r}")
        return symbol

    # --- orders -----------------------------------------------------------------------------

    async def submit_order(self, request: OrderRequest) -> OrderStatusReport:
        """Place an order; a client_order_id the venue already holds returns that order."""
        symbol = await self.resolve_symbol(request.symbol)
        kind, amount, price, params = self._order_arguments(request, symbol)
        params[self.dialect.client_order_id_param] = request.client_order_id
        self._traded.add(symbol)
        try:
            created = await self._call(
                self.exchange.create_order(symbol, kind, request.side.value, amount, price, params),
                submitting=True,
            )
        except mapping.DuplicateClientOrderId as exc:
            existing = await self.fetch_order_by_client_id(request.client_order_id)
            if existing is None:
                raise AmbiguousBrokerError(
                    f"{self.exchange_id} holds {request.client_order_id} but cannot find it"
                ) from exc
            return existing
        return await self._accepted(created, symbol, request.client_order_id)

    async def fetch_order_by_client_id(self, client_order_id: str) -> OrderStatusReport | None:
        """Find an order by our id, or None when the venue has never seen it."""
        if self.dialect.lookup_param is not None:
            params = {self.dialect.lookup_param: client_order_id}
            try:
                order = await self._call(self.exchange.fetch_order(None, None, params))
            except OrderNotFound:
                return None
            return self._report(order)
        for order in await self._recent_orders():
            if order.get("clientOrderId") == client_order_id:
                return self._report(order)
        return None

    async def fetch_order(self, broker_order_id: str) -> OrderStatusReport:
        """Get an order by the venue's id, or raise OrderNotFound."""
        order_id, symbol = self._split(broker_order_id)
        try:
            order = await self._call(self.exchange.fetch_order(order_id, symbol))
        except InvalidOrder as exc:  # a malformed id is no order of ours
            raise OrderNotFound(exc.message) from exc
        return self._report(order)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderStatusReport]:
        """List the orders still working, oldest first, optionally for one symbol."""
        wanted = None if symbol is None else await self.resolve_symbol(symbol)
        orders: list[dict[str, Any]] = []
        for scan in self._scan_symbols("fetchOpenOrders", wanted):
            orders.extend(await self._call(self.exchange.fetch_open_orders(scan)))
        return [self._report(order) for order in _oldest_first(orders)]

    async def cancel_order(self, broker_order_id: str) -> OrderStatusReport:
        """Cancel a working order; a canceled, expired or rejected one is reported unchanged."""
        order_id, symbol = self._split(broker_order_id)
        try:
            await self._call(self.exchange.cancel_order(order_id, symbol))
        except (InvalidOrder, PermanentBrokerError) as exc:
            report = await self.fetch_order(broker_order_id)
            if report.status is OrderStatus.FILLED:
                raise InvalidOrder(f"order {broker_order_id} is already filled") from exc
            if report.status.is_terminal:
                return report
            raise
        return await self.fetch_order(broker_order_id)

    # --- account ----------------------------------------------------------------------------

    async def fetch_account(self) -> AccountReport:
        """Report equity (quote currency plus holdings at last price), cash and buying power."""
        balance = await self._call(self.exchange.fetch_balance())
        quote = balance.get(self.quote_currency) or {}
        cash = mapping.decimal(quote.get("total")) or Decimal(0)
        free = mapping.decimal(quote.get("free")) or Decimal(0)
        holdings = await self._holdings(balance)
        equity = cash + sum((qty * price for _, qty, price in holdings), Decimal(0))
        return AccountReport(
            equity=equity, cash=cash, buying_power=free, currency=self.quote_currency
        )

    async def fetch_positions(self) -> list[PositionReport]:
        """Report each non-zero holding other than the quote currency as a long position."""
        balance = await self._call(self.exchange.fetch_balance())
        return [
            PositionReport(symbol=symbol, quantity=qty, average_price=price, market_price=price)
            for symbol, qty, price in await self._holdings(balance)
        ]

    async def fetch_fills(self, since: datetime) -> list[FillReport]:
        """Report every execution at or after `since`, oldest first."""
        start = mapping.milliseconds(since)
        end = mapping.milliseconds(clock.now() + timedelta(minutes=1))
        trades: dict[str, dict[str, Any]] = {}
        window = mapping.milliseconds_of(FILLS_WINDOW)
        while start <= end:
            stop = min(end, start + window - 1)
            for scan in self._scan_symbols("fetchMyTrades", None):
                for trade in await self._trades_between(scan, start, stop):
                    trades.setdefault(str(trade["id"]), trade)
            start = stop + 1
        ordered = sorted(trades.values(), key=mapping.trade_sort_key)
        fills = []
        for trade in ordered:
            if int(trade.get("timestamp") or 0) >= mapping.milliseconds(since):
                client_id = await self._client_id(str(trade["order"]), str(trade["symbol"]))
                fills.append(
                    self._parse(mapping.fill_report, trade, client_id, self._join, self._quote)
                )
        return fills

    async def check_connection(self) -> None:
        """Load the markets and fetch the balance once; raise a BrokerError if either fails."""
        markets = await self._call(self.exchange.load_markets(True))
        self._symbols = mapping.symbol_index(markets.values())
        await self._call(self.exchange.fetch_balance())

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.exchange.close()

    # --- internals --------------------------------------------------------------------------

    def _order_arguments(
        self, request: OrderRequest, symbol: str
    ) -> tuple[str, float, float | None, dict[str, Any]]:
        """Return ccxt's (type, amount, price, params) for a request, or raise InvalidOrder."""
        if request.is_bracket:
            raise InvalidOrder(f"{self.exchange_id} orders cannot carry bracket legs")
        if request.order_type not in self.capabilities.order_types:
            raise InvalidOrder(f"{self.exchange_id} does not take {request.order_type} orders")
        if request.time_in_force not in self.capabilities.time_in_force:
            raise InvalidOrder(f"{self.exchange_id} does not take {request.time_in_force} orders")
        if request.quantity is None or request.notional is not None:
            raise InvalidOrder(f"{self.exchange_id} orders need a quantity (no notional)")
        market = self.exchange.market(symbol)
        price = self._price(request.limit_price, symbol, "limit price")
        trigger = self._price(request.stop_price, symbol, "stop price")
        kind, params = mapping.order_kind(request, trigger)
        if kind == "limit" and price is None:
            raise InvalidOrder(f"a {request.order_type} order needs a limit price")
        amount = self._amount(request.quantity, symbol)
        mapping.check_minimums(
            market, amount, request.limit_price or request.reference_price or request.stop_price
        )
        if request.time_in_force is not TimeInForce.DAY:
            params["timeInForce"] = request.time_in_force.value.upper()
        return kind, float(amount), None if price is None else float(price), params

    def _amount(self, quantity: Decimal, symbol: str) -> Decimal:
        if not quantity.is_finite() or quantity <= 0:
            raise InvalidOrder(f"quantity must be a positive number, got {quantity}")
        try:
            return Decimal(self.exchange.amount_to_precision(symbol, str(quantity)))
        except ccxt_async.BaseError as exc:
            step = self.exchange.market(symbol)["precision"]["amount"]
            raise InvalidOrder(
                f"quantity {quantity} is below the smallest step {step} of {symbol}"
            ) from exc

    def _price(self, price: Decimal | None, symbol: str, name: str) -> Decimal | None:
        if price is None:
            return None
        if not price.is_finite() or price <= 0:
            raise InvalidOrder(f"{name} must be a positive number, got {price}")
        try:
            return Decimal(self.exchange.price_to_precision(symbol, str(price)))
        except ccxt_async.BaseError as exc:
            raise InvalidOrder(f"{name} {price} is below the price step of {symbol}") from exc

    async def _accepted(
        self, created: dict[str, Any], symbol: str, client_order_id: str
    ) -> OrderStatusReport:
        """Report a just-accepted order, reading its state when the answer was only ids."""
        if created.get("status") is not None and created.get("amount") is not None:
            return self._report(created)
        key = self._join(str(created["id"]), symbol)
        try:
            return await self.fetch_order(key)
        except BrokerError as exc:
            raise AmbiguousBrokerError(
                f"{self.exchange_id} accepted {client_order_id} as {key} but its state is "
                f"unreadable: {exc.message}"
            ) from exc

    async def _recent_orders(self) -> list[dict[str, Any]]:
        """Return open orders and those finished in the last day, for a client id scan."""
        since = mapping.milliseconds(clock.now() - RECENT_ORDERS)
        orders: list[dict[str, Any]] = []
        for scan in self._scan_symbols("fetchOpenOrders", None):
            orders.extend(await self._call(self.exchange.fetch_open_orders(scan)))
        # fetch_orders covers every status; ccxt's emulated fetch_closed_orders only "closed".
        if self.exchange.has.get("fetchOrders"):
            finished, feature = self.exchange.fetch_orders, "fetchOrders"
        elif self.exchange.has.get("fetchClosedOrders"):
            finished, feature = self.exchange.fetch_closed_orders, "fetchClosedOrders"
        else:
            return orders
        for scan in self._scan_symbols(feature, None):
            orders.extend(await self._call(finished(scan, since)))
        return orders

    async def _trades_between(self, symbol: str | None, start: int, stop: int) -> list[Any]:
        """Page backwards through one window of trades (venues answer newest first)."""
        seen: dict[str, Any] = {}
        until = stop
        while True:
            page = await self._call(
                self.exchange.fetch_my_trades(symbol, start, FILLS_PAGE, {"until": until})
            )
            fresh = [trade for trade in page if str(trade["id"]) not in seen]
            seen.update((str(trade["id"]), trade) for trade in fresh)
            if len(page) < FILLS_PAGE or not fresh:
                return list(seen.values())
            until = min(int(trade["timestamp"]) for trade in page)

    async def _holdings(self, balance: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
        """Return (symbol, quantity, last price) for each non-zero non-quote balance."""
        totals = balance.get("total") or {}
        markets = self.exchange.markets or {}
        held = {}
        for code, total in totals.items():
            quantity = mapping.decimal(total)
            symbol = f"{code}/{self.quote_currency}"
            if code != self.quote_currency and quantity and symbol in markets:
                held[symbol] = quantity
        if not held:
            return []
        prices = await self._last_prices(list(held))
        return [(symbol, qty, prices[symbol]) for symbol, qty in held.items() if symbol in prices]

    async def _last_prices(self, symbols: list[str]) -> dict[str, Decimal]:
        if self.exchange.has.get("fetchTickers"):
            tickers = await self._call(self.exchange.fetch_tickers())
        else:
            tickers = {s: await self._call(self.exchange.fetch_ticker(s)) for s in symbols}
        prices = {}
        for symbol in symbols:
            last = mapping.decimal((tickers.get(symbol) or {}).get("last"))
            if last:
                prices[symbol] = last
        return prices

    def _quote(self, symbol: str) -> tuple[str, str]:
        market = self.exchange.market(symbol)
        return str(market["base"]), str(market["quote"])

    def _scan_symbols(self, feature: str, wanted: str | None) -> list[str | None]:
        """Return the symbols to ask about: just `wanted` unless the call needs one each."""
        if wanted is not None or not mapping.symbol_required(self.exchange, feature):
            return [wanted]
        return [*sorted(self._traded)]

    def _join(self, order_id: str, symbol: str) -> str:
        if mapping.symbol_required(self.exchange, "fetchOrder"):
            return f"{order_id}{mapping.ID_SEPARATOR}{symbol}"
        return order_id

    def _split(self, broker_order_id: str) -> tuple[str, str | None]:
        order_id, separator, symbol = broker_order_id.rpartition(mapping.ID_SEPARATOR)
        if separator:
            return order_id, symbol
        if mapping.symbol_required(self.exchange, "fetchOrder"):
            raise OrderNotFound(f"{broker_order_id} is not an order id this adapter issued")
        return broker_order_id, None

    def _report(self, order: dict[str, Any]) -> OrderStatusReport:
        report = self._parse(mapping.order_report, order, self._join, self._quote)
        self._client_ids[report.broker_order_id] = report.client_order_id
        self._client_ids.move_to_end(report.broker_order_id)
        while len(self._client_ids) > _CLIENT_ID_MEMORY:
            self._client_ids.popitem(last=False)
        return report

    async def _client_id(self, order_id: str, symbol: str) -> str | None:
        key = self._join(order_id, symbol)
        if key not in self._client_ids:
            await self.fetch_order(key)
        return self._client_ids.get(key)

    def _parse(self, parser: Callable[..., _T], data: Any, *args: Any) -> _T:
        """Parse an answer; one that is not what ccxt promises is an error, not a crash."""
        try:
            return parser(data, *args)
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            raise mapping.unreadable(self.exchange_id, exc) from exc

    async def _call(self, call: Awaitable[_T], *, submitting: bool = False) -> _T:
        """Await one ccxt call, translating its errors into PineLab's broker errors."""
        try:
            return await call
        except ccxt_async.BaseError as exc:
            raise mapping.broker_error(
                exc, self.exchange_id, self.dialect, submitting=submitting
            ) from exc


def _oldest_first(orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(orders, key=lambda order: (int(order.get("timestamp") or 0), str(order["id"])))
