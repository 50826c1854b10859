"""A newcomer sees what happens: one INFO line per alert and one per order state change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from pinelab.signals import router as signals_router
from pinelab.trading import orders
from tests.factories import Seeded, settled_signal

ALERT = {"ticker": "AAPL", "action": "buy", "quantity": "10", "price": "190.25", "id": "log-1"}
LineList = list[dict[str, Any]]


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[LineList]:
    """Capture what the alert and order loggers write (fresh loggers: cached ones bypass it)."""
    with structlog.testing.capture_logs() as captured:
        monkeypatch.setattr(signals_router, "log", structlog.get_logger("alert-log-test"))
        monkeypatch.setattr(orders, "log", structlog.get_logger("order-log-test"))
        yield captured


def _events(lines: LineList, event: str) -> LineList:
    return [line for line in lines if line["event"] == event]


async def test_an_alert_and_each_of_its_order_moves_are_one_info_line_each(
    app: FastAPI, client: httpx.AsyncClient, seeded: Seeded, lines: LineList
) -> None:
    response = await client.post(f"/webhooks/{seeded.token}", json=ALERT)
    assert response.status_code == 202, response.text
    signal_id = response.json()["signal_id"]
    signal = await settled_signal(app.state.db, signal_id)
    assert signal.status == "executed", signal.reason

    [alert] = _events(lines, "alert")
    assert alert["log_level"] == "info"
    assert (alert["strategy_id"], alert["signal_id"], alert["outcome"]) == (
        seeded.strategy_id,
        signal_id,
        "accepted",
    )
    assert alert["took_ms"] >= 0
    moves = _events(lines, "order")
    changes = [(m["change"], m["from_status"], m["to_status"]) for m in moves]
    assert changes[0] == ("created", None, "new")
    assert moves[-1]["to_status"] == "filled"
    assert {m["log_level"] for m in moves} == {"info"}
    assert {(m["signal_id"], m["ticker"], m["side"]) for m in moves} == {(signal_id, "AAPL", "buy")}
    assert moves[-1]["filled_quantity"] == "10"
    assert seeded.token not in repr(lines)


async def test_a_refused_alert_is_one_line_with_its_reason(
    client: httpx.AsyncClient, seeded: Seeded, lines: LineList
) -> None:
    rejected = await client.post(f"/webhooks/{seeded.token}", json={"ticker": "AAPL"})
    unknown = await client.post("/webhooks/no-such-token-0123456789", json=ALERT)

    assert (rejected.status_code, unknown.status_code) == (422, 404)
    first, second = _events(lines, "alert")
    assert (first["strategy_id"], first["signal_id"], first["outcome"]) == (
        seeded.strategy_id,
        rejected.json()["signal_id"],
        "rejected",
    )
    assert "action" in first["reason"]
    assert (second["outcome"], second["error"]) == ("refused", "UnknownWebhook")
    assert "no-such-token" not in repr(lines)
    assert _events(lines, "order") == []
