"""The paper broker against a real database: venue rules, books, idempotency, the contract."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from pinelab import clock
from pinelab.accounts.models import User
from pinelab.brokers.base import (
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    QuoteDriven,
    StopLoss,
    TimeInForce,
)
from pinelab.brokers.exceptions import InvalidOrder, OrderNotFound, UnknownSymbol
from pinelab.brokers.models import BrokerAccount, PaperAccount, PaperFill, PaperOrder
from pinelab.brokers.paper import PaperBroker
from pinelab.db import Database
from tests.integration.brokers.contract import BrokerContract

STARTING_CASH = Decimal(10_000)
COMMISSION = Decimal(1)
SLIPPAGE_BPS = Decimal(10)
SYMBOL = "AAPL"

MakeBroker = Callable[..., PaperBroker]


async def create_broker_account(db: Database, email: str) -> int:
    """Store a user and a paper broker account; return the account id."""
    async with db.transaction() as session:
        user = User(email=email, password_hash="not-a-real-hash")
        session.add(user)
        await session.flush()
        account = BrokerAccount(
            user_id=user.id, kind="paper", label="Paper", paper=True, starting_cash=STARTING_CASH
        )
        session.add(account)
        await session.flush()
        return account.id


@pytest.fixture
async def broker_account_id(db: Database) -> int:
    return await create_broker_account(db, "trader@example.com")


@pytest.fixture
def make_broker(db: Database, broker_account_id: int) -> MakeBroker:
    def make(
        *,
        account_id: int = broker_account_id,
        starting_cash: Decimal = STARTING_CASH,
        commission: Decimal = COMMISSION,
        slippage_bps: Decimal = SLIPPAGE_BPS,
    ) -> PaperBroker:
        return PaperBroker(
            db,
            broker_account_id=account_id,
            starting_cash=starting_cash,
            commission_per_order=commission,
            slippage_bps=slippage_bps,
        )

    return make


@pytest.fixture
def broker(make_broker: MakeBroker) -> PaperBroker:
    """A paper broker charging $1 per order and 10 bps of slippage."""
    return make_broker()


@pytest.fixture
def frictionless(make_broker: MakeBroker) -> PaperBroker:
    """A paper broker with neither commission nor slippage."""
    return make_broker(commission=Decimal(0), slippage_bps=Decimal(0))


@dataclass
class PaperVenue:
    """The contract's view of the paper venue: prices arrive through update_price."""

    broker: PaperBroker
    symbol: str = SYMBOL
    ticker: str = f"NASDAQ:{SYMBOL}"

    async def set_price(self, price: Decimal) -> None:
        await self.broker.update_price(self.symbol, price)


@pytest.fixture
def venue(broker: PaperBroker) -> PaperVenue:
    return PaperVenue(broker)


class TestPaperBrokerContract(BrokerContract):
    """The paper broker passes the contract every adapter passes."""


def request(
    client_order_id: str, side: OrderSide = OrderSide.BUY, /, **fields: object
) -> OrderRequest:
    fields.setdefault("symbol", SYMBOL)
    if "notional" not in fields:
        fields.setdefault("quantity", Decimal(10))
    return OrderRequest(client_order_id=client_order_id, side=side, **fields)  # type: ignore[arg-type]


def limit(client_order_id: str, side: OrderSide, price: str, **fields: object) -> OrderRequest:
    return request(
        client_order_id, side, order_type=OrderType.LIMIT, limit_price=Decimal(price), **fields
    )


async def order_count(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(PaperOrder)) or 0


async def fill_count(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(PaperFill)) or 0


# --- account and money --------------------------------------------------------------------


async def test_cash_row_is_created_at_starting_cash_on_first_use(
    db: Database, broker: PaperBroker, broker_account_id: int
) -> None:
    account = await broker.fetch_account()
    assert (account.cash, account.equity, account.buying_power) == (STARTING_CASH,) * 3
    async with db.session() as session:
        assert await session.get(PaperAccount, broker_account_id) is None

    await broker.update_price(SYMBOL, Decimal(100))

    async with db.session() as session:
        row = await session.get(PaperAccount, broker_account_id)
    assert row is not None
    assert row.cash == STARTING_CASH


async def test_market_buy_pays_price_plus_slippage_and_one_commission(broker: PaperBroker) -> None:
    report = await broker.submit_order(request("buy-1", reference_price=Decimal(100)))

    assert report.status is OrderStatus.FILLED
    assert report.average_fill_price == Decimal("100.1")
    account = await broker.fetch_account()
    assert account.cash == Decimal(10_000) - Decimal("1001") - COMMISSION
    assert account.buying_power == account.cash
    # Marked at the last quote (100), not at the price paid.
    assert account.equity == Decimal("8998") + Decimal(1000)
    [position] = await broker.fetch_positions()
    assert (position.symbol, position.quantity, position.average_price) == (
        SYMBOL,
        Decimal(10),
        Decimal("100.1"),
    )
    assert position.market_price == Decimal(100)


async def test_market_sell_short_receives_price_less_slippage(broker: PaperBroker) -> None:
    report = await broker.submit_order(
        request("short-1", OrderSide.SELL, reference_price=Decimal(100))
    )

    assert report.average_fill_price == Decimal("99.9")
    account = await broker.fetch_account()
    assert account.cash == Decimal(10_000) + Decimal(999) - COMMISSION
    assert account.equity == Decimal(10_998) - Decimal(1000)
    [position] = await broker.fetch_positions()
    assert (position.quantity, position.average_price) == (Decimal(-10), Decimal("99.9"))


async def test_commission_is_charged_once_per_order(broker: PaperBroker) -> None:
    await broker.submit_order(request("c-1", quantity=Decimal(1), reference_price=Decimal(100)))
    await broker.submit_order(request("c-2", quantity=Decimal(1), reference_price=Decimal(100)))

    fills = await broker.fetch_fills(clock.now().replace(year=2000))
    assert [fill.commission for fill in fills] == [COMMISSION, COMMISSION]
    assert (await broker.fetch_account()).cash == Decimal(10_000) - 2 * Decimal("100.1") - 2


async def test_market_order_without_any_price_is_rejected_with_reason(
    db: Database, broker: PaperBroker
) -> None:
    report = await broker.submit_order(request("no-price"))

    assert report.status is OrderStatus.REJECTED
    assert report.reason == "no price known for AAPL"
    assert await broker.fetch_order_by_client_id("no-price") == report
    assert await fill_count(db) == 0
    assert (await broker.fetch_account()).cash == STARTING_CASH


async def test_market_order_fills_at_the_last_quote_when_no_reference_price(
    frictionless: PaperBroker,
) -> None:
    await frictionless.update_price(SYMBOL, Decimal(50))

    report = await frictionless.submit_order(request("from-quote"))

    assert (report.status, report.average_fill_price) == (OrderStatus.FILLED, Decimal(50))


async def test_notional_market_order_converts_at_the_fill_price(broker: PaperBroker) -> None:
    report = await broker.submit_order(
        request("notional-1", notional=Decimal(1000), reference_price=Decimal(100))
    )

    assert report.status is OrderStatus.FILLED
    assert report.average_fill_price == Decimal("100.1")
    assert report.quantity == report.filled_quantity == Decimal("9.99000999")
    assert (await broker.fetch_account()).cash == Decimal(10_000) - Decimal(1000) - COMMISSION


async def test_fractional_quantities_trade(frictionless: PaperBroker) -> None:
    report = await frictionless.submit_order(
        request("fraction", quantity=Decimal("0.125"), reference_price=Decimal(80))
    )

    assert report.filled_quantity == Decimal("0.125")
    assert (await frictionless.fetch_account()).cash == Decimal(9990)


async def test_buy_costing_more_than_cash_is_rejected_naming_cash_and_cost(
    db: Database, broker: PaperBroker
) -> None:
    report = await broker.submit_order(
        request("too-big", quantity=Decimal(100), reference_price=Decimal(100))
    )

    assert report.status is OrderStatus.REJECTED
    assert report.reason == "insufficient cash: 10000 available, 10011 needed"
    assert await fill_count(db) == 0
    assert await broker.fetch_positions() == []
    assert (await broker.fetch_account()).cash == STARTING_CASH


async def test_buy_costing_exactly_the_cash_fills(make_broker: MakeBroker) -> None:
    broker = make_broker(starting_cash=Decimal(1001), slippage_bps=Decimal(0))

    report = await broker.submit_order(request("exact", reference_price=Decimal(100)))

    assert report.status is OrderStatus.FILLED
    assert (await broker.fetch_account()).cash == 0


async def test_resting_buy_is_rejected_at_fill_time_when_cash_ran_out(
    frictionless: PaperBroker,
) -> None:
    await frictionless.update_price(SYMBOL, Decimal(100))
    first = await frictionless.submit_order(
        limit("first", OrderSide.BUY, "99", quantity=Decimal(60))
    )
    second = await frictionless.submit_order(
        limit("second", OrderSide.BUY, "99", quantity=Decimal(60))
    )
    assert first.status is second.status is OrderStatus.ACCEPTED

    await frictionless.update_price(SYMBOL, Decimal(98))

    # Worked in creation order: the first takes the cash, the second finds too little.
    assert (await frictionless.fetch_order(first.broker_order_id)).status is OrderStatus.FILLED
    refused = await frictionless.fetch_order(second.broker_order_id)
    assert refused.status is OrderStatus.REJECTED
    assert refused.reason == "insufficient cash: 4120 available, 5880 needed"


# --- resting orders and triggers -----------------------------------------------------------


async def test_buy_limit_rests_then_fills_at_the_crossing_price_without_slippage(
    broker: PaperBroker,
) -> None:
    report = await broker.submit_order(
        limit("lmt", OrderSide.BUY, "95", reference_price=Decimal(100))
    )
    assert report.status is OrderStatus.ACCEPTED

    await broker.update_price(SYMBOL, Decimal(96))
    assert (await broker.fetch_order(report.broker_order_id)).status is OrderStatus.ACCEPTED

    await broker.update_price(SYMBOL, Decimal(94))
    filled = await broker.fetch_order(report.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal(94))
    assert (await broker.fetch_account()).cash == Decimal(10_000) - Decimal(940) - COMMISSION


async def test_sell_limit_fills_when_the_price_reaches_the_limit(frictionless: PaperBroker) -> None:
    report = await frictionless.submit_order(
        limit("sell-lmt", OrderSide.SELL, "105", reference_price=Decimal(100))
    )
    await frictionless.update_price(SYMBOL, Decimal("104.99"))
    assert (await frictionless.fetch_order(report.broker_order_id)).status is OrderStatus.ACCEPTED

    await frictionless.update_price(SYMBOL, Decimal(105))

    filled = await frictionless.fetch_order(report.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal(105))


async def test_marketable_limit_fills_on_submit_at_the_better_market_price(
    broker: PaperBroker,
) -> None:
    report = await broker.submit_order(
        limit("mkt-lmt", OrderSide.BUY, "105", reference_price=Decimal(100))
    )

    assert (report.status, report.average_fill_price) == (OrderStatus.FILLED, Decimal(100))


async def test_reference_price_of_another_submit_crosses_resting_orders(
    frictionless: PaperBroker,
) -> None:
    resting = await frictionless.submit_order(
        limit("rest", OrderSide.BUY, "95", reference_price=Decimal(100))
    )

    await frictionless.submit_order(
        request("other", OrderSide.SELL, quantity=Decimal(1), reference_price=Decimal(94))
    )

    filled = await frictionless.fetch_order(resting.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal(94))


async def test_update_price_only_works_orders_of_that_symbol(frictionless: PaperBroker) -> None:
    resting = await frictionless.submit_order(
        limit("msft", OrderSide.BUY, "95", symbol="MSFT", reference_price=Decimal(100))
    )

    await frictionless.update_price(SYMBOL, Decimal(90))

    assert (await frictionless.fetch_order(resting.broker_order_id)).status is OrderStatus.ACCEPTED


async def test_buy_stop_triggers_at_the_stop_and_fills_with_slippage(broker: PaperBroker) -> None:
    report = await broker.submit_order(
        request(
            "stop-buy",
            order_type=OrderType.STOP,
            stop_price=Decimal(110),
            reference_price=Decimal(100),
        )
    )
    await broker.update_price(SYMBOL, Decimal("109.99"))
    assert (await broker.fetch_order(report.broker_order_id)).status is OrderStatus.ACCEPTED

    await broker.update_price(SYMBOL, Decimal(111))

    filled = await broker.fetch_order(report.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal("111.111"))


async def test_sell_stop_triggers_at_or_below_the_stop(frictionless: PaperBroker) -> None:
    report = await frictionless.submit_order(
        request(
            "stop-sell",
            OrderSide.SELL,
            order_type=OrderType.STOP,
            stop_price=Decimal(95),
            reference_price=Decimal(100),
        )
    )
    await frictionless.update_price(SYMBOL, Decimal("95.01"))
    assert (await frictionless.fetch_order(report.broker_order_id)).status is OrderStatus.ACCEPTED

    await frictionless.update_price(SYMBOL, Decimal(95))

    filled = await frictionless.fetch_order(report.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal(95))


async def test_stop_limit_triggers_at_the_stop_then_waits_for_its_limit(
    broker: PaperBroker,
) -> None:
    report = await broker.submit_order(
        request(
            "stop-limit",
            OrderSide.SELL,
            order_type=OrderType.STOP_LIMIT,
            stop_price=Decimal(95),
            limit_price=Decimal(94),
            reference_price=Decimal(100),
        )
    )
    await broker.update_price(SYMBOL, Decimal(93))  # stop touched, below the sell limit
    assert (await broker.fetch_order(report.broker_order_id)).status is OrderStatus.ACCEPTED

    await broker.update_price(SYMBOL, Decimal("94.5"))  # above the stop again, but triggered

    filled = await broker.fetch_order(report.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal("94.5"))


async def test_untriggered_stop_limit_ignores_a_crossed_limit(frictionless: PaperBroker) -> None:
    report = await frictionless.submit_order(
        request(
            "stop-limit-buy",
            order_type=OrderType.STOP_LIMIT,
            stop_price=Decimal(110),
            limit_price=Decimal(111),
            reference_price=Decimal(100),
        )
    )
    assert report.status is OrderStatus.ACCEPTED

    await frictionless.update_price(SYMBOL, Decimal(112))  # triggers; above the buy limit
    assert (await frictionless.fetch_order(report.broker_order_id)).status is OrderStatus.ACCEPTED
    await frictionless.update_price(SYMBOL, Decimal("110.5"))

    filled = await frictionless.fetch_order(report.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal("110.5"))


async def test_trailing_sell_stop_follows_the_high_and_triggers_on_the_pullback(
    broker: PaperBroker,
) -> None:
    report = await broker.submit_order(
        request(
            "trail-sell",
            OrderSide.SELL,
            order_type=OrderType.TRAILING_STOP,
            trail_percent=Decimal(5),
            reference_price=Decimal(100),
        )
    )
    await broker.update_price(SYMBOL, Decimal(120))  # stop moves from 95 to 114
    await broker.update_price(SYMBOL, Decimal("114.01"))
    assert (await broker.fetch_order(report.broker_order_id)).status is OrderStatus.ACCEPTED

    await broker.update_price(SYMBOL, Decimal(114))

    filled = await broker.fetch_order(report.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal("113.886"))


async def test_trailing_buy_stop_follows_the_low(frictionless: PaperBroker) -> None:
    report = await frictionless.submit_order(
        request(
            "trail-buy",
            order_type=OrderType.TRAILING_STOP,
            trail_percent=Decimal(10),
            reference_price=Decimal(100),
        )
    )
    await frictionless.update_price(SYMBOL, Decimal(80))  # stop moves from 110 to 88
    await frictionless.update_price(SYMBOL, Decimal("87.99"))
    assert (await frictionless.fetch_order(report.broker_order_id)).status is OrderStatus.ACCEPTED

    await frictionless.update_price(SYMBOL, Decimal(88))

    filled = await frictionless.fetch_order(report.broker_order_id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, Decimal(88))


async def test_trailing_stop_without_a_price_starts_trailing_at_the_first_price(
    frictionless: PaperBroker,
) -> None:
    report = await frictionless.submit_order(
        request(
            "trail-late",
            OrderSide.SELL,
            order_type=OrderType.TRAILING_STOP,
            trail_percent=Decimal(10),
        )
    )
    assert report.status is OrderStatus.ACCEPTED

    await frictionless.update_price(SYMBOL, Decimal(50))
    assert (await frictionless.fetch_order(report.broker_order_id)).status is OrderStatus.ACCEPTED
    await frictionless.update_price(SYMBOL, Decimal(45))

    assert (await frictionless.fetch_order(report.broker_order_id)).status is OrderStatus.FILLED


@pytest.mark.parametrize("time_in_force", [TimeInForce.IOC, TimeInForce.FOK])
async def test_non_marketable_ioc_and_fok_limits_are_canceled_at_once(
    broker: PaperBroker, time_in_force: TimeInForce
) -> None:
    report = await broker.submit_order(
        limit(
            "now-or-never",
            OrderSide.BUY,
            "95",
            time_in_force=time_in_force,
            reference_price=Decimal(100),
        )
    )

    assert report.status is OrderStatus.CANCELED
    assert report.reason == f"{time_in_force} order could not fill"
    assert await broker.fetch_open_orders() == []


async def test_marketable_ioc_limit_fills(frictionless: PaperBroker) -> None:
    report = await frictionless.submit_order(
        limit(
            "ioc-ok",
            OrderSide.BUY,
            "101",
            time_in_force=TimeInForce.IOC,
            reference_price=Decimal(100),
        )
    )

    assert report.status is OrderStatus.FILLED


async def test_day_limit_stays_open_with_no_session_calendar(
    broker: PaperBroker, frozen_clock: clock.FrozenClock
) -> None:
    report = await broker.submit_order(
        limit("day", OrderSide.BUY, "95", reference_price=Decimal(100))
    )

    frozen_clock.advance(3 * 24 * 3600)
    await broker.update_price(SYMBOL, Decimal(100))

    assert [order.broker_order_id for order in await broker.fetch_open_orders()] == [
        report.broker_order_id
    ]


# --- brackets ------------------------------------------------------------------------------


def bracket(
    client_order_id: str, side: OrderSide = OrderSide.BUY, /, **fields: object
) -> OrderRequest:
    fields.setdefault("take_profit_price", Decimal(110))
    fields.setdefault("stop_loss", StopLoss(stop_price=Decimal(95)))
    return request(client_order_id, side, **fields)


def legs_by_type(report: OrderStatusReport) -> dict[OrderType, OrderStatusReport]:
    return {leg.order_type: leg for leg in report.legs}


async def test_filled_bracket_entry_places_opposite_legs_for_the_filled_quantity(
    frictionless: PaperBroker,
) -> None:
    entry = await frictionless.submit_order(bracket("bracket-1", reference_price=Decimal(100)))

    assert entry.status is OrderStatus.FILLED
    legs = legs_by_type(entry)
    assert set(legs) == {OrderType.LIMIT, OrderType.STOP}
    for leg in legs.values():
        assert (leg.side, leg.quantity, leg.status) == (
            OrderSide.SELL,
            Decimal(10),
            OrderStatus.ACCEPTED,
        )
    open_ids = {order.broker_order_id for order in await frictionless.fetch_open_orders(SYMBOL)}
    assert open_ids == {leg.broker_order_id for leg in entry.legs}


async def test_take_profit_fill_cancels_the_stop_loss(frictionless: PaperBroker) -> None:
    entry = await frictionless.submit_order(bracket("bracket-tp", reference_price=Decimal(100)))

    await frictionless.update_price(SYMBOL, Decimal(111))

    legs = legs_by_type(await frictionless.fetch_order(entry.broker_order_id))
    assert legs[OrderType.LIMIT].status is OrderStatus.FILLED
    assert legs[OrderType.LIMIT].average_fill_price == Decimal(111)
    assert legs[OrderType.STOP].status is OrderStatus.CANCELED
    assert await frictionless.fetch_positions() == []
    assert await frictionless.fetch_open_orders() == []
    assert (await frictionless.fetch_account()).cash == Decimal(10_110)


async def test_stop_loss_fill_cancels_the_take_profit(broker: PaperBroker) -> None:
    entry = await broker.submit_order(bracket("bracket-sl", reference_price=Decimal(100)))

    await broker.update_price(SYMBOL, Decimal(90))

    legs = legs_by_type(await broker.fetch_order(entry.broker_order_id))
    assert legs[OrderType.STOP].status is OrderStatus.FILLED
    assert legs[OrderType.STOP].average_fill_price == Decimal("89.91")
    assert legs[OrderType.LIMIT].status is OrderStatus.CANCELED
    assert await broker.fetch_positions() == []
    # Entry at 100.1 and exit at 89.91, one commission on each.
    assert (await broker.fetch_account()).cash == Decimal(10_000) - Decimal("101.9") - 2


async def test_resting_bracket_entry_places_its_legs_only_once_filled(
    frictionless: PaperBroker,
) -> None:
    entry = await frictionless.submit_order(
        bracket(
            "bracket-lmt",
            order_type=OrderType.LIMIT,
            limit_price=Decimal(98),
            reference_price=Decimal(100),
        )
    )
    assert entry.status is OrderStatus.ACCEPTED
    assert entry.legs == ()

    await frictionless.update_price(SYMBOL, Decimal(97))

    filled = await frictionless.fetch_order(entry.broker_order_id)
    assert filled.status is OrderStatus.FILLED
    assert {leg.status for leg in filled.legs} == {OrderStatus.ACCEPTED}
    assert len(filled.legs) == 2


async def test_bracket_with_only_a_take_profit_places_one_leg(frictionless: PaperBroker) -> None:
    entry = await frictionless.submit_order(
        request("tp-only", take_profit_price=Decimal(110), reference_price=Decimal(100))
    )

    [leg] = entry.legs
    assert (leg.order_type, leg.side) == (OrderType.LIMIT, OrderSide.SELL)


async def test_trailing_stop_loss_leg_trails_from_the_entry_price(
    frictionless: PaperBroker,
) -> None:
    entry = await frictionless.submit_order(
        bracket(
            "bracket-trail",
            take_profit_price=Decimal(200),
            stop_loss=StopLoss(
                stop_price=Decimal(1),
                trail_percent=Decimal(10),
                order_type=OrderType.TRAILING_STOP,
            ),
            reference_price=Decimal(100),
        )
    )
    await frictionless.update_price(SYMBOL, Decimal(150))  # stop trails up to 135
    await frictionless.update_price(SYMBOL, Decimal("135.01"))
    assert {leg.status for leg in (await frictionless.fetch_order(entry.broker_order_id)).legs} == {
        OrderStatus.ACCEPTED
    }

    await frictionless.update_price(SYMBOL, Decimal(135))

    legs = legs_by_type(await frictionless.fetch_order(entry.broker_order_id))
    assert legs[OrderType.TRAILING_STOP].status is OrderStatus.FILLED
    assert legs[OrderType.LIMIT].status is OrderStatus.CANCELED


async def test_stop_limit_stop_loss_leg_is_placed_as_a_stop_limit(
    frictionless: PaperBroker,
) -> None:
    entry = await frictionless.submit_order(
        bracket(
            "bracket-stop-limit",
            stop_loss=StopLoss(
                stop_price=Decimal(95), limit_price=Decimal(94), order_type=OrderType.STOP_LIMIT
            ),
            reference_price=Decimal(100),
        )
    )

    await frictionless.update_price(SYMBOL, Decimal("94.5"))

    legs = legs_by_type(await frictionless.fetch_order(entry.broker_order_id))
    assert legs[OrderType.STOP_LIMIT].status is OrderStatus.FILLED
    assert legs[OrderType.STOP_LIMIT].average_fill_price == Decimal("94.5")


async def test_short_bracket_legs_buy_back(frictionless: PaperBroker) -> None:
    entry = await frictionless.submit_order(
        bracket(
            "short-bracket",
            OrderSide.SELL,
            take_profit_price=Decimal(90),
            stop_loss=StopLoss(stop_price=Decimal(105)),
            reference_price=Decimal(100),
        )
    )

    await frictionless.update_price(SYMBOL, Decimal(106))

    legs = legs_by_type(await frictionless.fetch_order(entry.broker_order_id))
    assert {leg.side for leg in legs.values()} == {OrderSide.BUY}
    assert legs[OrderType.STOP].status is OrderStatus.FILLED
    assert legs[OrderType.LIMIT].status is OrderStatus.CANCELED
    assert (await frictionless.fetch_account()).cash == Decimal(10_000) - Decimal(60)


# --- idempotency and concurrency ---------------------------------------------------------------


async def test_second_submit_with_the_same_client_order_id_returns_the_first(
    db: Database, broker: PaperBroker
) -> None:
    first = await broker.submit_order(request("same", reference_price=Decimal(100)))

    second = await broker.submit_order(
        request("same", quantity=Decimal(99), reference_price=Decimal(50))
    )

    assert second == first
    assert await order_count(db) == 1
    assert await fill_count(db) == 1
    assert (await broker.fetch_account()).cash == Decimal(8998)


async def test_broker_order_ids_are_random_uuid_hex(broker: PaperBroker) -> None:
    first = await broker.submit_order(request("id-1", reference_price=Decimal(1)))
    second = await broker.submit_order(request("id-2", reference_price=Decimal(1)))

    assert first.broker_order_id != second.broker_order_id
    assert len(first.broker_order_id) == 32
    int(first.broker_order_id, 16)


async def test_concurrent_submits_with_one_client_order_id_place_one_order(
    db: Database, broker: PaperBroker
) -> None:
    same = request("racing", reference_price=Decimal(100))

    reports = await asyncio.gather(*(broker.submit_order(same) for _ in range(5)))

    assert len({report.broker_order_id for report in reports}) == 1
    assert await order_count(db) == 1
    assert await fill_count(db) == 1
    assert (await broker.fetch_account()).cash == Decimal(8998)


async def test_concurrent_buys_never_spend_more_cash_than_there_is(broker: PaperBroker) -> None:
    buys = [
        request(f"buy-{n}", quantity=Decimal(30), reference_price=Decimal(100)) for n in range(5)
    ]

    reports = await asyncio.gather(*(broker.submit_order(buy) for buy in buys))

    statuses = sorted(report.status.value for report in reports)
    assert statuses == ["filled"] * 3 + ["rejected"] * 2
    assert (await broker.fetch_account()).cash == Decimal(10_000) - 3 * Decimal(3004)


async def test_quotes_and_books_are_per_broker_account(
    db: Database, make_broker: MakeBroker, frictionless: PaperBroker
) -> None:
    other = make_broker(account_id=await create_broker_account(db, "other@example.com"))
    await frictionless.update_price(SYMBOL, Decimal(100))

    report = await other.submit_order(request("elsewhere"))
    await frictionless.submit_order(request("elsewhere"))

    assert report.status is OrderStatus.REJECTED
    mine = await frictionless.fetch_order_by_client_id("elsewhere")
    assert mine is not None
    assert mine.status is OrderStatus.FILLED
    assert await other.fetch_positions() == []


# --- queries, positions, cancels -----------------------------------------------------------


async def test_positions_average_in_and_flip_at_the_fill_price(frictionless: PaperBroker) -> None:
    await frictionless.submit_order(request("p-1", reference_price=Decimal(100)))
    await frictionless.submit_order(request("p-2", reference_price=Decimal(110)))
    [position] = await frictionless.fetch_positions()
    assert (position.quantity, position.average_price) == (Decimal(20), Decimal(105))

    await frictionless.submit_order(
        request("p-3", OrderSide.SELL, quantity=Decimal(5), reference_price=Decimal(120))
    )
    [position] = await frictionless.fetch_positions()
    assert (position.quantity, position.average_price) == (Decimal(15), Decimal(105))

    await frictionless.submit_order(
        request("p-4", OrderSide.SELL, quantity=Decimal(25), reference_price=Decimal(90))
    )
    [position] = await frictionless.fetch_positions()
    assert (position.quantity, position.average_price, position.market_price) == (
        Decimal(-10),
        Decimal(90),
        Decimal(90),
    )


async def test_equity_is_cash_plus_positions_at_their_last_quote(frictionless: PaperBroker) -> None:
    await frictionless.submit_order(request("e-1", reference_price=Decimal(100)))
    await frictionless.submit_order(
        request(
            "e-2", OrderSide.SELL, symbol="MSFT", quantity=Decimal(2), reference_price=Decimal(300)
        )
    )

    await frictionless.update_price(SYMBOL, Decimal(130))
    await frictionless.update_price("MSFT", Decimal(250))

    account = await frictionless.fetch_account()
    assert account.cash == Decimal(10_000) - 1000 + 600
    assert account.equity == account.cash + 10 * 130 - 2 * 250


async def test_fills_since_are_ordered_by_time_and_exclude_earlier_ones(
    frictionless: PaperBroker, frozen_clock: clock.FrozenClock
) -> None:
    first = await frictionless.submit_order(request("t-1", reference_price=Decimal(100)))
    frozen_clock.advance(60)
    cutoff = clock.now()
    frozen_clock.advance(60)
    second = await frictionless.submit_order(
        request("t-2", OrderSide.SELL, reference_price=Decimal(101))
    )

    everything = await frictionless.fetch_fills(cutoff - timedelta(days=1))
    recent = await frictionless.fetch_fills(cutoff)

    assert [fill.broker_order_id for fill in everything] == [
        first.broker_order_id,
        second.broker_order_id,
    ]
    assert [fill.broker_order_id for fill in recent] == [second.broker_order_id]
    assert recent[0].filled_at == cutoff + timedelta(seconds=60)


async def test_open_orders_filter_by_symbol(frictionless: PaperBroker) -> None:
    aapl = await frictionless.submit_order(
        limit("o-1", OrderSide.BUY, "1", reference_price=Decimal(100))
    )
    msft = await frictionless.submit_order(
        limit("o-2", OrderSide.BUY, "1", symbol="MSFT", reference_price=Decimal(100))
    )

    assert [o.broker_order_id for o in await frictionless.fetch_open_orders()] == [
        aapl.broker_order_id,
        msft.broker_order_id,
    ]
    assert [o.broker_order_id for o in await frictionless.fetch_open_orders("nasdaq:msft")] == [
        msft.broker_order_id
    ]


async def test_canceling_a_rejected_order_reports_it_unchanged(broker: PaperBroker) -> None:
    rejected = await broker.submit_order(request("rejected"))

    assert await broker.cancel_order(rejected.broker_order_id) == rejected


async def test_canceled_order_no_longer_fills(broker: PaperBroker) -> None:
    report = await broker.submit_order(
        limit("gone", OrderSide.BUY, "95", reference_price=Decimal(100))
    )
    await broker.cancel_order(report.broker_order_id)

    await broker.update_price(SYMBOL, Decimal(90))

    assert (await broker.fetch_order(report.broker_order_id)).status is OrderStatus.CANCELED
    assert await broker.fetch_positions() == []


async def test_cancel_of_an_unknown_order_raises_order_not_found(broker: PaperBroker) -> None:
    with pytest.raises(OrderNotFound):
        await broker.cancel_order("0" * 32)


# --- symbols, validation, capabilities ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ticker", "symbol"),
    [("NASDAQ:AAPL", "AAPL"), (" msft ", "MSFT"), ("BINANCE:btcusdt", "BTCUSDT"), ("spy", "SPY")],
)
async def test_resolve_symbol_upper_cases_and_strips_the_exchange(
    broker: PaperBroker, ticker: str, symbol: str
) -> None:
    assert await broker.resolve_symbol(ticker) == symbol


async def test_resolve_symbol_refuses_an_empty_ticker(broker: PaperBroker) -> None:
    with pytest.raises(UnknownSymbol):
        await broker.resolve_symbol("NYSE: ")


async def test_submitted_symbols_are_normalised_like_tickers(frictionless: PaperBroker) -> None:
    await frictionless.update_price("AAPL", Decimal(100))

    report = await frictionless.submit_order(request("norm", symbol="nasdaq:aapl"))

    assert (report.symbol, report.status) == ("AAPL", OrderStatus.FILLED)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"order_type": OrderType.LIMIT}, "a limit order needs a limit price"),
        ({"order_type": OrderType.STOP}, "a stop order needs a stop price"),
        (
            {"quantity": Decimal(1), "notional": Decimal(5)},
            "give exactly one of quantity and notional",
        ),
        (
            {"notional": Decimal(5), "order_type": OrderType.LIMIT, "limit_price": Decimal(1)},
            "notional is only accepted on market orders",
        ),
        ({"quantity": Decimal(0)}, "quantity must be a positive number, got 0"),
        (
            {"order_type": OrderType.TRAILING_STOP, "trail_percent": Decimal(100)},
            "a trailing_stop order needs a trail percent between 0 and 100",
        ),
        (
            {"take_profit_price": Decimal(90), "stop_loss": StopLoss(stop_price=Decimal(95))},
            "take profit 90 must be on the profitable side of stop loss 95 for a buy entry",
        ),
        (
            {"stop_loss": StopLoss(stop_price=Decimal(95), order_type=OrderType.LIMIT)},
            "a stop loss cannot be a limit order",
        ),
    ],
)
async def test_malformed_request_raises_invalid_order_and_stores_nothing(
    db: Database, broker: PaperBroker, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidOrder) as raised:
        await broker.submit_order(request("bad", reference_price=Decimal(100), **fields))

    assert raised.value.message == message
    assert await order_count(db) == 0


async def test_update_price_refuses_a_non_positive_price(broker: PaperBroker) -> None:
    with pytest.raises(InvalidOrder):
        await broker.update_price(SYMBOL, Decimal(0))


async def test_capabilities_declare_brackets_oco_notional_and_fractions(
    broker: PaperBroker,
) -> None:
    capabilities = broker.capabilities

    assert capabilities.bracket_orders
    assert capabilities.oco_orders
    assert capabilities.notional_orders
    assert capabilities.fractional_quantity
    assert isinstance(broker, QuoteDriven)


async def test_close_leaves_the_broker_usable(broker: PaperBroker) -> None:
    await broker.close()

    await broker.check_connection()
    assert (await broker.fetch_account()).cash == STARTING_CASH
