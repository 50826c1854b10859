"""Alert → order → fill → position through the whole app, with Alpaca played by its emulator."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from pinelab.brokers.credentials import BrokerCredentials, seal_credentials
from pinelab.brokers.models import BrokerAccount
from pinelab.config import Settings
from pinelab.trading.execution import sync_open_orders
from pinelab.vault import EncryptionKey, KeyRing, Vault
from tests.fakes.alpaca_emulator import AlpacaEmulator, running_emulator
from tests.integration.brokers.end_to_end import Trader, trader_with


@pytest.fixture
def emulator() -> Iterator[AlpacaEmulator]:
    with running_emulator() as running:
        running.set_price("AAPL", Decimal(100))
        yield running


@pytest.fixture
def settings(settings: Settings, emulator: AlpacaEmulator) -> Settings:
    """Settings that reach Alpaca at the emulator (PINELAB_BROKER_BASE_URLS)."""
    return settings.model_copy(update={"broker_base_urls": {"alpaca": emulator.url}})


@pytest.fixture
async def trader(client: httpx.AsyncClient, settings: Settings, emulator: AlpacaEmulator) -> Trader:
    credentials = {"api_key": emulator.api_key, "api_secret": emulator.api_secret}
    account = {"kind": "alpaca", "label": "Alpaca paper", "credentials": credentials}
    return await trader_with(client, account, outbox=settings.data_dir / "outbox")


async def test_buy_then_sell_fill_at_alpaca_and_move_the_position(
    trader: Trader, emulator: AlpacaEmulator
) -> None:
    bought = await trader.alert(ticker="NASDAQ:AAPL", action="buy", quantity="10", price="100")
    emulator.set_price("AAPL", Decimal(110))
    sold = await trader.alert(ticker="NASDAQ:AAPL", action="sell", quantity="4", price="110")

    assert (bought["status"], sold["status"]) == ("executed", "executed"), (bought, sold)
    buy, sell = await trader.orders()
    venue = {order.client_order_id: order for order in emulator.books.orders.values()}
    for order, side, quantity, price in ((buy, "buy", "10", "100"), (sell, "sell", "4", "110")):
        assert (order["status"], order["side"], order["symbol"]) == ("filled", side, "AAPL")
        assert (order["filled_quantity"], order["average_fill_price"]) == (quantity, price)
        assert venue[order["client_order_id"]].id == order["broker_order_id"]
    position = (await trader.positions())["AAPL"]  # the canonical ticker
    assert (position["quantity"], position["average_price"], position["realized_pnl"]) == (
        "6",
        "100",
        "40",
    )
    assert emulator.books.position_list()[0]["qty"] == "6"


async def test_bracket_alert_places_the_legs_and_a_take_profit_fill_closes_the_position(
    trader: Trader, emulator: AlpacaEmulator, app: FastAPI
) -> None:
    signal = await trader.alert(
        ticker="AAPL",
        action="buy",
        quantity="5",
        price="100",
        take_profit={"price": "120"},
        stop_loss={"price": "90"},
    )

    assert signal["status"] == "executed", signal
    entry, *legs = await trader.orders()
    assert (entry["status"], entry["filled_quantity"], entry["parent_order_id"]) == (
        "filled",
        "5",
        None,
    )
    by_leg = {leg["leg"]: leg for leg in legs}
    assert set(by_leg) == {"take_profit", "stop_loss"}
    assert {leg["parent_order_id"] for leg in legs} == {entry["id"]}
    assert (by_leg["take_profit"]["order_type"], by_leg["take_profit"]["side"]) == ("limit", "sell")
    assert (by_leg["stop_loss"]["order_type"], by_leg["stop_loss"]["side"]) == ("stop", "sell")
    assert all(leg["status"] in ("accepted", "submitted", "new") for leg in legs), legs
    [venue_entry] = [o for o in emulator.books.orders.values() if o.parent_id is None]
    assert (venue_entry.client_order_id, venue_entry.order_class) == (
        entry["client_order_id"],
        "bracket",
    )
    assert {leg.id for leg in venue_entry.legs} == {leg["broker_order_id"] for leg in legs}

    emulator.set_price("AAPL", Decimal(121))  # crosses the take-profit: it fills at 121
    context = app.state
    async with context.db.session() as session:
        account = await session.get_one(BrokerAccount, trader.account_id)
    await sync_open_orders(
        await context.brokers.get(account),
        db=context.db,
        metrics=context.metrics,
        account_id=account.id,
    )

    after = {order["leg"]: order for order in await trader.orders()}
    assert (after["take_profit"]["status"], after["take_profit"]["average_fill_price"]) == (
        "filled",
        "121",
    )
    assert after["stop_loss"]["status"] == "canceled"
    assert "AAPL" not in await trader.positions()  # closed
    assert (await trader.get("/pnl"))["totals"]["realized_pnl"] == "105"
    assert emulator.books.position_list() == []


async def test_alert_for_an_account_whose_credentials_cannot_be_decrypted_fails_with_the_reason(
    trader: Trader, emulator: AlpacaEmulator, app: FastAPI
) -> None:
    context = app.state
    foreign = Vault(KeyRing(EncryptionKey.generate()))  # a key this deployment does not have
    sealed = seal_credentials(
        foreign,
        account_id=trader.account_id,
        credentials=BrokerCredentials(emulator.api_key, emulator.api_secret),
    )
    async with context.db.transaction() as session:
        account = await session.get_one(BrokerAccount, trader.account_id)
        account.credentials_encrypted = sealed
    context.brokers.forget(trader.account_id)

    signal = await trader.alert(ticker="AAPL", action="buy", quantity="1", price="100")

    assert signal["status"] == "failed"
    assert "cannot be decrypted with the configured keys" in signal["reason"]
    assert emulator.books.orders == {}
