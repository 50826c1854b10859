"""The seeded user, paper account and strategy the trading tests trade with."""

from __future__ import annotations

import pytest

from pinelab.main import Services
from tests.factories import Seeded, seed_strategy


@pytest.fixture
async def seeded(context: Services) -> Seeded:
    """A user with a paper account and a strategy bound to it."""
    return await seed_strategy(context.db)
