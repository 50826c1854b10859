"""The Alpaca adapter against the Alpaca emulator: the contract, statuses, faults, pacing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest

from pinelab import clock
from pinelab.brokers import alpaca
from pinelab.brokers import alpaca_mapping as mapping
from pinelab.brokers.alpaca import AlpacaBroker, RequestPacer, retry_after
from pinelab.brokers.base import (
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    StopLoss,
    TimeInForce,
)
from pinelab.brokers.exceptions import (
    AmbiguousBrokerError,
    BrokerAuthFailed,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    RateLimited,
    RetryableBrokerError,
    UnknownSymbol,
)
from tests.fakes.alpaca_emulator import AlpacaEmulator, running_emulator
from tests.integration.brokers.contract import BrokerContract

SYMBOL = "AAPL"
ORDERS = "/v2/orders"


@pytest.fixture
def emulator() -> Iterator[AlpacaEmulator]:
    with running_emulator() as running:
        yield running


def make_broker(emulator: AlpacaEmulator, **options: object) -> AlpacaBroker:
    settings: dict[str, object] = {
        "api_key": emulator.api_key,
        "api_secret": emulator.api_secret,
        "paper": True,
        "base_url": emulator.url,
        "timeout": 2.0,
        "requests_per_minute": 60_000,
    }
    settings.update(options)
    return AlpacaBroker(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def broker(emulator: AlpacaEmulator) -> AsyncIterator[AlpacaBroker]:
    adapter = make_broker(emulator)
    yield adapter
    await adapter.close()


@pytest.fixture
async def impatient_broker(emulator: AlpacaEmulator) -> AsyncIterator[AlpacaBroker]:
    """An adapter that gives up on an answer after 0.3 s."""
    adapter = make_broker(emulator, timeout=0.3)
    yield adapter
    await adapter.close()


@dataclass
class AlpacaVenue:
    """The contract's view of the emulator: the test moves AAPL's price."""

    emulator: AlpacaEmulator
    symbol: str = SYMBOL
    ticker: str = "NASDAQ:AAPL"

    async def set_price(self, price: Decimal) -> None:
        self.emulator.set_price(self.symbol, price)


@pytest.fixture
def venue(emulator: AlpacaEmulator) -> AlpacaVenue:
    return AlpacaVenue(emulator)


class TestAlpacaBrokerContract(BrokerContract):
    """The Alpaca adapter passes the contract every adapter passes."""


def new_id() -> str:
    return f"test-{uuid.uuid4().hex}"


def market_buy(quantity: Decimal = Decimal(1), **fields: object) -> OrderRequest:
    return OrderRequest(
        client_order_id=new_id(),
        symbol=SYMBOL,
        side=OrderSide.BUY,
        quantity=quantity,
        **fields,  # type: ignore[arg-type]
    )


def resting_limit(price: Decimal = Decimal(50), quantity: Decimal = Decimal(2)) -> OrderRequest:
    return OrderRequest(
        client_order_id=new_id(),
        symbol=SYMBOL,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=quantity,
        limit_price=price,
    )


# --- endpoints and symbols -------------------------------------------------------------------


def test_paper_and_live_use_alpacas_endpoints() -> None:
    paper = AlpacaBroker(api_key="k", api_secret="s", paper=True)
    live = AlpacaBroker(api_key="k", api_secret="s", paper=False)

    assert paper.base_url == "https://paper-api.alpaca.markets"
    assert live.base_url == "https://api.alpaca.markets"


async def test_resolve_symbol_maps_crypto_pairs_and_caches_the_answer(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    assert await broker.resolve_symbol("COINBASE:BTCUSD") == "BTC/USD"
    asked = len(emulator.requests)

    assert await broker.resolve_symbol("coinbase:btcusd") == "BTC/USD"
    assert await broker.resolve_symbol("BTC/USD") == "BTC/USD"
    assert len(emulator.requests) == asked


@pytest.mark.parametrize("ticker", ["NASDAQ:NOPE", "NYSE:OLDCO", "NASDAQ:"])
async def test_unknown_or_untradable_symbols_raise_unknown_symbol(
    broker: AlpacaBroker, ticker: str
) -> None:
    with pytest.raises(UnknownSymbol):
        await broker.resolve_symbol(ticker)


async def test_submitting_an_unknown_symbol_raises_unknown_symbol(broker: AlpacaBroker) -> None:
    request = OrderRequest(
        client_order_id=new_id(), symbol="NOPE", side=OrderSide.BUY, quantity=Decimal(1)
    )
    with pytest.raises(UnknownSymbol):
        await broker.submit_order(request)


# --- orders ------------------------------------------------------------------------------------


async def test_resubmitting_after_acceptance_returns_the_existing_order(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    request = resting_limit()

    first = await broker.submit_order(request)
    again = await broker.submit_order(request)

    assert again == first
    assert len(emulator.books.orders) == 1


async def test_bracket_submit_returns_its_legs_which_work_once_the_entry_fills(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    request = OrderRequest(
        client_order_id=new_id(),
        symbol=SYMBOL,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(3),
        limit_price=Decimal(95),
        time_in_force=TimeInForce.GTC,
        take_profit_price=Decimal(110),
        stop_loss=StopLoss(stop_price=Decimal(90)),
    )

    entry = await broker.submit_order(request)

    assert entry.status is OrderStatus.ACCEPTED
    assert [(leg.order_type, leg.side, leg.status) for leg in entry.legs] == [
        (OrderType.LIMIT, OrderSide.SELL, OrderStatus.ACCEPTED),
        (OrderType.STOP, OrderSide.SELL, OrderStatus.ACCEPTED),
    ]
    assert [leg.reason for leg in entry.legs] == ["Alpaca status held"] * 2
    emulator.set_price(SYMBOL, Decimal(95))
    emulator.set_price(SYMBOL, Decimal(111))
    done = await broker.fetch_order(entry.broker_order_id)
    take_profit, stop_loss = done.legs
    assert done.status is OrderStatus.FILLED
    assert (take_profit.status, take_profit.filled_quantity) == (OrderStatus.FILLED, Decimal(3))
    assert stop_loss.status is OrderStatus.CANCELED
    assert await broker.fetch_positions() == []


async def test_one_exit_is_sent_as_an_oto_order(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    request = market_buy(Decimal(2), stop_loss=StopLoss(stop_price=Decimal(80)))

    entry = await broker.submit_order(request)

    assert entry.status is OrderStatus.FILLED
    assert [(leg.order_type, leg.status) for leg in entry.legs] == [
        (OrderType.STOP, OrderStatus.ACCEPTED)
    ]
    assert emulator.books.orders[entry.broker_order_id].order_class == "oto"


async def test_a_trailing_stop_loss_leg_is_refused_before_anything_is_sent(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    trailing = StopLoss(
        stop_price=Decimal(90), trail_percent=Decimal(2), order_type=OrderType.TRAILING_STOP
    )
    with pytest.raises(InvalidOrder):
        await broker.submit_order(market_buy(take_profit_price=Decimal(120), stop_loss=trailing))
    assert emulator.requests == []


async def test_notional_order_fills_a_fractional_quantity(broker: AlpacaBroker) -> None:
    request = OrderRequest(
        client_order_id=new_id(), symbol=SYMBOL, side=OrderSide.BUY, notional=Decimal(250)
    )

    report = await broker.submit_order(request)

    assert report.status is OrderStatus.FILLED
    assert report.filled_quantity == report.quantity == Decimal("2.5")
    assert report.average_fill_price == Decimal(100)


async def test_fractional_quantity_fills_and_shows_in_positions(broker: AlpacaBroker) -> None:
    report = await broker.submit_order(market_buy(Decimal("0.125")))

    assert (report.status, report.filled_quantity) == (OrderStatus.FILLED, Decimal("0.125"))
    [position] = await broker.fetch_positions()
    assert (position.symbol, position.quantity) == (SYMBOL, Decimal("0.125"))


async def test_fractional_good_till_canceled_equity_order_is_invalid(broker: AlpacaBroker) -> None:
    with pytest.raises(InvalidOrder, match="DAY"):
        await broker.submit_order(market_buy(Decimal("0.5"), time_in_force=TimeInForce.GTC))


async def test_crypto_positions_come_back_under_the_order_symbol(broker: AlpacaBroker) -> None:
    symbol = await broker.resolve_symbol("COINBASE:BTCUSD")
    request = OrderRequest(
        client_order_id=new_id(),
        symbol=symbol,
        side=OrderSide.BUY,
        quantity=Decimal("0.01"),
        time_in_force=TimeInForce.GTC,
    )

    await broker.submit_order(request)

    [position] = await broker.fetch_positions()
    assert (position.symbol, position.quantity) == ("BTC/USD", Decimal("0.01"))
    assert position.market_price == Decimal(50_000)


@pytest.mark.parametrize(
    ("order_type", "prices", "trigger"),
    [
        (OrderType.STOP, {"stop_price": Decimal(105)}, Decimal(106)),
        (
            OrderType.STOP_LIMIT,
            {"stop_price": Decimal(105), "limit_price": Decimal(107)},
            Decimal(106),
        ),
    ],
)
async def test_stop_orders_rest_until_triggered(
    broker: AlpacaBroker,
    emulator: AlpacaEmulator,
    order_type: OrderType,
    prices: dict[str, Decimal],
    trigger: Decimal,
) -> None:
    request = market_buy(order_type=order_type, **prices)
    resting = await broker.submit_order(request)
    assert resting.status is OrderStatus.ACCEPTED

    emulator.set_price(SYMBOL, trigger)

    filled = await broker.fetch_order(resting.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, trigger)


async def test_trailing_stop_sell_follows_the_high_by_its_percent(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    await broker.submit_order(market_buy(Decimal(1)))
    request = OrderRequest(
        client_order_id=new_id(),
        symbol=SYMBOL,
        side=OrderSide.SELL,
        order_type=OrderType.TRAILING_STOP,
        quantity=Decimal(1),
        trail_percent=Decimal(5),
    )
    trailing = await broker.submit_order(request)
    emulator.set_price(SYMBOL, Decimal(120))
    emulator.set_price(SYMBOL, Decimal(115))
    assert (await broker.fetch_order(trailing.broker_order_id)).status is OrderStatus.ACCEPTED

    emulator.set_price(SYMBOL, Decimal(114))

    assert emulator.books.orders[trailing.broker_order_id].stop_price == Decimal("114.00")
    sold = await broker.fetch_order(trailing.broker_order_id)
    assert (sold.status, sold.average_fill_price) == (OrderStatus.FILLED, Decimal(114))


async def test_partial_fill_is_reported_on_the_order_and_as_a_fill(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    since = clock.now()
    resting = await broker.submit_order(resting_limit(Decimal(50), Decimal(4)))

    emulator.fill(resting.broker_order_id, Decimal(1), Decimal(49))

    report = await broker.fetch_order(resting.broker_order_id)
    assert (report.status, report.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, Decimal(1))
    assert [order.broker_order_id for order in await broker.fetch_open_orders()] == [
        resting.broker_order_id
    ]
    [fill] = await broker.fetch_fills(since)
    assert (fill.client_order_id, fill.quantity, fill.price) == (
        resting.client_order_id,
        Decimal(1),
        Decimal(49),
    )


async def test_open_orders_and_fills_are_read_across_pages(
    broker: AlpacaBroker, emulator: AlpacaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alpaca, "ORDERS_PAGE", 2)
    monkeypatch.setattr(alpaca, "ACTIVITIES_PAGE", 2)
    since = clock.now()
    resting = [await broker.submit_order(resting_limit(Decimal(40 + n))) for n in range(5)]
    bought = [await broker.submit_order(market_buy()) for _ in range(5)]

    open_orders = await broker.fetch_open_orders(SYMBOL)
    fills = await broker.fetch_fills(since)

    assert [o.broker_order_id for o in open_orders] == [o.broker_order_id for o in resting]
    assert [f.broker_order_id for f in fills] == [o.broker_order_id for o in bought]


async def test_fills_of_orders_placed_elsewhere_get_their_client_order_id(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    since = clock.now()
    other = make_broker(emulator)
    try:
        placed = await other.submit_order(market_buy())
    finally:
        await other.close()

    [fill] = await broker.fetch_fills(since)

    assert fill.client_order_id == placed.client_order_id


async def test_unknown_and_malformed_order_ids_raise_order_not_found(
    broker: AlpacaBroker,
) -> None:
    for broker_order_id in (str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(OrderNotFound):
            await broker.fetch_order(broker_order_id)
        with pytest.raises(OrderNotFound):
            await broker.cancel_order(broker_order_id)


async def test_cancel_waits_for_a_pending_cancel_to_settle(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    resting = await broker.submit_order(resting_limit())
    emulator.books.cancel_reads = 2

    canceled = await broker.cancel_order(resting.broker_order_id)

    assert canceled.status is OrderStatus.CANCELED


async def test_cancel_reports_a_cancel_that_does_not_settle_as_still_working(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    resting = await broker.submit_order(resting_limit())
    emulator.books.cancel_reads = 10

    report = await broker.cancel_order(resting.broker_order_id)

    assert (report.status, report.reason) == (OrderStatus.ACCEPTED, "Alpaca status pending_cancel")


async def test_blocked_account_fails_the_connection_check(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.books.trading_blocked = True

    with pytest.raises(BrokerAuthFailed, match="blocked"):
        await broker.check_connection()


# --- statuses ----------------------------------------------------------------------------------

EXPECTED_STATUSES = {
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.SUBMITTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "done_for_day": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "some_new_status": OrderStatus.ACCEPTED,
}

SAME_NAMED_STATUSES = {"new", "accepted", "partially_filled", "filled", "canceled"}


def test_every_documented_alpaca_status_is_mapped() -> None:
    assert set(mapping.ALPACA_STATUSES) == set(EXPECTED_STATUSES) - {"some_new_status"}


@pytest.mark.parametrize(("alpaca_status", "expected"), sorted(EXPECTED_STATUSES.items()))
async def test_alpaca_status_maps_onto_our_state_machine(
    broker: AlpacaBroker, emulator: AlpacaEmulator, alpaca_status: str, expected: OrderStatus
) -> None:
    resting = await broker.submit_order(resting_limit())

    emulator.force_status(resting.broker_order_id, alpaca_status)

    report = await broker.fetch_order(resting.broker_order_id)
    assert report.status is expected
    assert (report.reason is None) == (alpaca_status in SAME_NAMED_STATUSES)


@pytest.mark.parametrize(
    ("alpaca_status", "filled", "expected"),
    [
        ("done_for_day", Decimal(1), OrderStatus.PARTIALLY_FILLED),
        ("pending_cancel", Decimal(1), OrderStatus.PARTIALLY_FILLED),
        ("calculated", Decimal(1), OrderStatus.PARTIALLY_FILLED),
        ("calculated", Decimal(2), OrderStatus.FILLED),
        ("canceled", Decimal(1), OrderStatus.CANCELED),
    ],
)
async def test_working_statuses_with_fills_are_partially_filled(
    broker: AlpacaBroker,
    emulator: AlpacaEmulator,
    alpaca_status: str,
    filled: Decimal,
    expected: OrderStatus,
) -> None:
    resting = await broker.submit_order(resting_limit(Decimal(50), Decimal(2)))
    emulator.fill(resting.broker_order_id, filled, Decimal(50))

    emulator.force_status(resting.broker_order_id, alpaca_status)

    report = await broker.fetch_order(resting.broker_order_id)
    assert (report.status, report.filled_quantity) == (expected, filled)


# --- errors from the venue ---------------------------------------------------------------------


async def test_bad_credentials_raise_broker_auth_failed_without_the_secret(
    emulator: AlpacaEmulator,
) -> None:
    adapter = make_broker(emulator, api_secret="wrong-secret-value")
    try:
        with pytest.raises(BrokerAuthFailed) as raised:
            await adapter.check_connection()
    finally:
        await adapter.close()
    assert "wrong-secret-value" not in str(raised.value)
    assert "wrong-secret-value" not in repr(adapter)


async def test_buying_more_than_cash_raises_insufficient_funds(broker: AlpacaBroker) -> None:
    with pytest.raises(InsufficientFunds):
        await broker.submit_order(market_buy(Decimal(5_000)))


async def test_selling_more_than_held_raises_insufficient_funds(broker: AlpacaBroker) -> None:
    request = OrderRequest(
        client_order_id=new_id(), symbol=SYMBOL, side=OrderSide.SELL, quantity=Decimal(1)
    )
    with pytest.raises(InsufficientFunds, match="insufficient qty"):
        await broker.submit_order(request)


async def test_limit_without_price_raises_invalid_order(broker: AlpacaBroker) -> None:
    with pytest.raises(InvalidOrder):
        await broker.submit_order(market_buy(order_type=OrderType.LIMIT))


async def test_account_reports_cash_equity_and_buying_power(broker: AlpacaBroker) -> None:
    await broker.submit_order(market_buy(Decimal(10)))
    await broker.submit_order(resting_limit(Decimal(50), Decimal(10)))

    account = await broker.fetch_account()

    assert account.cash == Decimal(99_000)
    assert account.equity == Decimal(100_000)
    assert account.buying_power == Decimal(98_500)
    assert account.currency == "USD"


# --- injected faults ---------------------------------------------------------------------------


async def test_429_raises_rate_limited_with_retry_after(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.faults.extend([{"kind": "status", "status": 429, "retry_after": 2}])

    with pytest.raises(RateLimited) as raised:
        await broker.fetch_account()

    assert raised.value.retry_after == 2.0
    assert isinstance(raised.value, RetryableBrokerError)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_raises_broker_unavailable_and_a_retry_places_one_order(
    broker: AlpacaBroker, emulator: AlpacaEmulator, status: int
) -> None:
    emulator.faults.add("status", status=status, path_prefix=ORDERS, method="POST")
    request = market_buy()

    with pytest.raises(BrokerUnavailable):
        await broker.submit_order(request)
    report = await broker.submit_order(request)

    assert report.status is OrderStatus.FILLED
    assert len(emulator.books.orders) == 1


async def test_latency_within_the_timeout_is_only_slower(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.faults.add("latency", delay=0.2, count=2)
    started = time.monotonic()

    report = await broker.submit_order(market_buy())

    assert report.status is OrderStatus.FILLED
    assert time.monotonic() - started >= 0.2


async def test_latency_beyond_the_timeout_on_a_read_raises_broker_unavailable(
    impatient_broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.faults.add("latency", delay=0.6, path_prefix="/v2/account")

    with pytest.raises(BrokerUnavailable):
        await impatient_broker.fetch_account()


async def test_timeout_before_the_order_is_accepted_is_ambiguous_and_nothing_is_there(
    impatient_broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.faults.add("timeout", delay=0.6, when="before", path_prefix=ORDERS)
    request = market_buy()

    with pytest.raises(AmbiguousBrokerError):
        await impatient_broker.submit_order(request)

    assert await impatient_broker.fetch_order_by_client_id(request.client_order_id) is None
    assert emulator.books.orders == {}


async def test_timeout_after_the_order_is_accepted_is_ambiguous_and_the_order_is_found(
    impatient_broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.faults.add("timeout", delay=0.6, when="after", path_prefix=ORDERS)
    request = market_buy()

    with pytest.raises(AmbiguousBrokerError):
        await impatient_broker.submit_order(request)

    found = await impatient_broker.fetch_order_by_client_id(request.client_order_id)
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert await impatient_broker.submit_order(request) == found


async def test_response_lost_after_acceptance_is_ambiguous_and_the_order_is_found(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.faults.extend(
        [{"kind": "drop_response_after_accept", "path_prefix": ORDERS, "method": "POST"}]
    )
    request = resting_limit()

    with pytest.raises(AmbiguousBrokerError):
        await broker.submit_order(request)

    found = await broker.fetch_order_by_client_id(request.client_order_id)
    assert found is not None
    assert found.status is OrderStatus.ACCEPTED
    assert [order.client_order_id for order in emulator.books.orders.values()] == [
        request.client_order_id
    ]


async def test_response_lost_on_a_read_raises_broker_unavailable(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.faults.add("drop_response_after_accept", path_prefix="/v2/positions")

    with pytest.raises(BrokerUnavailable):
        await broker.fetch_positions()


async def test_refused_connections_raise_broker_unavailable_until_the_venue_is_back(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    await broker.check_connection()  # leaves a pooled connection behind
    emulator.faults.add("refuse")

    with pytest.raises(BrokerUnavailable):
        await broker.check_connection()
    with pytest.raises(BrokerUnavailable):
        await broker.submit_order(market_buy())

    emulator.faults.clear()
    await broker.check_connection()
    assert emulator.books.orders == {}


async def test_a_closed_port_raises_broker_unavailable() -> None:
    with running_emulator() as emulator:
        url = emulator.url
    adapter = AlpacaBroker(api_key="k", api_secret="s", paper=True, base_url=url)
    try:
        with pytest.raises(BrokerUnavailable):
            await adapter.fetch_account()
    finally:
        await adapter.close()


# --- pacing ------------------------------------------------------------------------------------


async def test_pacer_spaces_requests_beyond_the_burst(emulator: AlpacaEmulator) -> None:
    adapter = make_broker(emulator, requests_per_minute=120)  # burst 6, then one per 60/114 s
    try:
        for _ in range(8):
            await adapter.check_connection()
    finally:
        await adapter.close()

    times = [at for at, _, _ in emulator.requests]
    interval = 60 / 114
    assert times[5] - times[0] < interval
    assert times[6] - times[0] >= interval * 0.9
    assert times[7] - times[6] >= interval * 0.9


async def test_adapters_on_one_account_share_the_pace(emulator: AlpacaEmulator) -> None:
    first = make_broker(emulator, requests_per_minute=120)
    second = make_broker(emulator, requests_per_minute=120)
    try:
        await asyncio.gather(*(a.check_connection() for a in (first, second) * 4))
    finally:
        await first.close()
        await second.close()

    times = sorted(at for at, _, _ in emulator.requests)
    # Unpaced, the eight requests land within milliseconds; paced, two slots apart at least.
    # Arrival times carry connection-setup jitter on a loaded machine, hence the wide margin.
    assert times[-1] - times[0] >= 2 * (60 / 114) * 0.75


def test_pacer_never_lets_more_than_the_limit_into_a_minute() -> None:
    pacer = RequestPacer(200)
    start = time.monotonic()
    slots = [start + pacer.reserve() for _ in range(600)]

    busiest = max(sum(1 for other in slots if slot <= other < slot + 60) for slot in slots[:220])

    assert pacer.burst == 10
    assert 195 <= busiest <= 200


# --- mapping details -----------------------------------------------------------------------------


def test_retry_after_reads_seconds_dates_and_reset_epochs() -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)

    assert retry_after({"retry-after": "2"}) == 2.0
    from_date = retry_after({"retry-after": format_datetime(later, usegmt=True)})
    from_reset = retry_after({"x-ratelimit-reset": str(int(time.time()) + 10)})
    assert from_date is not None
    assert 25 <= from_date <= 30
    assert from_reset is not None
    assert 8 <= from_reset <= 10
    assert retry_after({}) is None


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (403, 40310000, "insufficient buying power", InsufficientFunds),
        (403, 40310000, "potential wash trade detected", InvalidOrder),
        (403, None, "forbidden.", BrokerAuthFailed),
        (401, 40110000, "request is not authorized", BrokerAuthFailed),
        (422, 40010001, "client_order_id must be unique", mapping.DuplicateClientOrderId),
        (422, 40010001, 'asset "NOPE" not found', UnknownSymbol),
        (422, 40010001, "qty must be > 0", InvalidOrder),
        (408, None, "request timeout", BrokerUnavailable),
        (429, None, "rate limit exceeded", RateLimited),
    ],
)
def test_alpaca_errors_are_classified(
    status: int, code: int | None, message: str, expected: type[Exception]
) -> None:
    error = mapping.error_for_status(
        status, code=code, message=message, retry_after=None, not_found=OrderNotFound
    )
    assert type(error) is expected


def test_order_body_writes_plain_decimals_and_the_bracket_class() -> None:
    request = OrderRequest(
        client_order_id="abc",
        symbol=SYMBOL,
        side=OrderSide.SELL,
        order_type=OrderType.LIMIT,
        quantity=Decimal("1E+2"),
        limit_price=Decimal("101.50"),
        take_profit_price=Decimal(90),
        stop_loss=StopLoss(stop_price=Decimal(110), limit_price=Decimal(111)),
    )

    assert mapping.order_body(request, SYMBOL) == {
        "symbol": SYMBOL,
        "side": "sell",
        "type": "limit",
        "time_in_force": "day",
        "client_order_id": "abc",
        "qty": "100",
        "limit_price": "101.50",
        "order_class": "bracket",
        "take_profit": {"limit_price": "90"},
        "stop_loss": {"stop_price": "110", "limit_price": "111"},
    }


def test_short_positions_have_a_negative_quantity() -> None:
    report = mapping.position_report(
        {"qty": "5", "side": "short", "avg_entry_price": "10", "current_price": None}, SYMBOL
    )
    assert report.quantity == Decimal(-5)


def test_notional_order_without_fills_reports_zero_quantity() -> None:
    report: OrderStatusReport = mapping.order_report(
        {
            "id": "x",
            "client_order_id": "c",
            "symbol": SYMBOL,
            "side": "buy",
            "type": "market",
            "status": "accepted",
            "qty": None,
            "notional": "250",
            "filled_qty": "0",
        }
    )
    assert (report.quantity, report.status, report.updated_at) == (
        Decimal(0),
        OrderStatus.ACCEPTED,
        None,
    )
