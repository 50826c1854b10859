"""The paper venue refuses what it cannot represent, whoever sends it (paper_rules)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from pinelab.brokers.base import OrderRequest, OrderSide, OrderType
from pinelab.brokers.exceptions import InvalidOrder
from pinelab.brokers.paper_rules import CAPABILITIES, validate_request

D = Decimal


def request(**fields: object) -> OrderRequest:
    values: dict[str, object] = {"client_order_id": "pl-1", "symbol": "AAPL", "side": OrderSide.BUY}
    return OrderRequest(**(values | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"quantity": D("0.123456789")}, "quantity 0.123456789 has more than 8 decimal places"),
        (
            {"quantity": D(1), "order_type": OrderType.LIMIT, "limit_price": D("1.000000001")},
            "limit_price 1.000000001 has more than 8 decimal places",
        ),
        ({"quantity": D("2e15")}, "quantity 2E+15 is beyond the largest value the venue takes"),
        (
            {"quantity": D("1e9"), "reference_price": D("1e7")},
            "the order's value is beyond the paper broker's range",
        ),
    ],
)
def test_a_value_beyond_the_venue_precision_or_range_is_an_invalid_order(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidOrder, match=re.escape(message)):
        validate_request(request(**fields))


def test_the_alert_price_is_market_data_held_at_any_precision() -> None:
    validate_request(request(quantity=D(1), reference_price=D("0.000012345")))


def test_the_declared_capabilities_say_the_same_limits() -> None:
    assert CAPABILITIES.value_problem(D("0.123456789"), CAPABILITIES.quantity_step) == (
        "has more than 8 decimal places"
    )
    assert CAPABILITIES.value_problem(D("0.12345678"), CAPABILITIES.quantity_step) is None
