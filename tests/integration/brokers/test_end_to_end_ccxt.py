"""Alert → order → fill → position through the whole app, with a ccxt exchange (Crypto.com's
sandbox) played by its emulator."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from pinelab.brokers.models import BrokerAccount
from pinelab.config import Settings
from pinelab.trading.execution import sync_open_orders
from tests.fakes.ccxt_emulator import CryptocomEmulator, running_emulator
from tests.integration.brokers.end_to_end import Trader, trader_with

INSTRUMENT = "BTC_USDT"
TICKER = "CRYPTOCOM:BTCUSDT"


@pytest.fixture
def emulator() -> Iterator[CryptocomEmulator]:
    with running_emulator() as running:
        running.set_price(INSTRUMENT, Decimal(30000))
        yield running


@pytest.fixture
def settings(settings: Settings, emulator: CryptocomEmulator) -> Settings:
    """Settings that reach Crypto.com at the emulator (PINELAB_BROKER_BASE_URLS)."""
    return settings.model_copy(update={"broker_base_urls": {"ccxt:cryptocom": emulator.url}})


@pytest.fixture
async def trader(
    client: httpx.AsyncClient, settings: Settings, emulator: CryptocomEmulator
) -> Trader:
    account = {
        "kind": "ccxt",
        "exchange": "cryptocom",
        "label": "Crypto.com sandbox",
        "paper": True,
        "credentials": {"api_key": emulator.api_key, "api_secret": emulator.api_secret},
    }
    return await trader_with(client, account, outbox=settings.data_dir / "outbox")


async def test_buy_then_sell_fill_at_the_exchange_and_move_the_position(
    trader: Trader, emulator: CryptocomEmulator
) -> None:
    bought = await trader.alert(ticker=TICKER, action="buy", quantity="0.5", price="30000")
    emulator.set_price(INSTRUMENT, Decimal(31000))
    sold = await trader.alert(ticker=TICKER, action="sell", quantity="0.2", price="31000")

    assert (bought["status"], sold["status"]) == ("executed", "executed"), (bought, sold)
    buy, sell = await trader.orders()
    venue = {order.client_oid: order for order in emulator.books.orders.values()}
    for order, side, quantity, price in (
        (buy, "buy", "0.5", "30000"),
        (sell, "sell", "0.2", "31000"),
    ):
        assert (order["status"], order["side"], order["symbol"]) == ("filled", side, "BTC/USDT")
        assert (order["filled_quantity"], order["average_fill_price"]) == (quantity, price)
        assert venue[order["client_order_id"]].order_id == order["broker_order_id"]
    position = (await trader.positions())["BTCUSDT"]
    assert (position["quantity"], position["average_price"], position["realized_pnl"]) == (
        "0.3",
        "30000",
        "200",
    )
    assert emulator.books.balances["BTC"] == Decimal("0.3")


async def test_resting_limit_order_fill_is_learnt_from_the_exchange(
    trader: Trader, emulator: CryptocomEmulator, app: FastAPI
) -> None:
    signal = await trader.alert(
        ticker=TICKER, action="buy", quantity="0.1", price="30000", order_type="limit",
        limit_price="29000",
    )  # fmt: skip
    [resting] = await trader.orders()
    emulator.set_price(INSTRUMENT, Decimal(28900))
    context = app.state
    async with context.db.session() as session:
        account = await session.get_one(BrokerAccount, trader.account_id)
    changed = await sync_open_orders(
        await context.brokers.get(account),
        db=context.db,
        metrics=context.metrics,
        account_id=account.id,
    )

    assert signal["status"] == "executed", signal
    assert (resting["status"], resting["filled_quantity"]) == ("accepted", "0")
    assert changed == 1
    [filled] = await trader.orders()
    assert (filled["status"], filled["filled_quantity"]) == ("filled", "0.1")
    assert Decimal(filled["average_fill_price"]) <= Decimal(29000)
    assert (await trader.positions())["BTCUSDT"]["quantity"] == "0.1"


async def test_bracket_alert_is_refused_with_the_reason_and_places_nothing(
    trader: Trader, emulator: CryptocomEmulator
) -> None:
    signal = await trader.alert(
        ticker=TICKER, action="buy", quantity="0.5", price="30000",
        take_profit={"price": "33000"}, stop_loss={"price": "29000"},
    )  # fmt: skip

    assert signal["status"] == "failed"
    assert "bracket" in signal["reason"]
    assert emulator.books.orders == {}
