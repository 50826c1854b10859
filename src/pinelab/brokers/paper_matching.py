"""The paper venue's matching engine: works resting orders against a price inside one
transaction, books fills into cash and positions, places bracket legs and cancels OCO siblings."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from pinelab.brokers import paper_rules as rules
from pinelab.brokers.base import OrderSide, OrderStatus, OrderType, TimeInForce
from pinelab.brokers.models import PaperAccount, PaperFill, PaperOrder, PaperPosition
from pinelab.clock import now

OPEN = OrderStatus.ACCEPTED.value


def close_order(order: PaperOrder, status: OrderStatus, reason: str | None) -> None:
    """Move an order to a final status, with the reason shown in its report."""
    order.status = status.value
    order.reject_reason = reason
    order.updated_at = now()


class Matcher:
    """Work one account's paper orders inside the caller's transaction (account row locked)."""

    def __init__(
        self,
        session: Session,
        account: PaperAccount,
        *,
        commission_per_order: Decimal,
        slippage_bps: Decimal,
    ) -> None:
        self._session = session
        self._account = account
        self._commission = commission_per_order
        self._slippage_bps = slippage_bps

    def match(self, symbol: str, price: Decimal, *, after_id: int = 0) -> None:
        """Work the open orders of a symbol created after `after_id`, oldest first, new legs too."""
        while True:
            statement = (
                self._orders()
                .where(PaperOrder.symbol == symbol, PaperOrder.status == OPEN)
                .where(PaperOrder.id > after_id)
                .order_by(PaperOrder.id)
            )
            orders = self._session.scalars(statement).all()
            placed_legs = False
            for order in orders:
                # An earlier fill in this pass may have canceled this order (one-cancels-other).
                if order.status != OPEN:
                    continue
                fill_price = rules.execution_price(order, price, self._slippage_bps)
                if fill_price is not None:
                    placed_legs |= self._fill(order, fill_price, market_price=price)
            # Only the bracket legs placed by this pass are newer than what it worked.
            if not placed_legs:
                return
            after_id = orders[-1].id

    def _fill(self, order: PaperOrder, fill_price: Decimal, *, market_price: Decimal) -> bool:
        """Fill an order in full (or reject it for want of cash); tell whether legs were placed."""
        side = OrderSide(order.side)
        value = rules.quantize_money(order.quantity * fill_price)
        needed = side.sign * value + self._commission
        if self._account.cash - needed < 0:
            cash = _plain(self._account.cash)
            reason = f"insufficient cash: {cash} available, {_plain(needed)} needed"
            close_order(order, OrderStatus.REJECTED, reason)
            return False
        self._account.cash -= needed
        self._account.updated_at = now()
        self._session.add(
            PaperFill(
                broker_account_id=order.broker_account_id,
                paper_order_id=order.id,
                broker_fill_id=uuid.uuid4().hex,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                price=fill_price,
                commission=self._commission,
                filled_at=now(),
            )
        )
        self._move_position(order.symbol, side.sign * order.quantity, fill_price)
        order.filled_quantity = order.quantity
        order.average_fill_price = fill_price
        close_order(order, OrderStatus.FILLED, None)
        if order.oco_group is not None:
            self._cancel_siblings(order)
        legs = _legs(order, market_price)
        self._session.add_all(legs)
        self._session.flush()
        return bool(legs)

    def _move_position(self, symbol: str, signed_quantity: Decimal, price: Decimal) -> None:
        account_id = self._account.broker_account_id
        position = self._session.scalar(
            select(PaperPosition).where(
                PaperPosition.broker_account_id == account_id, PaperPosition.symbol == symbol
            )
        )
        if position is None:
            position = PaperPosition(
                broker_account_id=account_id,
                symbol=symbol,
                quantity=Decimal(0),
                average_price=Decimal(0),
            )
            self._session.add(position)
        position.quantity, position.average_price = rules.apply_fill(
            position.quantity, position.average_price, signed_quantity, price
        )

    def _cancel_siblings(self, order: PaperOrder) -> None:
        siblings = self._session.scalars(
            self._orders().where(
                PaperOrder.oco_group == order.oco_group,
                PaperOrder.id != order.id,
                PaperOrder.status == OPEN,
            )
        )
        reason = f"one-cancels-other: {order.broker_order_id} filled"
        for sibling in siblings:
            close_order(sibling, OrderStatus.CANCELED, reason)

    def _orders(self) -> Select[PaperOrder]:
        return select(PaperOrder).where(
            PaperOrder.broker_account_id == self._account.broker_account_id
        )


def _plain(value: Decimal) -> str:
    """Write an amount without exponent or trailing zeros, as a person would."""
    return format(value.normalize(), "f")


def _legs(entry: PaperOrder, market_price: Decimal) -> list[PaperOrder]:
    """Build the bracket legs of a filled entry (none when it is not a bracket)."""
    legs: list[PaperOrder] = []
    if entry.take_profit_price is not None:
        take_profit = _leg(entry, "tp", OrderType.LIMIT)
        take_profit.limit_price = entry.take_profit_price
        legs.append(take_profit)
    if entry.stop_loss_type is not None:
        stop_loss = _leg(entry, "sl", OrderType(entry.stop_loss_type))
        stop_loss.stop_price = entry.stop_loss_price
        stop_loss.limit_price = entry.stop_loss_limit_price
        stop_loss.trail_percent = entry.stop_loss_trail_percent
        if stop_loss.order_type == OrderType.TRAILING_STOP.value:
            rules.trail(stop_loss, market_price)
        legs.append(stop_loss)
    if len(legs) > 1:
        for leg in legs:
            leg.oco_group = entry.broker_order_id
    return legs


def _leg(entry: PaperOrder, suffix: str, order_type: OrderType) -> PaperOrder:
    return PaperOrder(
        broker_account_id=entry.broker_account_id,
        broker_order_id=uuid.uuid4().hex,
        client_order_id=f"{entry.broker_order_id}-{suffix}",
        symbol=entry.symbol,
        side=OrderSide(entry.side).opposite.value,
        order_type=order_type.value,
        time_in_force=TimeInForce.GTC.value,
        quantity=entry.filled_quantity,
        status=OPEN,
        filled_quantity=Decimal(0),
        parent_broker_order_id=entry.broker_order_id,
        created_at=now(),
        updated_at=now(),
    )
