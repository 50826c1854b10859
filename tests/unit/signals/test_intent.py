"""AlertIntent.of: the parser's constructor builds the same frozen intent as the dataclass's."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from pinelab.brokers.base import OrderType, TimeInForce
from pinelab.signals.intent import Action, AlertIntent, ExitTarget, QuantityType, Sentiment


def _values() -> dict[str, Any]:
    return {
        "ticker": "AAPL",
        "action": Action.SELL,
        "quantity": Decimal("2.5"),
        "quantity_type": QuantityType.NOTIONAL,
        "price": Decimal("190.25"),
        "order_type": OrderType.LIMIT,
        "limit_price": Decimal("190"),
        "stop_price": None,
        "trail_percent": None,
        "time_in_force": TimeInForce.GTC,
        "take_profit": ExitTarget(percent=Decimal("2")),
        "stop_loss": ExitTarget(price=Decimal("180"), order_type=OrderType.STOP),
        "sentiment": Sentiment.FLAT,
        "position_size": Decimal("0"),
        "alert_id": "a-1",
        "alert_time": "2026-01-02T15:30:00Z",
        "idempotency_key": "AAPL-bar-1",
        "passphrase": "secret words",
        "dialect": "TradersPost",
    }


def test_of_builds_the_intent_the_dataclass_builds():
    built = AlertIntent.of(_values())
    assert built == AlertIntent(**_values())
    assert built.to_record() == AlertIntent(**_values()).to_record()
    assert built.idempotency_key == "AAPL-bar-1"


def test_an_intent_built_by_of_is_still_frozen():
    built = AlertIntent.of(_values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.ticker = "MSFT"  # type: ignore[misc]


def test_of_refuses_a_missing_or_unknown_field_by_name():
    values = _values()
    del values["price"]
    values["prise"] = Decimal(1)
    with pytest.raises(TypeError, match=r"missing \['price'\], unknown \['prise'\]"):
        AlertIntent.of(values)
