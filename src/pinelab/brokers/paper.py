"""The built-in paper broker: a simulated venue that keeps its own books in the database.

It learns prices from alerts (`update_price`, or the reference price an order carries) and
fills working orders against them. Venue rules, documented once here:

- Market orders fill at once, in full, at the market price plus slippage; with no price
  known they are rejected. Stops and trailing stops fill like market orders once touched;
  limits (and triggered stop limits) fill at the market price itself, never with slippage.
- `commission_per_order` is charged once per order, on its fill.
- A fill that would leave cash below zero is rejected at fill time (nothing is reserved
  while an order rests). Short selling is allowed and credits the proceeds.
- Buying power equals cash; equity is cash plus every position marked at its last quote.
- ioc and fok orders that cannot fill on arrival are canceled (reason given). There is no
  session calendar: day orders stay working until filled or canceled.
- Bracket legs (take-profit limit, stop-loss stop / stop_limit / trailing_stop) are placed
  good-till-canceled once the entry fills, for the filled quantity, and are one-cancels-other.
  A trailing stop-loss leg trails from the market price at the entry's fill; its
  `stop_price` is then computed from `trail_percent`.
- Malformed requests raise `InvalidOrder` and store nothing; an order the venue accepted
  and then refused is a report with status `rejected` and a reason.

It is an ordinary `Broker` adapter: each method runs one `PaperVenue` operation
(paper_venue.py) in a transaction of its own, as a broker keeps its own books; PineLab's orders
reach it only through the protocol, like every other venue's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pinelab.brokers import paper_rules as rules
from pinelab.brokers.base import (
    AccountReport,
    Capabilities,
    FillReport,
    OrderRequest,
    OrderStatusReport,
    PositionReport,
)
from pinelab.brokers.paper_rules import normalise_symbol
from pinelab.brokers.paper_venue import PaperConfig, PaperVenue
from pinelab.db import Database

__all__ = ["PaperBroker", "normalise_symbol"]

T = TypeVar("T")


class PaperBroker:
    """A simulated venue for one broker account, persisted in the paper_* tables."""

    capabilities: Capabilities = rules.CAPABILITIES

    def __init__(
        self,
        db: Database,
        *,
        broker_account_id: int,
        starting_cash: Decimal,
        commission_per_order: Decimal,
        slippage_bps: Decimal,
    ) -> None:
        self._db = db
        self.config = PaperConfig(
            broker_account_id=broker_account_id,
            starting_cash=starting_cash,
            commission_per_order=commission_per_order,
            slippage_bps=slippage_bps,
        )

    async def resolve_symbol(self, ticker: str) -> str:
        """Map a TradingView ticker ("NASDAQ:AAPL") to the paper symbol ("AAPL")."""
        return normalise_symbol(ticker)

    async def submit_order(self, request: OrderRequest) -> OrderStatusReport:
        """Place an order, or report the existing one when its client_order_id is known."""
        try:
            return await self._write(lambda venue: venue.submit(request))
        except IntegrityError:
            # A concurrent submit with the same client_order_id won the unique constraint.
            existing = await self.fetch_order_by_client_id(request.client_order_id)
            if existing is None:
                raise
            return existing

    async def update_price(self, symbol: str, price: Decimal) -> None:
        """Record a price and fill the resting orders it crosses, oldest first."""
        rules.validate_price(price)
        symbol = normalise_symbol(symbol)
        await self._write(lambda venue: venue.update_price(symbol, price))

    async def fetch_order_by_client_id(self, client_order_id: str) -> OrderStatusReport | None:
        """Find an order by our id, or None when the venue has never seen it."""
        return await self._read(lambda venue: venue.fetch_order_by_client_id(client_order_id))

    async def fetch_order(self, broker_order_id: str) -> OrderStatusReport:
        """Get an order by the venue's id, or raise OrderNotFound."""
        return await self._read(lambda venue: venue.fetch_order(broker_order_id))

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderStatusReport]:
        """List the working orders, oldest first, optionally for one symbol."""
        return await self._read(lambda venue: venue.fetch_open_orders(symbol))

    async def cancel_order(self, broker_order_id: str) -> OrderStatusReport:
        """Cancel a working order; a canceled, rejected or expired one is reported unchanged."""
        return await self._write(lambda venue: venue.cancel(broker_order_id))

    async def fetch_account(self) -> AccountReport:
        """Report cash, buying power (equal to cash) and equity marked at the last quotes."""
        return await self._read(PaperVenue.account)

    async def fetch_positions(self) -> list[PositionReport]:
        """Report every non-zero position with its average price and last quote."""
        return await self._read(PaperVenue.positions)

    async def fetch_fills(self, since: datetime) -> list[FillReport]:
        """Report every execution at or after `since`, oldest first."""
        return await self._read(lambda venue: venue.fills(since))

    async def check_connection(self) -> None:
        """Touch the database; the venue itself is local and always reachable."""
        await self._read(PaperVenue.touch)

    async def close(self) -> None:
        """Release nothing: the paper broker holds no connection of its own."""

    def _run(self, session: Session, work: Callable[[PaperVenue], T]) -> T:
        return work(PaperVenue(session.connection(), self.config))

    async def _write(self, work: Callable[[PaperVenue], T]) -> T:
        return await self._db.run(lambda s: self._run(s, work))

    async def _read(self, work: Callable[[PaperVenue], T]) -> T:
        return await self._db.run(lambda s: self._run(s, work), write=False)
