"""The CCXT adapter against the Crypto.com emulator: the contract, mapping, precision, faults."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import ccxt.async_support as ccxt_async
import psutil
import pytest

from pinelab import clock
from pinelab.brokers import ccxt_mapping as mapping
from pinelab.brokers.base import OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from pinelab.brokers.ccxt import CcxtBroker
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
from tests.fakes.ccxt_emulator import CryptocomEmulator, running_emulator
from tests.fakes.faults import FaultKind
from tests.integration.brokers.contract import BrokerContract
from tests.waiting import eventually

SYMBOL = "BTC/USDT"
INSTRUMENT = "BTC_USDT"


@pytest.fixture
def emulator() -> Iterator[CryptocomEmulator]:
    with running_emulator() as running:
        yield running


def make_broker(emulator: CryptocomEmulator, **options: object) -> CcxtBroker:
    settings: dict[str, object] = {
        "exchange_id": "cryptocom",
        "api_key": emulator.api_key,
        "api_secret": emulator.api_secret,
        "urls_override": emulator.urls,
        "timeout": 2.0,
        "rate_limit": False,
    }
    settings.update(options)
    return CcxtBroker(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def broker(emulator: CryptocomEmulator) -> AsyncIterator[CcxtBroker]:
    adapter = make_broker(emulator)
    yield adapter
    await adapter.close()


@dataclass
class CryptocomVenue:
    """The contract's view of the emulator: the test moves BTC_USDT's price."""

    emulator: CryptocomEmulator
    symbol: str = SYMBOL
    ticker: str = "CRYPTOCOM:BTCUSDT"

    async def set_price(self, price: Decimal) -> None:
        self.emulator.set_price(INSTRUMENT, price)


@pytest.fixture
def venue(emulator: CryptocomEmulator) -> CryptocomVenue:
    return CryptocomVenue(emulator)


class TestCcxtBrokerContract(BrokerContract):
    """The CCXT adapter passes the contract every adapter passes."""


def new_id() -> str:
    return f"test-{uuid.uuid4().hex}"


def buy(amount: str = "0.5", /, **fields: object) -> OrderRequest:
    fields.setdefault("symbol", SYMBOL)
    fields.setdefault("quantity", Decimal(amount))
    return OrderRequest(
        client_order_id=new_id(),
        side=OrderSide.BUY,
        **fields,  # type: ignore[arg-type]
    )


def resting_limit(price: str = "40000", quantity: str = "0.5") -> OrderRequest:
    return buy(quantity, order_type=OrderType.LIMIT, limit_price=Decimal(price))


def creates(emulator: CryptocomEmulator) -> int:
    return emulator.requests.count(("POST", "private/create-order"))


# --- construction, sandbox, capabilities -------------------------------------------------------


def test_sandbox_toggle_points_ccxt_at_the_exchanges_test_urls() -> None:
    live = CcxtBroker(exchange_id="cryptocom", api_key="k", api_secret="s")
    sandbox = CcxtBroker(exchange_id="cryptocom", api_key="k", api_secret="s", sandbox=True)

    assert live.exchange.urls["api"]["v1"] == "https://api.crypto.com/exchange/v1"
    assert sandbox.exchange.urls["api"]["v1"] == "https://uat-api.3ona.co/exchange/v1"


@pytest.mark.parametrize(
    ("exchange_id", "sandbox", "message"),
    [("nosuchexchange", False, "ccxt knows no exchange"), ("bitstamp", True, "has no sandbox")],
)
def test_unknown_exchanges_and_missing_sandboxes_are_permanent_errors(
    exchange_id: str, sandbox: bool, message: str
) -> None:
    with pytest.raises(PermanentBrokerError, match=message):
        CcxtBroker(exchange_id=exchange_id, api_key="k", api_secret="s", sandbox=sandbox)


def test_capabilities_come_from_what_ccxt_says_the_exchange_has(broker: CcxtBroker) -> None:
    capabilities = broker.capabilities

    assert capabilities.order_types == {
        OrderType.MARKET,
        OrderType.LIMIT,
        OrderType.STOP,
        OrderType.STOP_LIMIT,
    }
    assert capabilities.time_in_force == set(TimeInForce)
    assert not capabilities.bracket_orders
    assert not capabilities.notional_orders
    assert not capabilities.short_selling
    assert capabilities.client_order_id


# --- symbols ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ticker", "symbol"),
    [
        ("BTCUSDT", "BTC/USDT"),
        ("CRYPTOCOM:btcusdt", "BTC/USDT"),
        ("BINANCE:BTCUSDT", "BTC/USDT"),
        ("BTC/USDT", "BTC/USDT"),
        (" eth_usdt ", "ETH/USDT"),
    ],
)
async def test_resolve_symbol_maps_tickers_through_the_loaded_markets(
    broker: CcxtBroker, ticker: str, symbol: str
) -> None:
    assert await broker.resolve_symbol(ticker) == symbol


async def test_markets_are_loaded_once(broker: CcxtBroker, emulator: CryptocomEmulator) -> None:
    await broker.resolve_symbol("BTCUSDT")
    await broker.resolve_symbol("ETHUSDT")

    assert emulator.requests.count(("GET", "public/get-instruments")) == 1


@pytest.mark.parametrize("ticker", ["NOPEUSDT", "CRYPTOCOM:", "BTC/EUR"])
async def test_unknown_tickers_raise_unknown_symbol(broker: CcxtBroker, ticker: str) -> None:
    with pytest.raises(UnknownSymbol):
        await broker.resolve_symbol(ticker)


async def test_an_order_for_an_unknown_symbol_is_refused_before_sending(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    with pytest.raises(UnknownSymbol):
        await broker.submit_order(buy(symbol="XYZUSDT"))

    assert creates(emulator) == 0


# --- precision and minimums --------------------------------------------------------------------


async def test_a_quantity_is_cut_down_to_the_markets_step(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    report = await broker.submit_order(resting_limit(price="40000.12", quantity="0.123456789"))

    assert report.quantity == Decimal("0.1234")
    [order] = emulator.books.orders.values()
    assert (order.quantity, order.limit_price) == (Decimal("0.1234"), Decimal("40000.12"))


async def test_a_price_off_the_markets_step_is_refused_never_rounded(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    with pytest.raises(InvalidOrder, match=r"limit price 40000\.126 is not a multiple of BTC/USDT"):
        await broker.submit_order(resting_limit(price="40000.126", quantity="0.1"))

    assert creates(emulator) == 0


async def test_a_quantity_below_the_smallest_step_is_refused_before_sending(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    with pytest.raises(InvalidOrder, match=r"below the smallest step 0\.0001 of BTC/USDT"):
        await broker.submit_order(buy("0.00009"))

    assert creates(emulator) == 0


async def test_market_minimum_amount_and_cost_are_enforced_before_sending(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    # Crypto.com's instrument list carries no minimums; give the loaded market some, as
    # exchanges that publish them (Binance's LOT_SIZE / NOTIONAL filters) do.
    await broker.resolve_symbol(SYMBOL)
    limits = broker.exchange.markets[SYMBOL]["limits"]
    limits["amount"]["min"], limits["cost"]["min"] = "0.001", "10"

    with pytest.raises(InvalidOrder, match=r"below BTC/USDT's minimum amount 0\.001"):
        await broker.submit_order(buy("0.0005"))
    with pytest.raises(InvalidOrder, match=r"order value 5\.000 is below BTC/USDT's minimum 10"):
        await broker.submit_order(resting_limit(price="5000", quantity="0.001"))
    assert creates(emulator) == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"take_profit_price": Decimal(60_000)}, "cannot carry bracket legs"),
        ({"quantity": None, "notional": Decimal(100)}, "need a quantity"),
        ({"order_type": OrderType.TRAILING_STOP}, "does not take trailing_stop orders"),
        ({"order_type": OrderType.STOP}, "needs a stop price"),
        ({"quantity": Decimal(-1)}, "quantity must be a positive number"),
    ],
)
async def test_requests_the_exchange_cannot_take_raise_invalid_order(
    broker: CcxtBroker, emulator: CryptocomEmulator, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidOrder, match=message):
        await broker.submit_order(buy(**fields))

    assert creates(emulator) == 0


# --- orders and statuses -------------------------------------------------------------------------


async def test_client_order_id_travels_as_the_venues_client_oid(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    request = buy()

    report = await broker.submit_order(request)

    assert report.client_order_id == request.client_order_id
    assert emulator.books.by_client_oid[request.client_order_id].order_id == report.broker_order_id


async def test_resubmission_answered_duplicate_returns_the_existing_order(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    request = resting_limit()

    first = await broker.submit_order(request)
    again = await broker.submit_order(request)

    assert again == first
    assert creates(emulator) == 2
    assert len(emulator.books.orders) == 1


async def test_without_a_direct_lookup_client_ids_are_found_by_scanning_recent_orders(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    broker.dialect = mapping.Dialect("client_oid", None, ("DUPLICATE_CLORDID",))
    filled = await broker.submit_order(buy())
    resting = await broker.submit_order(resting_limit())
    canceled = await broker.cancel_order(
        (await broker.submit_order(resting_limit())).broker_order_id
    )

    for report in (filled, resting, canceled):
        assert report.client_order_id is not None
        assert await broker.fetch_order_by_client_id(report.client_order_id) == report
    assert await broker.fetch_order_by_client_id(new_id()) is None
    assert ("POST", "private/get-order-detail") not in emulator.requests[-2:]


async def test_partial_fills_then_cancel_keep_the_filled_quantity(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    resting = await broker.submit_order(resting_limit(quantity="1"))
    emulator.fill(resting.broker_order_id, Decimal("0.4"), Decimal(40_000))

    partial = await broker.fetch_order(resting.broker_order_id)
    canceled = await broker.cancel_order(resting.broker_order_id)

    assert (partial.status, partial.filled_quantity) == (
        OrderStatus.PARTIALLY_FILLED,
        Decimal("0.4"),
    )
    assert partial.average_fill_price == Decimal(40_000)
    assert partial.commission == Decimal(16)  # 0.1 % of 16,000 USDT, charged in USDT
    assert (canceled.status, canceled.filled_quantity) == (OrderStatus.CANCELED, Decimal("0.4"))


@pytest.mark.parametrize(
    ("venue_status", "status"),
    [("EXPIRED", OrderStatus.EXPIRED), ("REJECTED", OrderStatus.REJECTED)],
)
async def test_terminal_venue_statuses_map_onto_ours(
    broker: CcxtBroker, emulator: CryptocomEmulator, venue_status: str, status: OrderStatus
) -> None:
    resting = await broker.submit_order(resting_limit())
    emulator.force_status(resting.broker_order_id, venue_status)

    assert (await broker.fetch_order(resting.broker_order_id)).status is status
    assert await broker.cancel_order(resting.broker_order_id) == await broker.fetch_order(
        resting.broker_order_id
    )


async def test_stop_order_rests_until_the_price_reaches_it(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    stop = await broker.submit_order(buy(order_type=OrderType.STOP, stop_price=Decimal(55_000)))
    assert (stop.order_type, stop.status) == (OrderType.STOP, OrderStatus.ACCEPTED)
    assert emulator.books.orders[stop.broker_order_id].order_type == "STOP_LOSS"

    emulator.set_price(INSTRUMENT, Decimal(56_000))

    filled = await broker.fetch_order(stop.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal(56_000))


async def test_a_buy_beyond_the_balance_raises_insufficient_funds(broker: CcxtBroker) -> None:
    with pytest.raises(InsufficientFunds):
        await broker.submit_order(buy("10"))


async def test_open_orders_filter_by_symbol_and_list_oldest_first(broker: CcxtBroker) -> None:
    btc = await broker.submit_order(resting_limit())
    eth = await broker.submit_order(
        buy("1", symbol="ETHUSDT", order_type=OrderType.LIMIT, limit_price=Decimal(2_000))
    )

    everything = [order.broker_order_id for order in await broker.fetch_open_orders()]
    only_eth = await broker.fetch_open_orders("CRYPTOCOM:ETHUSDT")

    assert everything == [btc.broker_order_id, eth.broker_order_id]
    assert [order.broker_order_id for order in only_eth] == [eth.broker_order_id]


async def test_fills_of_orders_this_adapter_never_saw_carry_their_client_id(
    emulator: CryptocomEmulator, broker: CcxtBroker
) -> None:
    request = buy()
    since = clock.now()
    await broker.submit_order(request)
    fresh = make_broker(emulator)
    try:
        [fill] = await fresh.fetch_fills(since)
    finally:
        await fresh.close()

    assert fill.client_order_id == request.client_order_id
    assert fill.commission == Decimal(25)


# --- account -------------------------------------------------------------------------------------


async def test_account_values_holdings_at_the_last_price_in_the_quote_currency(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    await broker.submit_order(buy("1"))
    await broker.submit_order(resting_limit(price="10000", quantity="1"))  # reserves 10,010

    emulator.set_price(INSTRUMENT, Decimal(60_000))
    account = await broker.fetch_account()
    [position] = await broker.fetch_positions()

    cash = Decimal(100_000) - Decimal(50_000) - Decimal(50)
    assert (account.cash, account.currency) == (cash, "USDT")
    assert account.buying_power == cash - Decimal(10_010)
    assert account.equity == cash + Decimal(60_000)
    assert (position.symbol, position.quantity, position.market_price) == (
        SYMBOL,
        Decimal(1),
        Decimal(60_000),
    )


async def test_bad_credentials_raise_broker_auth_failed(emulator: CryptocomEmulator) -> None:
    impostor = make_broker(emulator, api_secret="not-the-secret")
    try:
        with pytest.raises(BrokerAuthFailed):
            await impostor.check_connection()
    finally:
        await impostor.close()


async def test_exchanges_needing_a_symbol_get_order_ids_that_carry_it() -> None:
    binance = CcxtBroker(exchange_id="binance", api_key="k", api_secret="s")
    try:
        with pytest.raises(OrderNotFound, match="not an order id this adapter issued"):
            await binance.fetch_order("12345")
    finally:
        await binance.close()


# --- injected faults -------------------------------------------------------------------------


@pytest.fixture
async def impatient_broker(emulator: CryptocomEmulator) -> AsyncIterator[CcxtBroker]:
    """An adapter that gives up on an answer after 0.3 s, with its markets loaded."""
    adapter = make_broker(emulator, timeout=0.3)
    await adapter.resolve_symbol(SYMBOL)
    yield adapter
    await adapter.close()


PRIVATE = "/exchange/v1/private/"
CREATE = f"{PRIVATE}create-order"
RATE_LIMITED = {"code": 42901, "message": "TOO_MANY_REQUESTS"}


async def test_429_raises_rate_limited_with_retry_after(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    await broker.resolve_symbol(SYMBOL)
    emulator.faults.add("status", status=429, retry_after=2, path_prefix=PRIVATE, body=RATE_LIMITED)

    with pytest.raises(RateLimited) as raised:
        await broker.fetch_open_orders()

    assert raised.value.retry_after == 2.0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_on_create_is_retryable_and_places_nothing(
    broker: CcxtBroker, emulator: CryptocomEmulator, status: int
) -> None:
    await broker.resolve_symbol(SYMBOL)
    emulator.faults.add("status", status=status, path_prefix=CREATE)

    with pytest.raises(BrokerUnavailable):
        await broker.submit_order(buy())

    assert emulator.books.orders == {}


async def test_gateway_timeout_on_create_is_ambiguous(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    await broker.resolve_symbol(SYMBOL)
    emulator.faults.add("status", status=504, path_prefix=CREATE)

    with pytest.raises(AmbiguousBrokerError):
        await broker.submit_order(buy())


async def test_5xx_on_a_read_is_broker_unavailable(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    await broker.resolve_symbol(SYMBOL)
    emulator.faults.add("status", status=503, path_prefix=PRIVATE)

    with pytest.raises(BrokerUnavailable):
        await broker.fetch_account()


async def test_latency_within_the_timeout_only_slows_calls(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    emulator.faults.add("latency", delay=0.2, count=2)
    started = time.monotonic()

    report = await broker.submit_order(buy())

    assert report.status is OrderStatus.FILLED
    assert time.monotonic() - started >= 0.4


async def test_latency_beyond_the_timeout_on_a_read_is_broker_unavailable(
    impatient_broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    emulator.faults.add("latency", delay=0.6, path_prefix=f"{PRIVATE}user-balance")

    with pytest.raises(BrokerUnavailable):
        await impatient_broker.fetch_account()


async def test_timeout_before_the_venue_saw_the_order_is_ambiguous_and_not_found(
    impatient_broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    emulator.faults.add("timeout", delay=0.6, when="before", path_prefix=CREATE)
    request = buy()

    with pytest.raises(AmbiguousBrokerError):
        await impatient_broker.submit_order(request)

    assert await impatient_broker.fetch_order_by_client_id(request.client_order_id) is None


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("timeout", {"delay": 0.6, "when": "after"}),
        ("drop_response_after_accept", {}),
    ],
)
async def test_lost_answer_after_acceptance_is_ambiguous_and_the_order_is_found(
    impatient_broker: CcxtBroker,
    emulator: CryptocomEmulator,
    kind: FaultKind,
    options: dict[str, object],
) -> None:
    emulator.faults.add(kind, path_prefix=CREATE, **options)
    request = buy()

    with pytest.raises(AmbiguousBrokerError):
        await impatient_broker.submit_order(request)

    found = await impatient_broker.fetch_order_by_client_id(request.client_order_id)
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert await impatient_broker.submit_order(request) == found
    assert len(emulator.books.orders) == 1


async def test_refused_connections_are_broker_unavailable_even_on_create(
    broker: CcxtBroker, emulator: CryptocomEmulator
) -> None:
    await broker.resolve_symbol(SYMBOL)
    emulator.faults.add("refuse")
    # Wait until the client has closed the keep-alive connection the venue dropped: a request
    # written into it would be ambiguous, like any other connection lost after sending.
    await eventually(
        lambda: not _connected_to(emulator.server.port), what="the client to drop its connection"
    )
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.submit_order(buy())
        with pytest.raises(BrokerUnavailable):
            await broker.fetch_open_orders()
    finally:
        emulator.faults.clear()

    assert (await broker.submit_order(buy())).status is OrderStatus.FILLED


def _connected_to(port: int) -> bool:
    """Tell whether this process still holds a TCP connection to `port` (as the OS sees it)."""
    return any(
        connection.raddr and connection.raddr.port == port
        for connection in psutil.Process().net_connections(kind="tcp")
    )


# --- error classification ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "submitting", "ours"),
    [
        (ccxt_async.OrderNotFound("x"), False, OrderNotFound),
        (ccxt_async.InsufficientFunds("x"), True, InsufficientFunds),
        (ccxt_async.BadSymbol("x"), True, UnknownSymbol),
        (ccxt_async.AuthenticationError("x"), False, BrokerAuthFailed),
        (ccxt_async.PermissionDenied("x"), True, BrokerAuthFailed),
        (ccxt_async.InvalidOrder("x"), True, InvalidOrder),
        (ccxt_async.BadRequest("x"), True, InvalidOrder),
        (ccxt_async.DDoSProtection("x"), True, RateLimited),
        (ccxt_async.RequestTimeout("x"), False, BrokerUnavailable),
        (ccxt_async.RequestTimeout("x"), True, AmbiguousBrokerError),
        (ccxt_async.ExchangeNotAvailable("x"), True, AmbiguousBrokerError),
        (ccxt_async.ExchangeError("x"), True, InvalidOrder),
        (ccxt_async.ExchangeError("x"), False, PermanentBrokerError),
    ],
)
def test_ccxt_errors_map_onto_the_broker_error_tree(
    vendor: Exception, submitting: bool, ours: type[BrokerError]
) -> None:
    error = mapping.broker_error(vendor, "cryptocom", mapping.Dialect(), submitting=submitting)

    assert type(error) is ours


def test_a_refused_connection_on_create_is_not_ambiguous() -> None:
    try:
        try:
            raise aiohttp.ClientConnectorError(
                aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
                ConnectionRefusedError(111, "refused"),
            )
        except aiohttp.ClientError as exc:
            raise ccxt_async.ExchangeNotAvailable("down") from exc
    except ccxt_async.ExchangeNotAvailable as vendor:
        error = mapping.broker_error(vendor, "cryptocom", mapping.Dialect(), submitting=True)

    assert type(error) is BrokerUnavailable
