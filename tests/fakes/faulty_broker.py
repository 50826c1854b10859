"""A Broker that wraps a real adapter and injects faults, as a venue's network would.

The plan is data: a number of refused submissions, a number of answers lost after the venue
took the order, or an outage (`down`) that lasts until it is cleared: `refused` and
`unavailable` fail every call before it reaches the venue; `timeouts` let submissions reach the
venue and lose their answers, and fail every other call. `wrap` keeps a quote-driven venue (the
paper broker) quote-driven, so it still learns prices from alerts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, TypeVar

from pinelab.brokers.base import (
    AccountReport,
    Broker,
    Capabilities,
    FillReport,
    OrderRequest,
    OrderStatusReport,
    PositionReport,
    QuoteDriven,
)
from pinelab.brokers.exceptions import AmbiguousBrokerError, BrokerUnavailable

T = TypeVar("T")
Outage = Literal["refused", "unavailable", "timeouts"]


@dataclass
class FaultPlan:
    """Faults to inject: first the outage, then refusals, then lost responses."""

    unavailable: int = 0
    lost_after_accept: int = 0
    down: Outage | None = None
    submits_reaching_venue: int = 0
    spoiled: dict[str, int] = field(default_factory=dict)  # calls failed, per outage
    submit_calls: list[str] = field(default_factory=list)

    def spoil(self) -> None:
        """Count one call the outage failed."""
        assert self.down is not None
        self.spoiled[self.down] = self.spoiled.get(self.down, 0) + 1


class FaultyBroker:
    """Delegates to a real broker; fails calls as the plan says."""

    def __init__(self, inner: Broker, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan
        self.capabilities: Capabilities = inner.capabilities

    async def submit_order(self, request: OrderRequest) -> OrderStatusReport:
        """Submit, unless the plan says the venue is down or the answer gets lost."""
        plan = self.plan
        plan.submit_calls.append(request.client_order_id)
        if plan.down in ("refused", "unavailable"):
            plan.spoil()
            raise BrokerUnavailable(f"venue {plan.down} (injected)")
        if plan.unavailable > 0:
            plan.unavailable -= 1
            raise BrokerUnavailable("connection refused (injected)")
        report = await self.inner.submit_order(request)
        plan.submits_reaching_venue += 1
        if plan.down == "timeouts":
            plan.spoil()
            raise AmbiguousBrokerError("timed out after the venue took the order (injected)")
        if plan.lost_after_accept > 0:
            plan.lost_after_accept -= 1
            raise AmbiguousBrokerError("response lost after the order was sent (injected)")
        return report

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        if self.plan.down is not None:
            self.plan.spoil()
            raise BrokerUnavailable(f"venue {self.plan.down} (injected)")
        return await call()

    async def resolve_symbol(self, ticker: str) -> str:
        return await self.inner.resolve_symbol(ticker)

    async def fetch_order_by_client_id(self, client_order_id: str) -> OrderStatusReport | None:
        return await self._call(lambda: self.inner.fetch_order_by_client_id(client_order_id))

    async def fetch_order(self, broker_order_id: str) -> OrderStatusReport:
        return await self._call(lambda: self.inner.fetch_order(broker_order_id))

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderStatusReport]:
        return await self._call(lambda: self.inner.fetch_open_orders(symbol))

    async def cancel_order(self, broker_order_id: str) -> OrderStatusReport:
        return await self._call(lambda: self.inner.cancel_order(broker_order_id))

    async def fetch_account(self) -> AccountReport:
        return await self._call(self.inner.fetch_account)

    async def fetch_positions(self) -> list[PositionReport]:
        return await self._call(self.inner.fetch_positions)

    async def fetch_fills(self, since: datetime) -> list[FillReport]:
        return await self._call(lambda: self.inner.fetch_fills(since))

    async def check_connection(self) -> None:
        await self._call(self.inner.check_connection)

    async def close(self) -> None:
        await self.inner.close()


class FaultyQuoteDrivenBroker(FaultyBroker):
    """A faulty simulated venue: prices from alerts still reach it (they are not network calls)."""

    def __init__(self, inner: Broker, plan: FaultPlan) -> None:
        assert isinstance(inner, QuoteDriven)
        super().__init__(inner, plan)
        self._quotes: QuoteDriven = inner

    async def update_price(self, symbol: str, price: Decimal) -> None:
        await self._quotes.update_price(symbol, price)


def wrap(inner: Broker, plan: FaultPlan) -> Broker:
    """Wrap a broker with the plan's faults, keeping a quote-driven venue quote-driven."""
    if isinstance(inner, QuoteDriven):
        return FaultyQuoteDrivenBroker(inner, plan)
    return FaultyBroker(inner, plan)
