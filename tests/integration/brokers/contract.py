"""The broker contract: behaviour every `Broker` adapter must show, whatever the venue.

Use it by subclassing `BrokerContract` in a test module (name the subclass `Test...`) and
providing two fixtures: `broker` (the adapter under test, on a fresh empty account) and
`venue` (a `Venue` that can move the market price of one tradable symbol at that venue).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Protocol

import pytest

from pinelab import clock
from pinelab.brokers.base import (
    Broker,
    Capabilities,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderStatusReport,
    OrderType,
)
from pinelab.brokers.exceptions import InvalidOrder, OrderNotFound

PRICE = Decimal(100)


class Venue(Protocol):
    """The market behind an adapter, as far as the contract needs to move it."""

    symbol: str
    ticker: str

    async def set_price(self, price: Decimal) -> None:
        """Make `price` the symbol's current market price at the venue."""
        ...


def client_order_id() -> str:
    """Return a fresh client order id."""
    return f"contract-{uuid.uuid4().hex}"


async def market(
    broker: Broker, venue: Venue, side: OrderSide, quantity: Decimal, price: Decimal = PRICE
) -> OrderStatusReport:
    """Move the market to `price` and trade `quantity` at market."""
    await venue.set_price(price)
    request = OrderRequest(
        client_order_id=client_order_id(),
        symbol=venue.symbol,
        side=side,
        quantity=quantity,
        reference_price=price,
    )
    return await broker.submit_order(request)


async def resting_buy_limit(broker: Broker, venue: Venue) -> OrderStatusReport:
    """Place a buy limit far below the market so that it rests."""
    await venue.set_price(PRICE)
    request = OrderRequest(
        client_order_id=client_order_id(),
        symbol=venue.symbol,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(1),
        limit_price=PRICE / 2,
    )
    return await broker.submit_order(request)


class BrokerContract:
    """Tests every adapter runs; subclasses provide the `broker` and `venue` fixtures."""

    async def test_adapter_implements_the_protocol_and_declares_capabilities(
        self, broker: Broker
    ) -> None:
        assert isinstance(broker, Broker)
        assert isinstance(broker.capabilities, Capabilities)
        assert OrderType.MARKET in broker.capabilities.order_types

    async def test_check_connection_succeeds(self, broker: Broker) -> None:
        await broker.check_connection()

    async def test_resolve_symbol_maps_a_tradingview_ticker(
        self, broker: Broker, venue: Venue
    ) -> None:
        assert await broker.resolve_symbol(venue.ticker) == venue.symbol

    async def test_market_order_fills_and_is_found_by_client_id_and_broker_id(
        self, broker: Broker, venue: Venue
    ) -> None:
        submitted = await market(broker, venue, OrderSide.BUY, Decimal(2))

        assert submitted.status is OrderStatus.FILLED
        assert submitted.filled_quantity == Decimal(2)
        assert submitted.average_fill_price is not None
        assert submitted.client_order_id is not None
        by_client_id = await broker.fetch_order_by_client_id(submitted.client_order_id)
        by_broker_id = await broker.fetch_order(submitted.broker_order_id)
        assert by_client_id == submitted
        assert by_broker_id == submitted

    async def test_unknown_client_order_id_is_none(self, broker: Broker) -> None:
        assert await broker.fetch_order_by_client_id(client_order_id()) is None

    async def test_unknown_broker_order_id_raises_order_not_found(self, broker: Broker) -> None:
        with pytest.raises(OrderNotFound):
            await broker.fetch_order(uuid.uuid4().hex)

    async def test_resubmitting_a_client_order_id_places_one_order(
        self, broker: Broker, venue: Venue
    ) -> None:
        await venue.set_price(PRICE)
        request = OrderRequest(
            client_order_id=client_order_id(),
            symbol=venue.symbol,
            side=OrderSide.BUY,
            quantity=Decimal(1),
            reference_price=PRICE,
        )
        since = clock.now()

        first = await broker.submit_order(request)
        second = await broker.submit_order(request)

        assert second.broker_order_id == first.broker_order_id
        fills = await broker.fetch_fills(since)
        assert [fill.client_order_id for fill in fills] == [request.client_order_id]

    async def test_resting_order_is_open_until_canceled(self, broker: Broker, venue: Venue) -> None:
        resting = await resting_buy_limit(broker, venue)
        assert resting.status is OrderStatus.ACCEPTED

        open_ids = [order.broker_order_id for order in await broker.fetch_open_orders()]
        for_symbol = await broker.fetch_open_orders(venue.symbol)
        assert open_ids == [resting.broker_order_id]
        assert [order.broker_order_id for order in for_symbol] == open_ids

        canceled = await broker.cancel_order(resting.broker_order_id)
        assert canceled.status is OrderStatus.CANCELED
        assert await broker.fetch_open_orders() == []
        assert (await broker.fetch_order(resting.broker_order_id)).status is OrderStatus.CANCELED

    async def test_canceling_a_canceled_order_reports_it_unchanged(
        self, broker: Broker, venue: Venue
    ) -> None:
        resting = await resting_buy_limit(broker, venue)
        first = await broker.cancel_order(resting.broker_order_id)

        assert await broker.cancel_order(resting.broker_order_id) == first

    async def test_canceling_a_filled_order_raises_invalid_order(
        self, broker: Broker, venue: Venue
    ) -> None:
        filled = await market(broker, venue, OrderSide.BUY, Decimal(1))

        with pytest.raises(InvalidOrder):
            await broker.cancel_order(filled.broker_order_id)

    async def test_fills_since_report_each_execution_in_time_order(
        self, broker: Broker, venue: Venue
    ) -> None:
        since = clock.now()
        buy = await market(broker, venue, OrderSide.BUY, Decimal(3))
        sell = await market(broker, venue, OrderSide.SELL, Decimal(1), PRICE + 1)

        fills = await broker.fetch_fills(since)

        assert [fill.broker_order_id for fill in fills] == [
            buy.broker_order_id,
            sell.broker_order_id,
        ]
        assert [fill.client_order_id for fill in fills] == [
            buy.client_order_id,
            sell.client_order_id,
        ]
        assert [(fill.side, fill.quantity) for fill in fills] == [
            (OrderSide.BUY, Decimal(3)),
            (OrderSide.SELL, Decimal(1)),
        ]
        assert [fill.price for fill in fills] == [buy.average_fill_price, sell.average_fill_price]
        assert fills[0].filled_at <= fills[1].filled_at
        later = fills[-1].filled_at.replace(year=fills[-1].filled_at.year + 1)
        assert await broker.fetch_fills(later) == []

    async def test_positions_follow_fills(self, broker: Broker, venue: Venue) -> None:
        await market(broker, venue, OrderSide.BUY, Decimal(3))
        await market(broker, venue, OrderSide.SELL, Decimal(1))

        positions = {position.symbol: position for position in await broker.fetch_positions()}

        assert set(positions) == {venue.symbol}
        assert positions[venue.symbol].quantity == Decimal(2)
        assert positions[venue.symbol].average_price > 0

        await market(broker, venue, OrderSide.SELL, Decimal(2))
        assert await broker.fetch_positions() == []

    async def test_equity_change_equals_realized_pnl_minus_commissions(
        self, broker: Broker, venue: Venue
    ) -> None:
        before = await broker.fetch_account()
        since = clock.now()

        await market(broker, venue, OrderSide.BUY, Decimal(2), PRICE)
        await market(broker, venue, OrderSide.SELL, Decimal(2), PRICE + 10)

        after = await broker.fetch_account()
        fills = await broker.fetch_fills(since)
        realized = sum((-fill.side.sign * fill.quantity * fill.price for fill in fills), Decimal(0))
        commissions = sum((fill.commission for fill in fills), Decimal(0))
        assert realized > 0
        assert after.equity - before.equity == realized - commissions
        assert after.cash - before.cash == realized - commissions
