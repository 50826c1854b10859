"""The Alpaca adapter: Alpaca's Trading API v2 (paper and live) behind the `Broker` protocol.

Why httpx against the REST API rather than alpaca-py: alpaca-py's TradingClient is
synchronous (requests), so it would need a thread per call and would hide the one thing
this adapter must know precisely, namely *whether a request left the machine*. With an
`httpx.AsyncClient` on the event loop the transport errors say it: `ConnectError`,
`ConnectTimeout` and `PoolTimeout` mean nothing was sent (retryable, `BrokerUnavailable`);
a `ReadTimeout`, `ReadError`, `WriteError` or `RemoteProtocolError` on POST /v2/orders means
the order may have been accepted (`AmbiguousBrokerError`: look it up by client_order_id).
On reads and cancels the same errors are retryable, since repeating them changes nothing.

Venue rules this adapter relies on, documented once here:

- `client_order_id` is unique per Alpaca account: resubmitting one answers 422
  "client_order_id must be unique", which the adapter turns into the existing order, so a
  retry after any failure (5xx included) never places a second order.
- Bracket orders carry a take-profit limit and a stop-loss stop (or stop limit); with only one
  exit they are sent as `oto`. The exits of a bracket are one-cancels-other at Alpaca. Stop-loss
  legs cannot trail at Alpaca. Legs come back in `legs` and become `OrderStatusReport.legs`.
- Notional and fractional orders are passed through; Alpaca decides what it allows
  (market or limit, day orders for equities) and its refusal becomes `InvalidOrder`.
- Every Alpaca order status maps onto PineLab's state machine (`alpaca_mapping.ALPACA_STATUSES`).
- Requests are paced per account (API key) by a token bucket that never lets more than
  `requests_per_minute` requests into any 60-second window; it waits rather than fails. A 429
  that still happens becomes `RateLimited` with Retry-After (or X-RateLimit-Reset) honoured.
- Fill activities carry no client_order_id; it is taken from the orders this adapter has
  seen, or looked up once per order.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx

from pinelab.brokers import alpaca_mapping as mapping
from pinelab.brokers.base import (
    AccountReport,
    Capabilities,
    FillReport,
    OrderRequest,
    OrderStatus,
    OrderStatusReport,
    PositionReport,
)
from pinelab.brokers.exceptions import (
    AmbiguousBrokerError,
    BrokerAuthFailed,
    BrokerError,
    BrokerUnavailable,
    InvalidOrder,
    OrderNotFound,
    UnknownSymbol,
)
from pinelab.brokers.symbols import alpaca_symbol
from pinelab.brokers.tls import tls_context

PAPER_URL: Final = "https://paper-api.alpaca.markets"
LIVE_URL: Final = "https://api.alpaca.markets"
ORDERS_PAGE: Final = 500
ACTIVITIES_PAGE: Final = 100
CANCEL_SETTLE_POLLS: Final = 3
CANCEL_SETTLE_DELAY: Final = 0.2
_CLIENT_ID_MEMORY: Final = 10_000
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_T = TypeVar("_T")


class RequestPacer:
    """A token bucket (GCRA) that keeps any 60-second window within `per_minute` requests."""

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self.burst = max(1, per_minute // 20)
        # burst + 60 s of refill must not exceed the limit: the refill rate pays for the burst.
        self.interval = 60.0 / max(1, per_minute - self.burst)
        self._tolerance = (self.burst - 1) * self.interval
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Claim the next request slot and return how many seconds to wait for it."""
        with self._lock:
            now = time.monotonic()
            slot = max(self._next_slot, now)
            self._next_slot = slot + self.interval
            return max(0.0, slot - self._tolerance - now)

    async def acquire(self) -> None:
        """Wait until one more request fits within the limit."""
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


_pacers: dict[tuple[str, str, int], RequestPacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(base_url: str, api_key: str, per_minute: int) -> RequestPacer:
    """Return the one pacer shared by every adapter on the same Alpaca account."""
    key_digest = hashlib.sha256(api_key.encode()).hexdigest()
    with _pacers_lock:
        return _pacers.setdefault((base_url, key_digest, per_minute), RequestPacer(per_minute))


class AlpacaBroker:
    """One Alpaca account, paper or live, reached over its REST API."""

    capabilities = Capabilities(
        bracket_orders=True,
        oco_orders=True,
        notional_orders=True,
        fractional_quantity=True,
    )

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        paper: bool,
        base_url: str | None = None,
        timeout: float = 10.0,
        requests_per_minute: int = 200,
    ) -> None:
        url = (base_url or (PAPER_URL if paper else LIVE_URL)).rstrip("/")
        self.paper = paper
        self.base_url = url
        self._pacer = pacer_for(url, api_key, requests_per_minute)
        self._http = httpx.AsyncClient(
            base_url=url,
            headers={"APCA-API-KEY-ID": api_key, "APCA-API-SECRET-KEY": api_secret},
            timeout=httpx.Timeout(timeout),
            verify=tls_context(),
        )
        self._symbols: dict[str, str] = {}
        self._client_ids: OrderedDict[str, str | None] = OrderedDict()

    async def resolve_symbol(self, ticker: str) -> str:
        """Map a TradingView ticker ("NASDAQ:AAPL", "BTCUSD") to Alpaca's ("AAPL", "BTC/USD")."""
        candidate = venue_symbol(ticker)
        cached = self._symbols.get(candidate)
        if cached is not None:
            return cached
        path = f"/v2/assets/{quote(candidate.replace('/', ''), safe='')}"
        asset = await self._request("GET", path, not_found=UnknownSymbol)
        if asset.get("status") != "active" or not asset.get("tradable"):
            raise UnknownSymbol(f"{candidate} is not tradable at Alpaca")
        symbol = str(asset["symbol"])
        self._symbols[candidate] = self._symbols[symbol] = symbol
        return symbol

    async def submit_order(self, request: OrderRequest) -> OrderStatusReport:
        """Place an order; a client_order_id Alpaca already holds returns that order."""
        body = mapping.order_body(request, venue_symbol(request.symbol))
        try:
            data = await self._request("POST", "/v2/orders", json=body, submitting=True)
        except mapping.DuplicateClientOrderId as exc:
            existing = await self.fetch_order_by_client_id(request.client_order_id)
            if existing is None:
                raise AmbiguousBrokerError(
                    f"Alpaca holds client_order_id {request.client_order_id} but cannot find it"
                ) from exc
            return existing
        return self._parse(mapping.order_report, data, submitted=True)

    async def fetch_order_by_client_id(self, client_order_id: str) -> OrderStatusReport | None:
        """Find an order by our id, or None when Alpaca has never seen it."""
        params = {"client_order_id": client_order_id, "nested": "true"}
        try:
            data = await self._request("GET", "/v2/orders:by_client_order_id", params=params)
        except OrderNotFound:
            return None
        return self._parse(mapping.order_report, data)

    async def fetch_order(self, broker_order_id: str) -> OrderStatusReport:
        """Get an order by Alpaca's id, or raise OrderNotFound."""
        try:
            data = await self._request(
                "GET", _order_path(broker_order_id), params={"nested": "true"}
            )
        except InvalidOrder as exc:  # Alpaca answers 422 to an id that is not a UUID
            raise OrderNotFound(exc.message) from exc
        return self._parse(mapping.order_report, data)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderStatusReport]:
        """List the working orders, bracket legs included, oldest first."""
        params = {"status": "open", "direction": "asc", "limit": str(ORDERS_PAGE)}
        if symbol is not None:
            params["symbols"] = venue_symbol(symbol)
        reports: list[OrderStatusReport] = []
        while True:
            page = await self._request("GET", "/v2/orders", params=params)
            reports.extend(self._parse(mapping.order_report, item) for item in page)
            if len(page) < ORDERS_PAGE:
                return reports
            params["after"] = str(page[-1]["submitted_at"])

    async def cancel_order(self, broker_order_id: str) -> OrderStatusReport:
        """Cancel a working order; a canceled, expired or rejected one is reported unchanged."""
        try:
            await self._request("DELETE", _order_path(broker_order_id))
        except InvalidOrder as exc:  # 422: not cancelable in its current state
            report = await self.fetch_order(broker_order_id)
            if report.status is OrderStatus.FILLED:
                raise InvalidOrder(f"order {broker_order_id} is already filled") from exc
            if report.status.is_terminal:
                return report
            raise
        return await self._settled(broker_order_id)

    async def fetch_account(self) -> AccountReport:
        """Report equity, cash and buying power."""
        return self._parse(mapping.account_report, await self._request("GET", "/v2/account"))

    async def fetch_positions(self) -> list[PositionReport]:
        """Report every open position, crypto under its order symbol ("BTC/USD")."""
        positions = await self._request("GET", "/v2/positions")
        reports = []
        for item in positions:
            symbol = str(item.get("symbol", ""))
            if item.get("asset_class") == "crypto" and "/" not in symbol:
                symbol = await self.resolve_symbol(symbol)
            reports.append(self._parse(partial(mapping.position_report, symbol=symbol), item))
        return reports

    async def fetch_fills(self, since: datetime) -> list[FillReport]:
        """Report every execution at or after `since`, oldest first."""
        # `after` is exclusive at Alpaca: ask from a second earlier and filter here.
        params = {
            "after": (since - timedelta(seconds=1)).isoformat(),
            "direction": "asc",
            "page_size": str(ACTIVITIES_PAGE),
        }
        fills: list[FillReport] = []
        while True:
            page = await self._request("GET", "/v2/account/activities/FILL", params=params)
            for item in page:
                client_id = await self._client_id(str(item.get("order_id", "")))
                fill = self._parse(partial(mapping.fill_report, client_order_id=client_id), item)
                if fill.filled_at >= since:
                    fills.append(fill)
            if len(page) < ACTIVITIES_PAGE:
                return fills
            params["page_token"] = str(page[-1]["id"])

    async def check_connection(self) -> None:
        """Fetch the account once; raise BrokerAuthFailed if Alpaca blocks it."""
        account = await self._request("GET", "/v2/account")
        if account.get("account_blocked") or account.get("trading_blocked"):
            raise BrokerAuthFailed("the Alpaca account is blocked from trading")

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _settled(self, broker_order_id: str) -> OrderStatusReport:
        """Report a just-canceled order, waiting briefly for pending_cancel to resolve."""
        report = await self.fetch_order(broker_order_id)
        for _ in range(CANCEL_SETTLE_POLLS):
            if report.status.is_terminal:
                break
            await asyncio.sleep(CANCEL_SETTLE_DELAY)
            report = await self.fetch_order(broker_order_id)
        return report

    async def _client_id(self, broker_order_id: str) -> str | None:
        if broker_order_id not in self._client_ids:
            report = await self.fetch_order(broker_order_id)
            self._remember(report)
        return self._client_ids.get(broker_order_id)

    def _remember(self, report: OrderStatusReport) -> None:
        for order in (report, *report.legs):
            self._client_ids[order.broker_order_id] = order.client_order_id
            self._client_ids.move_to_end(order.broker_order_id)
        while len(self._client_ids) > _CLIENT_ID_MEMORY:
            self._client_ids.popitem(last=False)

    def _parse(self, parser: Callable[[Any], _T], data: Any, *, submitted: bool = False) -> _T:
        """Parse an answer; one Alpaca did not mean to send is an error, not a crash."""
        try:
            result = parser(data)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            message = f"unexpected answer from Alpaca: {exc}"
            if submitted:  # the order was accepted: only its details are unreadable
                raise AmbiguousBrokerError(message) from exc
            raise BrokerUnavailable(message) from exc
        if isinstance(result, OrderStatusReport):
            self._remember(result)
        return result

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        submitting: bool = False,
        not_found: type[BrokerError] = OrderNotFound,
    ) -> Any:
        """Send one paced request and return its JSON, or raise a classified BrokerError."""
        await self._pacer.acquire()
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except _NOT_SENT as exc:
            raise BrokerUnavailable(f"could not reach Alpaca ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            if submitting:
                raise AmbiguousBrokerError(
                    f"no answer from Alpaca after sending the order ({type(exc).__name__})"
                ) from exc
            raise BrokerUnavailable(f"no answer from Alpaca ({type(exc).__name__})") from exc
        if response.is_success:
            return _json(response, submitting=submitting)
        raise _error(response, not_found)


def venue_symbol(ticker: str) -> str:
    """Return the canonical ticker to look up at Alpaca; raise UnknownSymbol for one it lacks."""
    return alpaca_symbol(ticker)


def _order_path(broker_order_id: str) -> str:
    return f"/v2/orders/{quote(broker_order_id, safe='')}"


def _json(response: httpx.Response, *, submitting: bool) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        error = AmbiguousBrokerError if submitting else BrokerUnavailable
        raise error(f"Alpaca answered {response.status_code} with a body that is not JSON") from exc


def _error(response: httpx.Response, not_found: type[BrokerError]) -> BrokerError:
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    message = str(payload.get("message") or response.reason_phrase or "no message")
    return mapping.error_for_status(
        response.status_code,
        code=payload.get("code"),
        message=message,
        retry_after=retry_after(response.headers),
        not_found=not_found,
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Read how long to wait from Retry-After (seconds or a date) or X-RateLimit-Reset (epoch)."""
    value = headers.get("retry-after")
    if value:
        if value.strip().replace(".", "", 1).isdigit():
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    reset = headers.get("x-ratelimit-reset")
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - time.time())
    return None
