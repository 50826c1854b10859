"""The trading read services against a real database: scoping, filters, paging, valuation, P&L."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pinelab import clock
from pinelab.accounts.models import User
from pinelab.brokers.models import BrokerAccount
from pinelab.db import Database
from pinelab.errors import ResourceNotFoundError
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy
from pinelab.trading import queries
from pinelab.trading.models import Fill, Order, OrderEvent, Position
from pinelab.trading.schemas import FillFilters, OrderFilters, PnlQuery, PositionFilters

DAY_ONE = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
DAY_TWO = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
TODAY = datetime(2026, 1, 2, 15, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Book:
    """Ids of the seeded rows."""

    user_id: int
    other_user_id: int
    account_id: int
    second_account_id: int
    strategy_id: int
    second_strategy_id: int
    signal_id: int
    orders: dict[str, int]


class _Seeder:
    """Adds one user's rows to a session with sensible defaults."""

    def __init__(self, session: Any, user_id: int) -> None:
        self.session = session
        self.user_id = user_id

    async def add(self, row: Any) -> Any:
        self.session.add(row)
        await self.session.flush()
        return row

    async def account(self) -> int:
        account = BrokerAccount(user_id=self.user_id, kind="paper", label="Paper")
        return int((await self.add(account)).id)

    async def strategy(self, name: str) -> int:
        strategy = Strategy(user_id=self.user_id, name=name, token_hash=name * 8, token_hint="x")
        return int((await self.add(strategy)).id)

    async def order(self, key: str, account: int, strategy: int, **fields: Any) -> Order:
        values: dict[str, Any] = {
            "user_id": self.user_id,
            "strategy_id": strategy,
            "broker_account_id": account,
            "client_order_id": f"pl-{self.user_id}-{key}",
            "ticker": "AAPL",
            "symbol": "AAPL",
            "side": "buy",
            "order_type": "market",
            "time_in_force": "day",
            "quantity": Decimal(10),
            "status": "filled",
            "created_at": DAY_ONE,
            **fields,
        }
        return await self.add(Order(**values))

    async def fill(self, order: Order, *, price: str, commission: str, realized: str) -> None:
        await self.add(
            Fill(
                user_id=self.user_id,
                order_id=order.id,
                broker_account_id=order.broker_account_id,
                strategy_id=order.strategy_id,
                broker_fill_id=f"f-{order.id}",
                ticker=order.ticker,
                side=order.side,
                quantity=order.quantity,
                price=Decimal(price),
                commission=Decimal(commission),
                realized_pnl=Decimal(realized),
                filled_at=order.created_at,
            )
        )

    async def position(self, account: int, strategy: int, ticker: str, **fields: Any) -> None:
        await self.add(
            Position(
                user_id=self.user_id,
                broker_account_id=account,
                strategy_id=strategy,
                ticker=ticker,
                **fields,
            )
        )


async def _add_user(session: Any, email: str) -> int:
    user = User(email=email, password_hash="not-a-real-hash")
    session.add(user)
    await session.flush()
    return user.id


async def _seed_history(seed: _Seeder, order: Order) -> None:
    steps = [("created", None, "new"), ("submitted", "new", "submitted")]
    steps += [("accepted", "submitted", "accepted"), ("filled", "accepted", "filled")]
    for offset, (event, before, after) in enumerate(steps):
        occurred_at = order.created_at + timedelta(seconds=offset)
        await seed.add(
            OrderEvent(
                order_id=order.id,
                event=event,
                from_status=before,
                to_status=after,
                occurred_at=occurred_at,
            )
        )


async def _seed_other_user(session: Any) -> int:
    other = _Seeder(session, await _add_user(session, "other@example.com"))
    account, strategy = await other.account(), await other.strategy("o")
    order = await other.order("x", account, strategy, created_at=DAY_TWO)
    await other.fill(order, price="1", commission="5", realized="1000")
    await other.position(
        account,
        strategy,
        "AAPL",
        quantity=Decimal(3),
        average_price=Decimal(19),
        last_price=Decimal(9),
    )
    return other.user_id


async def seed_book(db: Database) -> Book:
    """Seed two users; the first has two accounts, two strategies, orders, fills, positions."""
    async with db.transaction() as session:
        seed = _Seeder(session, await _add_user(session, "trader@example.com"))
        account, second_account = await seed.account(), await seed.account()
        strategy, second_strategy = await seed.strategy("a"), await seed.strategy("b")
        signal = await seed.add(
            Signal(
                user_id=seed.user_id,
                strategy_id=strategy,
                raw_body="buy AAPL 10",
                body_hash="0" * 64,
                status="executed",
            )
        )
        buy = await seed.order("buy", account, strategy, signal_id=signal.id)
        await _seed_history(seed, buy)
        await seed.fill(buy, price="100", commission="1", realized="0")
        sell = await seed.order(
            "sell", account, strategy, side="sell", quantity=Decimal(4), created_at=DAY_TWO
        )
        await seed.fill(sell, price="110", commission="1", realized="40")
        msft = {"ticker": "MSFT", "symbol": "MSFT", "quantity": Decimal(5), "created_at": DAY_TWO}
        open_msft = await seed.order("m1", second_account, second_strategy, **msft)
        await seed.fill(open_msft, price="200", commission="0.5", realized="0")
        close_msft = await seed.order("m2", second_account, second_strategy, side="sell", **msft)
        await seed.fill(close_msft, price="190", commission="0.5", realized="-50")
        working = await seed.order(
            "tsla", account, strategy, ticker="TSLA", status="accepted", created_at=DAY_TWO
        )
        await seed.position(
            account,
            strategy,
            "AAPL",
            quantity=Decimal(6),
            average_price=Decimal(100),
            realized_pnl=Decimal(40),
            commissions=Decimal(2),
            last_price=Decimal(110),
        )
        await seed.position(
            second_account,
            second_strategy,
            "MSFT",
            realized_pnl=Decimal(-50),
            commissions=Decimal(1),
            last_price=Decimal(190),
        )
        await seed.position(
            account, second_strategy, "GOOG", quantity=Decimal(-2), average_price=Decimal(50)
        )
        other_user_id = await _seed_other_user(session)
    orders = {"buy": buy.id, "sell": sell.id, "m1": open_msft.id, "m2": close_msft.id}
    return Book(
        user_id=seed.user_id,
        other_user_id=other_user_id,
        account_id=account,
        second_account_id=second_account,
        strategy_id=strategy,
        second_strategy_id=second_strategy,
        signal_id=signal.id,
        orders={**orders, "tsla": working.id},
    )


@pytest.fixture
async def book(db: Database) -> Book:
    return await seed_book(db)


@pytest.fixture
def today(frozen_clock: clock.FrozenClock) -> clock.FrozenClock:
    frozen_clock.set(TODAY)
    return frozen_clock


async def _order_ids(db: Database, user_id: int, **filters: Any) -> list[int]:
    async with db.session() as session:
        found, _ = await queries.list_orders(
            session, user_id=user_id, filters=OrderFilters(**filters), limit=200
        )
    return [order.id for order in found]


async def test_orders_list_only_the_users_own_newest_first(db: Database, book: Book) -> None:
    ids = await _order_ids(db, book.user_id)
    other_ids = await _order_ids(db, book.other_user_id)

    assert ids == sorted(book.orders.values(), reverse=True)
    assert len(other_ids) == 1
    assert set(other_ids).isdisjoint(ids)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (lambda b: {"status": "accepted"}, ["tsla"]),
        (lambda b: {"ticker": "MSFT"}, ["m2", "m1"]),
        (lambda b: {"strategy_id": b.second_strategy_id}, ["m2", "m1"]),
        (lambda b: {"broker_account_id": b.second_account_id}, ["m2", "m1"]),
        (lambda b: {"signal_id": b.signal_id}, ["buy"]),
        (lambda b: {"created_to": DAY_TWO}, ["buy"]),
        (lambda b: {"created_from": DAY_TWO, "ticker": "AAPL"}, ["sell"]),
    ],
)
async def test_orders_filter_by_each_field(
    db: Database, book: Book, filters: Callable[[Book], dict[str, Any]], expected: list[str]
) -> None:
    found = await _order_ids(db, book.user_id, **filters(book))

    assert found == [book.orders[key] for key in expected]


async def test_orders_page_through_every_order_exactly_once(db: Database, book: Book) -> None:
    seen: list[int] = []
    before_id: int | None = None
    pages = 0
    async with db.session() as session:
        while True:
            found, before_id = await queries.list_orders(
                session, user_id=book.user_id, filters=OrderFilters(), limit=2, before_id=before_id
            )
            seen += [order.id for order in found]
            pages += 1
            if before_id is None:
                break

    assert pages == 3
    assert seen == sorted(book.orders.values(), reverse=True)


async def test_order_comes_with_history_oldest_first_and_fills(db: Database, book: Book) -> None:
    async with db.session() as session:
        record = await queries.get_order(session, user_id=book.user_id, order_id=book.orders["buy"])

    assert [event.event for event in record.history] == [
        "created",
        "submitted",
        "accepted",
        "filled",
    ]
    assert [(fill.price, fill.commission) for fill in record.fills] == [(Decimal(100), 1)]


async def test_another_users_order_is_not_found(db: Database, book: Book) -> None:
    async with db.session() as session:
        with pytest.raises(ResourceNotFoundError):
            await queries.get_order(
                session, user_id=book.other_user_id, order_id=book.orders["buy"]
            )


async def test_fills_filter_by_order_and_time(db: Database, book: Book) -> None:
    async with db.session() as session:
        by_order, _ = await queries.list_fills(
            session,
            user_id=book.user_id,
            filters=FillFilters(order_id=book.orders["sell"]),
            limit=50,
        )
        on_day_two, _ = await queries.list_fills(
            session, user_id=book.user_id, filters=FillFilters(filled_from=DAY_TWO), limit=50
        )

    assert [fill.realized_pnl for fill in by_order] == [Decimal(40)]
    assert sorted(fill.order_id for fill in on_day_two) == sorted(
        book.orders[key] for key in ("sell", "m1", "m2")
    )


async def _positions(db: Database, user_id: int, **filters: Any) -> dict[str, Any]:
    async with db.session() as session:
        found, _ = await queries.list_positions(
            session, user_id=user_id, filters=PositionFilters(**filters), limit=50
        )
    return {position.ticker: queries.position_read(position) for position in found}


async def test_positions_hide_flat_ones_unless_asked(db: Database, book: Book) -> None:
    assert set(await _positions(db, book.user_id)) == {"AAPL", "GOOG"}
    assert set(await _positions(db, book.user_id, include_flat=True)) == {"AAPL", "GOOG", "MSFT"}
    assert set(await _positions(db, book.user_id, strategy_id=book.strategy_id)) == {"AAPL"}


async def test_positions_are_valued_at_the_last_price(db: Database, book: Book) -> None:
    positions = await _positions(db, book.user_id)

    aapl, goog = positions["AAPL"], positions["GOOG"]
    assert (aapl.unrealized_pnl, aapl.market_value) == (Decimal(60), Decimal(660))
    assert (goog.quantity, goog.unrealized_pnl, goog.market_value) == (Decimal(-2), None, None)


async def _pnl(db: Database, user_id: int, **params: Any) -> dict[str, Any]:
    async with db.session() as session:
        report = await queries.pnl_report(
            session, user_id=user_id, query=PnlQuery.model_validate(params)
        )
    return report.model_dump(mode="json")


def _amounts(realized: str, unrealized: str, commissions: str, net: str) -> dict[str, str]:
    return {
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "commissions": commissions,
        "net_pnl": net,
    }


@pytest.mark.usefixtures("today")
async def test_pnl_totals_and_per_account_and_strategy(db: Database, book: Book) -> None:
    report = await _pnl(db, book.user_id)

    assert report["totals"] == _amounts("-10", "60", "3", "47")
    assert report["by_account"] == [
        {"broker_account_id": book.account_id, **_amounts("40", "60", "2", "98")},
        {"broker_account_id": book.second_account_id, **_amounts("-50", "0", "1", "-51")},
    ]
    assert report["by_strategy"] == [
        {"strategy_id": book.strategy_id, **_amounts("40", "60", "2", "98")},
        {"strategy_id": book.second_strategy_id, **_amounts("-50", "0", "1", "-51")},
    ]
    assert report["by_day"] is None


@pytest.mark.usefixtures("today")
async def test_pnl_by_day_sums_realized_and_commissions_per_utc_date(
    db: Database, book: Book
) -> None:
    report = await _pnl(db, book.user_id, group_by=["day"])

    assert report["by_day"] == [
        {"day": "2026-01-01", "realized_pnl": "0", "commissions": "1", "net_pnl": "-1"},
        {"day": "2026-01-02", "realized_pnl": "-10", "commissions": "2", "net_pnl": "-12"},
    ]
    assert report["by_account"] is None
    assert report["by_strategy"] is None


@pytest.mark.usefixtures("today")
async def test_pnl_date_range_limits_realized_and_drops_unrealized_in_the_past(
    db: Database, book: Book
) -> None:
    through_today = await _pnl(db, book.user_id, **{"from": date(2026, 1, 2)})
    only_yesterday = await _pnl(db, book.user_id, to=date(2026, 1, 1))

    assert through_today["totals"] == _amounts("-10", "60", "2", "48")
    assert only_yesterday["totals"] == _amounts("0", "0", "1", "-1")


@pytest.mark.usefixtures("today")
async def test_pnl_filters_by_strategy_and_never_counts_other_users(
    db: Database, book: Book
) -> None:
    second = await _pnl(db, book.user_id, strategy_id=book.second_strategy_id)
    other = await _pnl(db, book.other_user_id)

    assert second["totals"] == _amounts("-50", "0", "1", "-51")
    assert other["totals"] == _amounts("1000", "-30", "5", "965")
