"""Retry policy: capped exponential backoff with full jitter, honouring Retry-After."""

from __future__ import annotations

from pinelab.brokers.exceptions import BrokerUnavailable, RateLimited
from pinelab.errors import RetryableError
from pinelab.jobs.retry import RetryPolicy, retry_after_of

POLICY = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0)


class ThrottledByVendor(Exception):
    """A foreign error that carries a Retry-After, like an HTTP client's."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("slow down")
        self.retry_after = retry_after


def test_backoff_ceiling_doubles_per_attempt_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=8.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(attempt) for _ in range(300)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range
        assert min(delays) < ceiling * 0.2


def test_retry_after_is_a_floor_capped_by_the_max_delay() -> None:
    assert all(POLICY.delay(1, retry_after=5) >= 5 for _ in range(50))
    assert all(POLICY.delay(1, retry_after=3600) == 8.0 for _ in range(50))


def test_retry_after_is_read_from_any_exception_that_carries_it() -> None:
    assert retry_after_of(RateLimited("429", retry_after=7)) == 7.0
    assert retry_after_of(ThrottledByVendor(2.5)) == 2.5
    assert retry_after_of(BrokerUnavailable("down")) is None
    assert retry_after_of(RetryableError("no hint")) is None
    assert retry_after_of(ValueError("no hint")) is None


def test_delay_after_an_error_honours_its_retry_after() -> None:
    assert all(POLICY.delay_after(1, RateLimited("429", retry_after=6)) >= 6 for _ in range(50))
    assert all(POLICY.delay_after(1, BrokerUnavailable("down")) <= 1 for _ in range(50))
