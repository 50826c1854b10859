"""Sizing that cannot surprise, through the webhook: money sizing of a limit or stop order from
that order's own price; a paper market order with no usable price, a value the venue cannot
represent and a ticker it does not trade are refused at the door (a 422 naming the field,
recorded as rejected), never after the 202."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pinelab.db import Database
from pinelab.signals.models import Signal
from pinelab.trading.models import Order
from tests.e2e.conftest import error_fields
from tests.factories import Seeded, bind_account, seed_strategy, settled_signal


async def _post(client: httpx.AsyncClient, token: str, **fields: Any) -> httpx.Response:
    return await client.post(f"/webhooks/{token}", json=fields)


async def _orders(db: Database) -> list[Order]:
    async with db.session() as session:
        return list((await session.scalars(select(Order).order_by(Order.id))).all())


async def _refused(app: FastAPI, response: httpx.Response, field: str) -> Signal:
    """Check a 422 naming `field`, recorded as rejected with the reason, and no order."""
    assert response.status_code == 422, response.text
    assert error_fields(response) == {field}
    async with app.state.db.session() as session:
        signal = await session.get(Signal, response.json()["signal_id"])
    assert signal is not None
    assert signal.status == "rejected"
    assert (signal.reason or "").startswith(f"{field}: ")
    assert await _orders(app.state.db) == []
    return signal


@pytest.mark.parametrize(
    ("order", "quantity"),
    [
        ({"order_type": "limit", "limit_price": "50"}, 200),
        ({"order_type": "stop", "stop_price": "125"}, 80),
        ({"order_type": "stop_limit", "stop_price": "101", "limit_price": "40"}, 250),
    ],
)
async def test_percent_of_equity_on_a_limit_or_stop_order_is_sized_from_its_own_price(
    app: FastAPI, client: httpx.AsyncClient, order: dict[str, str], quantity: int
) -> None:
    db: Database = app.state.db
    seeded = await seed_strategy(
        db, sizing_type="percent_of_equity", sizing_value=Decimal(10)
    )  # 10 % of 100 000
    response = await _post(client, seeded.token, ticker="AAPL", action="buy", price="100", **order)
    assert response.status_code == 202, response.text
    signal = await settled_signal(db, response.json()["signal_id"])
    assert signal.status == "executed", signal.reason
    [placed] = await _orders(db)
    assert (placed.order_type, placed.quantity, placed.status) == (
        order["order_type"],
        quantity,
        "accepted",
    )


async def test_a_notional_limit_order_is_a_quantity_at_its_limit_price_and_fills_there(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    db: Database = app.state.db
    response = await _post(
        client,
        seeded.token,
        ticker="AAPL",
        action="buy",
        quantity="1000",
        quantity_type="notional",
        order_type="limit",
        limit_price="40",
        price="41",
    )
    assert (await settled_signal(db, response.json()["signal_id"])).status == "executed"
    # The market comes down through the limit: the resting order fills in full.
    crossed = await _post(client, seeded.token, ticker="AAPL", action="cancel", price="39")
    assert (await settled_signal(db, crossed.json()["signal_id"])).status == "executed"
    [placed] = await _orders(db)
    assert (placed.quantity, placed.filled_quantity, placed.status) == (25, 25, "filled")


async def test_a_paper_market_order_without_any_price_is_refused_at_the_door(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    refused = await _post(client, seeded.token, ticker="AAPL", action="buy", quantity="1")
    signal = await _refused(app, refused, "price")
    assert "has seen none for AAPL yet" in (signal.reason or "")
    text = await client.post(
        f"/webhooks/{seeded.token}", content=b"sell MSFT 1", headers={"content-type": "text/plain"}
    )
    await _refused(app, text, "price")


async def test_once_the_paper_venue_has_a_price_a_market_order_needs_none(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    db: Database = app.state.db
    priced = await _post(
        client, seeded.token, ticker="AAPL", action="buy", quantity="1", price="10"
    )
    assert (await settled_signal(db, priced.json()["signal_id"])).status == "executed"
    bare = await _post(client, seeded.token, ticker="NASDAQ:AAPL", action="buy", quantity="2")
    assert bare.status_code == 202, bare.text
    assert (await settled_signal(db, bare.json()["signal_id"])).status == "executed"
    assert [(o.quantity, o.average_fill_price) for o in await _orders(db)] == [(1, 10), (2, 10)]


@pytest.mark.parametrize(
    "alert",
    [
        {"action": "exit"},
        {"action": "cancel"},
        {"action": "sell", "sentiment": "flat"},
        {"action": "buy", "quantity": "1", "order_type": "limit", "limit_price": "10"},
    ],
)
async def test_what_needs_no_market_price_is_not_refused_for_lack_of_one(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, alert: dict[str, str]
) -> None:
    response = await _post(client, seeded.token, ticker="AAPL", **alert)
    assert response.status_code == 202, response.text
    signal = await settled_signal(app.state.db, response.json()["signal_id"])
    assert signal.status == "executed", signal.reason


@pytest.mark.parametrize(
    ("alert", "field", "reason"),
    [
        (
            {"quantity": "0.123456789"},
            "quantity",
            "has more than 8 decimal places: the paper broker cannot represent 0.123456789",
        ),
        (
            {"order_type": "limit", "limit_price": "10.000000001"},
            "limit_price",
            "has more than 8 decimal places: the paper broker cannot represent 10.000000001",
        ),
        ({"take_profit": {"price": "1e16"}}, "take_profit.price", "is beyond the largest value"),
        ({"stop_loss": {"amount": "0.000000001"}}, "stop_loss.amount", "has more than 8"),
        ({"quantity": "2e15"}, "quantity", "is beyond the largest value the venue takes"),
        (
            {"quantity": "1000000000", "price": "10000000"},
            "quantity",
            "times the order's price is 10,000,000,000,000,000, beyond the largest order",
        ),
        ({"position_size": "-0.000000001"}, "position_size", "has more than 8 decimal places"),
    ],
)
async def test_a_value_the_paper_venue_cannot_represent_is_422_naming_the_field(
    app: FastAPI,
    client: httpx.AsyncClient,
    seeded: Seeded,
    alert: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    response = await _post(
        client, seeded.token, **({"ticker": "AAPL", "action": "buy", "price": "10"} | alert)
    )
    signal = await _refused(app, response, field)
    assert reason in (signal.reason or "")


@pytest.mark.parametrize(
    ("kind", "ticker", "reason"),
    [
        (
            "ccxt:binance",
            "BINANCE:BTCUSDT.P",
            "BTCUSDT.P is a perpetual swap (TradingView's .P); this CCXT account trades spot "
            "markets only",
        ),
        (
            "alpaca",
            "CME_MINI:ES1!",
            "ES1! is a continuous future (TradingView's 1!); Alpaca trades stocks and spot crypto "
            "only",
        ),
    ],
)
async def test_a_ticker_the_bound_venue_does_not_trade_is_refused_at_the_door(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, kind: str, ticker: str, reason: str
) -> None:
    await bind_account(app.state, seeded, kind)
    response = await _post(client, seeded.token, ticker=ticker, action="buy", quantity="1")
    signal = await _refused(app, response, "ticker")
    assert signal.reason == f"ticker: {reason}"


@pytest.mark.parametrize(
    ("action", "exits", "reason"),
    [
        ("buy", {"stop_loss": "150"}, "stop_loss: 150 is not below the entry price 100"),
        ("buy", {"take_profit": "50"}, "take_profit: 50 is not above the entry price 100"),
        # PineConnector's own example: sl=50 meant 50 pips, read as a price
        ("sell", {"stop_loss": "50"}, "stop_loss: 50 is not above the entry price 100"),
        ("sell", {"take_profit": "150"}, "take_profit: 150 is not below the entry price 100"),
    ],
)
async def test_a_bracket_leg_on_the_wrong_side_of_the_entry_is_never_placed(
    app: FastAPI,
    client: httpx.AsyncClient,
    seeded: Seeded,
    action: str,
    exits: dict[str, str],
    reason: str,
) -> None:
    db: Database = app.state.db
    response = await _post(client, seeded.token, ticker="AAPL", action=action, price="100", **exits)
    assert response.status_code == 202, response.text
    signal = await settled_signal(db, response.json()["signal_id"])
    assert signal.status == "failed"
    assert reason in (signal.reason or "")
    assert await _orders(db) == []
