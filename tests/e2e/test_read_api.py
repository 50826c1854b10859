"""The read API over HTTP: signals, orders, fills, positions and P&L, each only for its owner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pinelab import clock
from pinelab.accounts.models import User
from pinelab.brokers.models import BrokerAccount
from pinelab.db import Database
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy, StrategyBrokerAccount
from pinelab.strategies.tokens import hash_token
from tests.factories import session_headers
from tests.integration.trading.test_queries import TODAY, Book, seed_book
from tests.waiting import eventually

WEBHOOK_TOKEN = "e2e-read-api-webhook-token-0123456789abcdef"
POLL_SECONDS = 15.0

Get = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Trader:
    """A seeded user with a paper account bound to a strategy, and their access token."""

    user_id: int
    account_id: int
    strategy_id: int
    headers: dict[str, str]


async def _seed_trader(db: Database, app: FastAPI, email: str, webhook_token: str) -> Trader:
    async with db.transaction() as session:
        user = User(email=email, password_hash="not-a-real-hash")
        session.add(user)
        await session.flush()
        account = BrokerAccount(
            user_id=user.id, kind="paper", label="Paper", starting_cash=Decimal(100_000)
        )
        strategy = Strategy(
            user_id=user.id, name="Trend", token_hash=hash_token(webhook_token), token_hint="e2e"
        )
        session.add_all([account, strategy])
        await session.flush()
        session.add(StrategyBrokerAccount(strategy_id=strategy.id, broker_account_id=account.id))
    return Trader(
        user.id,
        account.id,
        strategy.id,
        await session_headers(app.state.db, app.state.secret_key, user.id),
    )


@pytest.fixture
async def trader(db: Database, app: FastAPI) -> Trader:
    return await _seed_trader(db, app, "trader@example.com", WEBHOOK_TOKEN)


@pytest.fixture
async def stranger(db: Database, app: FastAPI) -> Trader:
    return await _seed_trader(db, app, "stranger@example.com", "another-token-of-another-user")


@pytest.fixture
def get(client: httpx.AsyncClient) -> Get:
    async def _get(path: str, headers: dict[str, str], **params: Any) -> Any:
        response = await client.get(f"/api/v1{path}", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    return _get


async def _alert(client: httpx.AsyncClient, body: dict[str, str]) -> int:
    response = await client.post(f"/webhooks/{WEBHOOK_TOKEN}", json=body)
    assert response.status_code == 202, response.text
    return int(response.json()["signal_id"])


async def _wait_for_filled(get: Get, trader: Trader, count: int) -> list[dict[str, Any]]:
    async def filled() -> list[dict[str, Any]] | None:
        orders: list[dict[str, Any]] = (await get("/orders", trader.headers))["items"]
        return orders if sum(order["status"] == "filled" for order in orders) >= count else None

    return await eventually(filled, timeout=POLL_SECONDS, what=f"{count} filled orders")


async def test_webhook_trades_show_up_in_orders_positions_and_pnl(
    client: httpx.AsyncClient, get: Get, trader: Trader
) -> None:
    buy = await _alert(
        client, {"ticker": "AAPL", "action": "buy", "quantity": "10", "price": "100"}
    )
    await _wait_for_filled(get, trader, 1)
    await _alert(client, {"ticker": "AAPL", "action": "sell", "quantity": "4", "price": "110"})
    orders = await _wait_for_filled(get, trader, 2)

    assert [(o["side"], o["filled_quantity"], o["average_fill_price"]) for o in orders] == [
        ("sell", "4", "110"),
        ("buy", "10", "100"),
    ]
    assert orders[1]["signal_id"] == buy
    detail = await get(f"/orders/{orders[0]['id']}", trader.headers)
    assert detail["history"][0]["event"] == "created"
    assert detail["history"][-1]["to_status"] == "filled"
    assert [(f["quantity"], f["price"], f["realized_pnl"]) for f in detail["fills"]] == [
        ("4", "110", "40")
    ]
    [position] = (await get("/positions", trader.headers))["items"]
    assert {k: position[k] for k in ("ticker", "quantity", "average_price", "realized_pnl")} == {
        "ticker": "AAPL",
        "quantity": "6",
        "average_price": "100",
        "realized_pnl": "40",
    }
    assert (position["last_price"], position["unrealized_pnl"]) == ("110", "60")
    pnl = await get("/pnl", trader.headers)
    assert pnl["totals"] == {
        "realized_pnl": "40",
        "unrealized_pnl": "60",
        "commissions": "0",
        "net_pnl": "100",
    }
    assert [row["broker_account_id"] for row in pnl["by_account"]] == [trader.account_id]
    assert [row["strategy_id"] for row in pnl["by_strategy"]] == [trader.strategy_id]
    signals = (await get("/signals", trader.headers))["items"]
    assert [signal["status"] for signal in signals] == ["executed", "executed"]


async def test_another_user_sees_none_of_it(
    client: httpx.AsyncClient, get: Get, trader: Trader, stranger: Trader
) -> None:
    signal_id = await _alert(
        client, {"ticker": "AAPL", "action": "buy", "quantity": "10", "price": "100"}
    )
    [order] = await _wait_for_filled(get, trader, 1)

    for path in ("/signals", "/orders", "/fills", "/positions"):
        assert (await get(path, stranger.headers))["items"] == [], path
    pnl = await get("/pnl", stranger.headers, group_by="day")
    assert pnl["totals"]["realized_pnl"] == "0"
    assert pnl["by_day"] == []
    for path in (f"/orders/{order['id']}", f"/signals/{signal_id}"):
        response = await client.get(f"/api/v1{path}", headers=stranger.headers)
        assert response.status_code == 404, path
        assert response.json()["error"] == "ResourceNotFoundError"


async def _seed_signals(db: Database, trader: Trader, bodies: list[str]) -> list[int]:
    async with db.transaction() as session:
        signals = [
            Signal(
                user_id=trader.user_id,
                strategy_id=trader.strategy_id,
                raw_body=body,
                body_hash=f"{index:064d}",
                ticker="AAPL" if index % 2 else "MSFT",
                status="rejected" if index % 3 == 0 else "accepted",
            )
            for index, body in enumerate(bodies)
        ]
        session.add_all(signals)
        await session.flush()
        return [signal.id for signal in signals]


async def test_signals_page_through_every_signal_exactly_once_in_three_pages(
    db: Database, get: Get, trader: Trader
) -> None:
    ids = await _seed_signals(db, trader, [f"buy AAPL {n}" for n in range(7)])
    seen: list[int] = []
    pages = 0
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = await get("/signals", trader.headers, **params)
        seen += [item["id"] for item in page["items"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]

    assert pages == 3
    assert seen == sorted(ids, reverse=True)


async def test_signals_filter_by_status_and_ticker(db: Database, get: Get, trader: Trader) -> None:
    ids = await _seed_signals(db, trader, [f"buy AAPL {n}" for n in range(6)])

    rejected = await get("/signals", trader.headers, status="rejected")
    rejected_aapl = await get("/signals", trader.headers, status="rejected", ticker="AAPL")
    later = await get("/signals", trader.headers, received_from="2000-01-01T00:00:00")

    assert [item["id"] for item in rejected["items"]] == [ids[3], ids[0]]
    assert [item["id"] for item in rejected_aapl["items"]] == [ids[3]]
    assert len(later["items"]) == 6


async def test_signal_log_never_shows_a_passphrase(
    client: httpx.AsyncClient, get: Get, trader: Trader
) -> None:
    json_body = '{"ticker": "AAPL", "action": "buy", "passphrase": "s3cr\\"et", "quantity": 1}'
    text_body = "buy AAPL 1 passphrase=hunter2 price=5"
    ids = []
    for body in (json_body, text_body):
        response = await client.post(
            f"/webhooks/{WEBHOOK_TOKEN}", content=body, headers={"content-type": "text/plain"}
        )
        ids.append(response.json()["signal_id"])

    json_signal = await get(f"/signals/{ids[0]}", trader.headers)
    text_signal = await get(f"/signals/{ids[1]}", trader.headers)

    assert json_signal["raw_body"] == (
        '{"ticker": "AAPL", "action": "buy", "passphrase": "[redacted]", "quantity": 1}'
    )
    assert text_signal["raw_body"] == "buy AAPL 1 passphrase=[redacted] price=5"


@pytest.fixture
async def book(
    db: Database, app: FastAPI, frozen_clock: clock.FrozenClock
) -> tuple[Book, dict[str, str]]:
    frozen_clock.set(TODAY)
    seeded = await seed_book(db)
    return seeded, await session_headers(app.state.db, app.state.secret_key, seeded.user_id)


async def test_order_detail_lists_history_and_fills_with_decimals_as_strings(
    get: Get, book: tuple[Book, dict[str, str]]
) -> None:
    seeded, headers = book

    detail = await get(f"/orders/{seeded.orders['buy']}", headers)

    assert [event["to_status"] for event in detail["history"]] == [
        "new",
        "submitted",
        "accepted",
        "filled",
    ]
    assert [(fill["price"], fill["commission"]) for fill in detail["fills"]] == [("100", "1")]
    assert (detail["quantity"], detail["client_order_id"]) == ("10", f"pl-{seeded.user_id}-buy")


async def test_fills_and_pnl_by_day_through_the_api(
    get: Get, book: tuple[Book, dict[str, str]]
) -> None:
    seeded, headers = book

    fills = await get("/fills", headers, broker_account_id=seeded.second_account_id)
    pnl = await get("/pnl", headers, group_by=["day", "account"], **{"from": "2026-01-02"})

    assert [fill["realized_pnl"] for fill in fills["items"]] == ["-50", "0"]
    assert [(day["day"], day["net_pnl"]) for day in pnl["by_day"]] == [("2026-01-02", "-12")]
    assert len(pnl["by_account"]) == 2
    assert pnl["by_strategy"] is None


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/orders", {"limit": 0}),
        ("/orders", {"limit": 201}),
        ("/orders", {"ticker": "X" * 65}),
        ("/orders", {"status": "lost"}),
        ("/orders", {"cursor": "not-a-cursor"}),
        ("/orders", {"broker_account_id": 2**63}),
        ("/orders/0", {}),
        ("/fills", {"filled_from": "yesterday"}),
        ("/signals", {"received_from": "2026-01-02T00:00:00Z", "received_to": "2026-01-01"}),
        ("/signals", {"received_from": "0001-01-01T00:00:00+05:00"}),
        ("/positions", {"include_flat": "perhaps"}),
        ("/pnl", {"from": "2026-01-02", "to": "2026-01-01"}),
        ("/pnl", {"group_by": "week"}),
        ("/pnl", {"to": "9999-12-31"}),
    ],
)
async def test_bad_query_parameters_are_422_with_the_error_body(
    client: httpx.AsyncClient, trader: Trader, path: str, params: dict[str, Any]
) -> None:
    response = await client.get(f"/api/v1{path}", headers=trader.headers, params=params)

    assert response.status_code == 422, response.text
    assert set(response.json()) == {"error", "message", "details"}


@pytest.mark.parametrize(
    "path", ["/signals", "/signals/1", "/orders", "/orders/1", "/fills", "/positions", "/pnl"]
)
async def test_read_routes_need_a_bearer_token(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(f"/api/v1{path}")

    assert response.status_code == 401


async def test_openapi_declares_every_read_response(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    for path in ("/signals", "/orders", "/orders/{order_id}", "/fills", "/positions", "/pnl"):
        answer = spec["paths"][f"/api/v1{path}"]["get"]["responses"]["200"]
        assert "$ref" in answer["content"]["application/json"]["schema"], path
