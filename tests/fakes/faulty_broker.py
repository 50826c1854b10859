"""A Broker that wraps a real adapter and injects faults around submission."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pinelab.brokers.base import (
    AccountReport,
    Broker,
    Capabilities,
    FillReport,
    OrderRequest,
    OrderStatusReport,
    PositionReport,
)
from pinelab.brokers.exceptions import AmbiguousBrokerError, BrokerUnavailable


@dataclass
class FaultPlan:
    """Faults to inject, consumed in order: first refusals, then lost responses."""

    unavailable: int = 0
    lost_after_accept: int = 0
    submits_reaching_venue: int = 0
    submit_calls: list[str] = field(default_factory=list)


class FaultyBroker:
    """Delegates to a real broker; fails submissions as the plan says."""

    def __init__(self, inner: Broker, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan
        self.capabilities: Capabilities = inner.capabilities

    async def submit_order(self, request: OrderRequest) -> OrderStatusReport:
        """Submit, unless the plan says the venue is down or the answer gets lost."""
        self.plan.submit_calls.append(request.client_order_id)
        if self.plan.unavailable > 0:
            self.plan.unavailable -= 1
            raise BrokerUnavailable("connection refused (injected)")
        report = await self.inner.submit_order(request)
        self.plan.submits_reaching_venue += 1
        if self.plan.lost_after_accept > 0:
            self.plan.lost_after_accept -= 1
            raise AmbiguousBrokerError("response lost after the order was sent (injected)")
        return report

    async def resolve_symbol(self, ticker: str) -> str:
        return await self.inner.resolve_symbol(ticker)

    async def fetch_order_by_client_id(self, client_order_id: str) -> OrderStatusReport | None:
        return await self.inner.fetch_order_by_client_id(client_order_id)

    async def fetch_order(self, broker_order_id: str) -> OrderStatusReport:
        return await self.inner.fetch_order(broker_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderStatusReport]:
        return await self.inner.fetch_open_orders(symbol)

    async def cancel_order(self, broker_order_id: str) -> OrderStatusReport:
        return await self.inner.cancel_order(broker_order_id)

    async def fetch_account(self) -> AccountReport:
        return await self.inner.fetch_account()

    async def fetch_positions(self) -> list[PositionReport]:
        return await self.inner.fetch_positions()

    async def fetch_fills(self, since: datetime) -> list[FillReport]:
        return await self.inner.fetch_fills(since)

    async def check_connection(self) -> None:
        await self.inner.check_connection()

    async def close(self) -> None:
        await self.inner.close()
