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
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial

from sqlalchemy import ColumnElement, Row, Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pinelab.brokers import paper_rules as rules
from pinelab.brokers.base import (
    AccountReport,
    Capabilities,
    FillReport,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    PositionReport,
    TimeInForce,
)
from pinelab.brokers.exceptions import InvalidOrder, OrderNotFound, UnknownSymbol
from pinelab.brokers.models import PaperAccount, PaperFill, PaperOrder, PaperPosition, PaperQuote
from pinelab.brokers.paper_matching import OPEN, Matcher, close_order
from pinelab.clock import now
from pinelab.db import Database

_ON_ARRIVAL_ONLY = frozenset({TimeInForce.IOC.value, TimeInForce.FOK.value})


class PaperBroker:
    """A simulated venue for one broker account, persisted in the paper_* tables."""

    capabilities = Capabilities(
        bracket_orders=True,
        oco_orders=True,
        notional_orders=True,
        fractional_quantity=True,
    )

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
        self._account_id = broker_account_id
        self._starting_cash = starting_cash
        self._commission = commission_per_order
        self._slippage_bps = slippage_bps

    async def resolve_symbol(self, ticker: str) -> str:
        """Map a TradingView ticker ("NASDAQ:AAPL") to the paper symbol ("AAPL")."""
        return normalise_symbol(ticker)

    async def submit_order(self, request: OrderRequest) -> OrderStatusReport:
        """Place an order, or report the existing one when its client_order_id is known."""
        try:
            return await self._db.run_session(partial(self._submit, request=request))
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
        await self._db.run_session(partial(self._update_price, symbol=symbol, price=price))

    async def fetch_order_by_client_id(self, client_order_id: str) -> OrderStatusReport | None:
        """Find an order by our id, or None when the venue has never seen it."""
        statement = self._orders().where(PaperOrder.client_order_id == client_order_id)

        def fetch(session: Session) -> OrderStatusReport | None:
            order = session.scalar(statement)
            return None if order is None else self._reports(session, [order])[0]

        return await self._db.run_session(fetch, write=False)

    async def fetch_order(self, broker_order_id: str) -> OrderStatusReport:
        """Get an order by the venue's id, or raise OrderNotFound."""

        def fetch(session: Session) -> OrderStatusReport:
            return self._reports(session, [self._order(session, broker_order_id)])[0]

        return await self._db.run_session(fetch, write=False)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderStatusReport]:
        """List the working orders, oldest first, optionally for one symbol."""
        statement = self._orders().where(PaperOrder.status == OPEN).order_by(PaperOrder.id)
        if symbol is not None:
            statement = statement.where(PaperOrder.symbol == normalise_symbol(symbol))

        def fetch(session: Session) -> list[OrderStatusReport]:
            return self._reports(session, session.scalars(statement).all())

        return await self._db.run_session(fetch, write=False)

    async def cancel_order(self, broker_order_id: str) -> OrderStatusReport:
        """Cancel a working order; a canceled, rejected or expired one is reported unchanged."""

        def cancel(session: Session) -> OrderStatusReport:
            self._lock_account(session)
            order = self._order(session, broker_order_id)
            if order.status == OrderStatus.FILLED.value:
                raise InvalidOrder("order is already filled")
            if order.status == OPEN:
                close_order(order, OrderStatus.CANCELED, "canceled by request")
            return self._reports(session, [order])[0]

        return await self._db.run_session(cancel)

    async def fetch_account(self) -> AccountReport:
        """Report cash, buying power (equal to cash) and equity marked at the last quotes."""

        def fetch(session: Session) -> tuple[Decimal, Decimal]:
            account = session.get(PaperAccount, self._account_id)
            cash = self._starting_cash if account is None else account.cash
            quotes = self._quotes(session)
            market_value = sum(
                (
                    position.quantity * quotes.get(position.symbol, position.average_price)
                    for position in self._positions(session)
                ),
                Decimal(0),
            )
            return cash, market_value

        cash, market_value = await self._db.run_session(fetch, write=False)
        equity = rules.quantize_money(cash + market_value)
        return AccountReport(equity=equity, cash=cash, buying_power=cash)

    async def fetch_positions(self) -> list[PositionReport]:
        """Report every non-zero position with its average price and last quote."""

        def fetch(session: Session) -> tuple[dict[str, Decimal], list[PaperPosition]]:
            return self._quotes(session), self._positions(session)

        quotes, positions = await self._db.run_session(fetch, write=False)
        return [
            PositionReport(
                symbol=position.symbol,
                quantity=position.quantity,
                average_price=position.average_price,
                market_price=quotes.get(position.symbol),
            )
            for position in positions
        ]

    async def fetch_fills(self, since: datetime) -> list[FillReport]:
        """Report every execution at or after `since`, oldest first."""
        statement = (
            select(PaperFill, PaperOrder.client_order_id, PaperOrder.broker_order_id)
            .join(PaperOrder, PaperOrder.id == PaperFill.paper_order_id)
            .where(PaperFill.broker_account_id == self._account_id, PaperFill.filled_at >= since)
            .order_by(PaperFill.filled_at, PaperFill.id)
        )

        def fetch(session: Session) -> Sequence[Row[PaperFill, str, str]]:
            return session.execute(statement).all()

        rows = await self._db.run_session(fetch, write=False)
        return [_fill_report(fill, client_id, broker_id) for fill, client_id, broker_id in rows]

    async def check_connection(self) -> None:
        """Touch the database; the venue itself is local and always reachable."""
        statement = select(PaperAccount.cash).where(self._mine(PaperAccount))
        await self._db.run_session(lambda session: session.scalar(statement), write=False)

    async def close(self) -> None:
        """Release nothing: the paper broker holds no connection of its own."""

    def _submit(self, session: Session, request: OrderRequest) -> OrderStatusReport:
        account = self._lock_account(session)
        existing = session.scalar(
            self._orders().where(PaperOrder.client_order_id == request.client_order_id)
        )
        if existing is not None:
            return self._reports(session, [existing])[0]
        rules.validate_request(request)
        symbol = normalise_symbol(request.symbol)
        if request.reference_price is not None:
            self._store_quote(session, symbol, request.reference_price)
        price = request.reference_price
        if price is None:
            price = self._last_price(session, symbol)
        order = self._new_order(request, symbol, price)
        session.add(order)
        session.flush()
        if price is None and order.order_type == OrderType.MARKET.value:
            close_order(order, OrderStatus.REJECTED, f"no price known for {symbol}")
        elif price is not None:
            # A new price works every resting order of the symbol; a known one only this order.
            after_id = 0 if request.reference_price is not None else order.id - 1
            self._matcher(session, account).match(symbol, price, after_id=after_id)
        if order.status == OPEN and order.time_in_force in _ON_ARRIVAL_ONLY:
            close_order(order, OrderStatus.CANCELED, f"{order.time_in_force} order could not fill")
        return self._reports(session, [order])[0]

    def _update_price(self, session: Session, *, symbol: str, price: Decimal) -> None:
        account = self._lock_account(session)
        self._store_quote(session, symbol, price)
        self._matcher(session, account).match(symbol, price)

    def _new_order(self, request: OrderRequest, symbol: str, price: Decimal | None) -> PaperOrder:
        quantity = request.quantity or Decimal(0)
        if request.notional is not None and price is not None:
            fill_price = rules.slipped_price(price, request.side, self._slippage_bps)
            quantity = rules.quantity_for_notional(request.notional, fill_price)
        stop_loss = request.stop_loss
        order = PaperOrder(
            broker_account_id=self._account_id,
            broker_order_id=uuid.uuid4().hex,
            client_order_id=request.client_order_id,
            symbol=symbol,
            side=request.side.value,
            order_type=request.order_type.value,
            time_in_force=request.time_in_force.value,
            quantity=quantity,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            trail_percent=request.trail_percent,
            status=OPEN,
            filled_quantity=Decimal(0),
            take_profit_price=request.take_profit_price,
            stop_loss_type=None if stop_loss is None else stop_loss.order_type.value,
            stop_loss_price=None if stop_loss is None else stop_loss.stop_price,
            stop_loss_limit_price=None if stop_loss is None else stop_loss.limit_price,
            stop_loss_trail_percent=None if stop_loss is None else stop_loss.trail_percent,
            created_at=now(),
            updated_at=now(),
        )
        if request.order_type is OrderType.TRAILING_STOP and price is not None:
            rules.trail(order, price)
        return order

    def _matcher(self, session: Session, account: PaperAccount) -> Matcher:
        return Matcher(
            session,
            account,
            commission_per_order=self._commission,
            slippage_bps=self._slippage_bps,
        )

    def _lock_account(self, session: Session) -> PaperAccount:
        """Create the account at starting cash if needed and lock it: writes serialise on it."""
        statement = select(PaperAccount).where(self._mine(PaperAccount)).with_for_update()
        account = session.scalar(statement)
        if account is not None:
            return account
        dialect = sqlite if self._db.is_sqlite else postgresql
        insert = dialect.insert(PaperAccount).values(
            broker_account_id=self._account_id, cash=self._starting_cash, updated_at=now()
        )
        session.execute(insert.on_conflict_do_nothing(index_elements=["broker_account_id"]))
        return session.scalars(statement).one()

    def _store_quote(self, session: Session, symbol: str, price: Decimal) -> None:
        dialect = sqlite if self._db.is_sqlite else postgresql
        moment = now()
        upsert = dialect.insert(PaperQuote).values(
            broker_account_id=self._account_id, symbol=symbol, price=price, quoted_at=moment
        )
        session.execute(
            upsert.on_conflict_do_update(
                index_elements=["broker_account_id", "symbol"],
                set_={"price": price, "quoted_at": moment},
            )
        )

    def _last_price(self, session: Session, symbol: str) -> Decimal | None:
        return session.scalar(
            select(PaperQuote.price).where(self._mine(PaperQuote), PaperQuote.symbol == symbol)
        )

    def _quotes(self, session: Session) -> dict[str, Decimal]:
        rows = session.execute(
            select(PaperQuote.symbol, PaperQuote.price).where(self._mine(PaperQuote))
        )
        return dict(rows.all())

    def _positions(self, session: Session) -> list[PaperPosition]:
        rows = session.scalars(
            select(PaperPosition).where(self._mine(PaperPosition)).order_by(PaperPosition.symbol)
        )
        return [position for position in rows if position.quantity != 0]

    def _order(self, session: Session, broker_order_id: str) -> PaperOrder:
        order = session.scalar(self._orders().where(PaperOrder.broker_order_id == broker_order_id))
        if order is None:
            raise OrderNotFound(f"no paper order {broker_order_id}")
        return order

    def _reports(self, session: Session, orders: Sequence[PaperOrder]) -> list[OrderStatusReport]:
        """Report orders, each with its bracket legs."""
        legs: dict[str, list[PaperOrder]] = defaultdict(list)
        # Only an entry that carried a take profit or a stop loss can have legs.
        parents = [o.broker_order_id for o in orders if _is_bracket(o)]
        if parents:
            children = session.scalars(
                self._orders()
                .where(PaperOrder.parent_broker_order_id.in_(parents))
                .order_by(PaperOrder.id)
            )
            for child in children:
                legs[child.parent_broker_order_id or ""].append(child)
        return [
            _order_report(order, tuple(_order_report(leg) for leg in legs[order.broker_order_id]))
            for order in orders
        ]

    def _orders(self) -> Select[PaperOrder]:
        return select(PaperOrder).where(self._mine(PaperOrder))

    def _mine(
        self, table: type[PaperAccount | PaperOrder | PaperPosition | PaperQuote]
    ) -> ColumnElement[bool]:
        return table.broker_account_id == self._account_id


def normalise_symbol(ticker: str) -> str:
    """Strip an exchange prefix and spaces and upper-case a ticker; raise UnknownSymbol if empty."""
    symbol = ticker.strip().rsplit(":", 1)[-1].strip().upper()
    if not symbol:
        raise UnknownSymbol(f"no symbol in ticker {ticker!r}")
    return symbol


def _is_bracket(order: PaperOrder) -> bool:
    return order.take_profit_price is not None or order.stop_loss_type is not None


def _order_report(order: PaperOrder, legs: tuple[OrderStatusReport, ...] = ()) -> OrderStatusReport:
    return OrderStatusReport(
        client_order_id=order.client_order_id,
        broker_order_id=order.broker_order_id,
        symbol=order.symbol,
        side=OrderSide(order.side),
        order_type=OrderType(order.order_type),
        status=OrderStatus(order.status),
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        average_fill_price=order.average_fill_price,
        reason=order.reject_reason,
        updated_at=order.updated_at,
        legs=legs,
    )


def _fill_report(fill: PaperFill, client_order_id: str, broker_order_id: str) -> FillReport:
    return FillReport(
        broker_fill_id=fill.broker_fill_id,
        broker_order_id=broker_order_id,
        client_order_id=client_order_id,
        symbol=fill.symbol,
        side=OrderSide(fill.side),
        quantity=fill.quantity,
        price=fill.price,
        filled_at=fill.filled_at,
        commission=fill.commission,
    )
