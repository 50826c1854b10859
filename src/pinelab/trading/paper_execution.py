"""Execution at the built-in paper venue: a whole signal in the caller's one transaction.

The paper venue keeps its books in our database, so storing the order, the venue's accept,
match and fill, booking its report (status history, fill, position) and finishing the signal
commit together; the worker runs this in the transaction that claims and completes the job.
There is never a moment where the venue has an order we do not know, and a crash anywhere
rolls the whole attempt back for the job to run again. Everything goes through prebuilt Core
statements (`Books`, `PaperVenue`): no ORM unit of work on the hot path.

The order of work per account is the one of the multi-step path (`execution.py`): the venue
sees the alert's price first (it may fill resting orders, which move the position the order
is sized from), we book what that changed, then size, store and submit the new order, and
book the venue's answer. Signals bound to any other kind of account take that path instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, func, select

from pinelab.brokers.base import OrderRequest, OrderStatus
from pinelab.brokers.exceptions import (
    BrokerError,
    InsufficientFunds,
    InvalidOrder,
    PermanentBrokerError,
)
from pinelab.brokers.models import BrokerAccount
from pinelab.brokers.paper import PaperBroker
from pinelab.brokers.paper_rules import normalise_symbol
from pinelab.brokers.paper_venue import PaperConfig, PaperVenue
from pinelab.clock import now
from pinelab.errors import OrderRejectedError
from pinelab.signals.intent import Action, AlertIntent
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy, StrategyBrokerAccount
from pinelab.trading.books import Books, OrderRecord
from pinelab.trading.models import Order
from pinelab.trading.order_state import OrderEventType
from pinelab.trading.orders import client_order_id
from pinelab.trading.planning import (
    Outcome,
    SignalFinish,
    finish_for,
    finish_signal,
    needs_equity,
    plan_request,
    request_from,
)

if TYPE_CHECKING:
    from typing import Any as AppContext  # bridged until the merge: api/context.py is gone

    from pinelab.ops.metrics import Metrics

NO_ACCOUNT = "the strategy has no live broker account"

_SIGNAL = cast(Table, Signal.__table__)
_STRATEGY = cast(Table, Strategy.__table__)
_BINDING = cast(Table, StrategyBrokerAccount.__table__)
_ACCOUNT = cast(Table, BrokerAccount.__table__)
_ORDER_SIGNAL = select(func.count()).where(cast(Table, Order.__table__).c.signal_id == _SIGNAL.c.id)
# The signal, its strategy and its live accounts, and whether orders were stored for it: one read.
_LOAD = (
    select(
        _SIGNAL.c.user_id,
        _SIGNAL.c.status,
        _SIGNAL.c.intent,
        _SIGNAL.c.received_at,
        _STRATEGY.c.id.label("strategy_id"),
        _STRATEGY.c.sizing_type,
        _STRATEGY.c.sizing_value,
        _STRATEGY.c.allowed_symbols,
        _STRATEGY.c.max_position_quantity,
        _ACCOUNT.c.id.label("account_id"),
        _ACCOUNT.c.kind,
        _ACCOUNT.c.starting_cash,
        _ACCOUNT.c.commission_per_order,
        _ACCOUNT.c.slippage_bps,
        _ORDER_SIGNAL.scalar_subquery().label("stored"),
    )
    .join(_STRATEGY, _STRATEGY.c.id == _SIGNAL.c.strategy_id)
    .outerjoin(_BINDING, _BINDING.c.strategy_id == _STRATEGY.c.id)
    .outerjoin(
        _ACCOUNT,
        and_(_ACCOUNT.c.id == _BINDING.c.broker_account_id, _ACCOUNT.c.archived_at.is_(None)),
    )
    .where(_SIGNAL.c.id == bindparam("signal_id"))
    .order_by(_ACCOUNT.c.id)
)


@dataclass
class PaperExecuted:
    """What a committed execution tells the metrics (told only after the commit)."""

    received_at: datetime | None = None
    statuses: list[str] = field(default_factory=list)  # order statuses reached, in order
    submitted: int = 0

    def report(self, metrics: Metrics) -> None:
        """Count the orders' moves and the submissions' latency."""
        for status in self.statuses:
            metrics.order_status(status)
        if self.received_at is not None:
            for _ in range(self.submitted):
                metrics.order_submitted(self.received_at)


@dataclass
class _Run:
    """One signal being executed in one transaction."""

    signal_id: int
    user_id: int
    intent: AlertIntent
    strategy: Strategy
    stored: bool  # orders were stored for this signal before (a retry, a replay)
    books: Books
    executed: PaperExecuted


def paper_config(context: AppContext, row: Any) -> PaperConfig | None:
    """Return the venue settings of an account served by the built-in paper broker, else None."""
    if not context.brokers.serves_builtin_paper(row.kind):
        return None  # another adapter (or one a test wraps) goes through the Broker protocol
    return PaperConfig(
        broker_account_id=row.account_id,
        starting_cash=row.starting_cash,
        commission_per_order=row.commission_per_order,
        slippage_bps=row.slippage_bps,
    )


def execute_in_transaction(
    context: AppContext, connection: Connection, *, signal_id: int
) -> PaperExecuted | None:
    """Execute a signal whose accounts are all paper ones, in the caller's transaction.

    Return None, having written nothing, when the signal needs the multi-step path.
    """
    rows = connection.execute(_LOAD, {"signal_id": signal_id}).all()
    executed = PaperExecuted()
    if not rows or rows[0].status != "accepted" or rows[0].intent is None:
        return executed  # gone, or already finished: nothing to do
    first = rows[0]
    accounts = [row for row in rows if row.account_id is not None]
    configs = [paper_config(context, row) for row in accounts]
    if any(config is None for config in configs):
        return None
    executed.received_at = first.received_at
    run = _Run(
        signal_id,
        first.user_id,
        AlertIntent.from_record(first.intent),
        Strategy(
            id=first.strategy_id,
            sizing_type=first.sizing_type,
            sizing_value=first.sizing_value,
            allowed_symbols=first.allowed_symbols,
            max_position_quantity=first.max_position_quantity,
        ),
        bool(first.stored),
        Books(connection),
        executed,
    )
    outcomes = [_in_account(run, PaperVenue(connection, c)) for c in configs if c is not None]
    run.books.flush()
    finish = (
        finish_for(signal_id, outcomes)
        if outcomes
        else SignalFinish(signal_id, "failed", NO_ACCOUNT)
    )
    finish_signal(connection, finish)
    return executed


def _in_account(run: _Run, venue: PaperVenue) -> Outcome:
    account_id = venue.account_id
    try:
        symbol = normalise_symbol(run.intent.ticker)
        price = run.intent.price
        if price is not None:
            _observe_price(run, venue, symbol, price)
        if run.intent.action is Action.CANCEL:
            return _cancel_open(run, venue, symbol)
        return _trade(run, venue, symbol, client_order_id(run.signal_id, account_id))
    except (PermanentBrokerError, OrderRejectedError) as exc:
        message = exc.message if isinstance(exc, BrokerError | OrderRejectedError) else str(exc)
        return Outcome(account_id, False, message)


def _observe_price(run: _Run, venue: PaperVenue, symbol: str, price: Decimal) -> None:
    """Give the venue the alert's price, mark our positions, and book what it filled."""
    venue.update_price(symbol, price)
    run.books.mark_price(broker_account_id=venue.account_id, ticker=run.intent.ticker, price=price)
    for order in run.books.working(broker_account_id=venue.account_id, symbol=symbol):
        if order.broker_order_id is not None:
            _book(run, order, venue.fetch_order(order.broker_order_id))


def _cancel_open(run: _Run, venue: PaperVenue, symbol: str) -> Outcome:
    working = run.books.working(
        broker_account_id=venue.account_id, symbol=symbol, strategy_id=run.strategy.id
    )
    for order in working:
        if order.broker_order_id is not None:
            _book(run, order, venue.cancel(order.broker_order_id))
    return Outcome(venue.account_id, True, f"canceled {len(working)} open order(s) in {symbol}")


def _trade(run: _Run, venue: PaperVenue, symbol: str, client_id: str) -> Outcome:
    existing = run.books.find(client_id) if run.stored else None
    if existing is not None:
        return _existing(run, venue, existing)
    intent, account_id = run.intent, venue.account_id
    equity = venue.account().equity if needs_equity(intent, run.strategy) else None
    position = run.books.position(
        broker_account_id=account_id,
        strategy_id=run.strategy.id,
        ticker=intent.ticker,
        user_id=run.user_id,
    )
    request = plan_request(
        intent,
        run.strategy,
        client_id=client_id,
        symbol=symbol,
        position=position.quantity,
        equity=equity,
        capabilities=PaperBroker.capabilities,
    )
    if request is None:
        return Outcome(account_id, True, "nothing to do")
    order = run.books.add(
        request,
        {"notional": str(request.notional)} if request.notional else None,
        user_id=run.user_id,
        signal_id=run.signal_id,
        strategy_id=run.strategy.id,
        broker_account_id=account_id,
        ticker=intent.ticker,
    )
    run.executed.statuses.append(OrderStatus.NEW.value)
    return _submit(run, venue, order, request)


def _existing(run: _Run, venue: PaperVenue, order: OrderRecord) -> Outcome:
    """Settle an order an earlier attempt stored: never a second one for the signal."""
    account_id = venue.account_id
    if order.status != OrderStatus.NEW.value:
        # One that never made it (failed, rejected) leaves the signal failed, also on a replay.
        refused = order.status in (OrderStatus.FAILED.value, OrderStatus.REJECTED.value)
        detail = f": {order.reason}" if refused and order.reason else ""
        return Outcome(account_id, not refused, f"order {order.id} is {order.status}{detail}")
    adopted = venue.fetch_order_by_client_id(order.client_order_id)
    if adopted is not None:
        _book(run, order, adopted)
        return Outcome(account_id, True, f"order {order.id} found at the broker")
    request = request_from(
        run.intent,
        client_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
    )
    return _submit(run, venue, order, request)


def _submit(run: _Run, venue: PaperVenue, order: OrderRecord, request: OrderRequest) -> Outcome:
    account_id, books = venue.account_id, run.books
    try:
        report = venue.submit(request)
    except (InvalidOrder, InsufficientFunds) as exc:
        books.move(order, OrderEventType.REJECTED, reason=exc.message)
        run.executed.statuses.append(order.status)
        return Outcome(account_id, False, f"rejected by the broker: {exc.message}")
    except PermanentBrokerError as exc:
        books.move(order, OrderEventType.FAILED, reason=exc.message)
        run.executed.statuses.append(order.status)
        return Outcome(account_id, False, f"failed: {exc.message}")
    if order.status == OrderStatus.NEW.value:
        books.move(order, OrderEventType.SUBMITTED)
        order.submitted_at = now()
    run.executed.submitted += 1
    _book(run, order, report, before=OrderStatus.NEW.value)
    ok = report.status not in (OrderStatus.REJECTED, OrderStatus.FAILED)
    detail = f"{report.status.value}" + (f": {report.reason}" if report.reason else "")
    return Outcome(account_id, ok, f"order {request.client_order_id} {detail}")


def _book(run: _Run, order: OrderRecord, report: Any, *, before: str | None = None) -> None:
    """Apply a venue report to our order and its legs; count the order's new status."""
    before = order.status if before is None else before
    run.books.apply_report(order, report)
    if order.status != before:
        run.executed.statuses.append(order.status)
