"""The order a signal asks for (sized, checked, built), and the signal's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from pinelab.brokers.base import Capabilities, OrderRequest, OrderSide, OrderType, TimeInForce
from pinelab.clock import now
from pinelab.signals.intent import AlertIntent, QuantityType
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy
from pinelab.trading.brackets import bracket_prices
from pinelab.trading.risk import check_order
from pinelab.trading.sizing import OrderPlan, Sizing, plan_order

MAX_REASON_CHARS = 4000

_SIGNAL = cast(Table, Signal.__table__)
# Only a still accepted signal is finished (its SET columns come from the parameters' keys).
FINISH_SIGNAL = update(_SIGNAL).where(
    _SIGNAL.c.id == bindparam("b_signal_id"), _SIGNAL.c.status == "accepted"
)


@dataclass(frozen=True)
class Outcome:
    """What happened in one account."""

    account_id: int
    ok: bool
    message: str


@dataclass(frozen=True)
class SignalFinish:
    """The final status of a signal and the reason shown with it."""

    signal_id: int
    status: str
    reason: str


def finish_for(signal_id: int, outcomes: list[Outcome]) -> SignalFinish:
    """Return the signal's finish after every account's outcome."""
    status = "failed" if any(not outcome.ok for outcome in outcomes) else "executed"
    summary = "; ".join(f"account {o.account_id}: {o.message}" for o in outcomes)
    return SignalFinish(signal_id, status, summary)


def finish_signal(session: Session, finish: SignalFinish) -> None:
    """Give a still accepted signal its final status, in the caller's transaction."""
    session.execute(
        FINISH_SIGNAL,
        {
            "b_signal_id": finish.signal_id,
            "status": finish.status,
            "reason": finish.reason[:MAX_REASON_CHARS],
            "executed_at": now(),
        },
    )


def needs_equity(intent: AlertIntent, strategy: Strategy) -> bool:
    """Tell whether sizing needs the account's equity (percent-of-equity sizing)."""
    return QuantityType.PERCENT_OF_EQUITY in (
        intent.quantity_type,
        QuantityType(strategy.sizing_type),
    )


def plan_request(
    intent: AlertIntent,
    strategy: Strategy,
    *,
    client_id: str,
    symbol: str,
    position: Decimal,
    equity: Decimal | None,
    capabilities: Capabilities,
) -> OrderRequest | None:
    """Size and risk-check the signal's order; None when there is nothing to do.

    Raises OrderRejectedError (sizing, risk) with the reason.
    """
    price = intent.order_price
    plan = plan_order(
        intent,
        sizing=Sizing(QuantityType(strategy.sizing_type), strategy.sizing_value),
        current_position=position,
        equity=equity,
        price=price,
        fractional=capabilities.fractional_quantity,
        # A venue takes an amount of money only for a market order: a limit or stop order is
        # sized here, from its own price.
        notional_orders=capabilities.notional_orders and intent.order_type is OrderType.MARKET,
        quantity_step=capabilities.quantity_step,
    )
    if plan is None:
        return None
    check_order(strategy, ticker=intent.ticker, plan=plan, current_position=position)
    return build_request(client_id, symbol, plan, intent, entry=price)


def build_request(
    client_id: str, symbol: str, plan: OrderPlan, intent: AlertIntent, *, entry: Decimal | None
) -> OrderRequest:
    """Build the request of a planned order, brackets included."""
    take_profit, stop_loss = (None, None)
    if not plan.reduce_only:
        take_profit, stop_loss = bracket_prices(
            intent.take_profit, intent.stop_loss, entry=entry, side=plan.side
        )
    return OrderRequest(
        client_order_id=client_id,
        symbol=symbol,
        side=plan.side,
        order_type=intent.order_type,
        quantity=plan.quantity,
        notional=plan.notional,
        limit_price=intent.limit_price,
        stop_price=intent.stop_price,
        trail_percent=intent.trail_percent,
        time_in_force=intent.time_in_force,
        take_profit_price=take_profit,
        stop_loss=stop_loss,
        reference_price=intent.price,
    )


def request_from(
    intent: AlertIntent,
    *,
    client_id: str,
    symbol: str,
    side: str,
    quantity: Decimal,
    order_type: str,
    time_in_force: str,
) -> OrderRequest:
    """Rebuild the request of an order stored before a crash or a failed attempt."""
    plan = OrderPlan(OrderSide(side), quantity or None, None, reduce_only=False)
    request = build_request(client_id, symbol, plan, intent, entry=intent.order_price)
    return OrderRequest(
        **{
            **request.__dict__,
            "order_type": OrderType(order_type),
            "time_in_force": TimeInForce(time_in_force),
        }
    )
