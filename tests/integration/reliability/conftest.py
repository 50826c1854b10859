"""Settings for the reliability proofs: fast retries, a patient attempt budget, no rate limit."""

from __future__ import annotations

import pytest

from pinelab.config import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Retry within tenths of a second, for up to 50 attempts, 16 at once; take every alert."""
    settings.retry_base_delay_seconds = 0.05
    settings.retry_max_delay_seconds = 0.4
    settings.max_retry_attempts = 50
    settings.webhook_rate_per_minute = 0
    settings.worker_concurrency = 16
    return settings
