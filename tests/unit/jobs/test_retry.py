"""Retry policy and the `retrying` decorator / `retry_call` helpers, with an injected sleep."""

from __future__ import annotations

import pytest

from pinelab.brokers.exceptions import BrokerUnavailable, InvalidOrder, RateLimited
from pinelab.jobs.retry import (
    RetryAfter,
    RetryPolicy,
    retry_after_of,
    retry_call,
    retry_call_sync,
    retrying,
)

POLICY = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0)


class FakeSleep:
    """Records the delays asked for instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class AsyncFakeSleep(FakeSleep):
    async def __call__(self, seconds: float) -> None:  # type: ignore[override]
        self.delays.append(seconds)


class Flaky:
    """Fails with the given errors, one per call, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, value: str = "ok") -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return value


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
    assert isinstance(ThrottledByVendor(1), RetryAfter)
    assert retry_after_of(BrokerUnavailable("down")) is None
    assert retry_after_of(ValueError("no hint")) is None


def test_sync_call_is_retried_until_it_succeeds() -> None:
    sleep = FakeSleep()
    flaky = Flaky(BrokerUnavailable("a"), BrokerUnavailable("b"))
    assert retry_call_sync(flaky, "done", policy=POLICY, sleep=sleep) == "done"
    assert flaky.calls == 3
    assert len(sleep.delays) == 2


def test_sync_call_gives_up_after_max_attempts_with_the_last_error() -> None:
    sleep = FakeSleep()
    flaky = Flaky(*(BrokerUnavailable(str(n)) for n in range(10)))
    with pytest.raises(BrokerUnavailable, match="3"):
        retry_call_sync(flaky, policy=POLICY, sleep=sleep)
    assert flaky.calls == 4
    assert len(sleep.delays) == 3


def test_errors_outside_retry_on_are_raised_at_once() -> None:
    sleep = FakeSleep()
    flaky = Flaky(InvalidOrder("bad quantity"))
    with pytest.raises(InvalidOrder):
        retry_call_sync(flaky, policy=POLICY, sleep=sleep)
    assert flaky.calls == 1
    assert sleep.delays == []


async def test_async_call_honours_retry_after() -> None:
    sleep = AsyncFakeSleep()
    calls = 0

    async def submit(quantity: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RateLimited("429", retry_after=6)
        return quantity

    assert await retry_call(submit, 3, policy=POLICY, sleep=sleep) == 3
    assert calls == 2
    assert sleep.delays[0] >= 6


async def test_decorated_async_function_is_retried_on_the_given_errors() -> None:
    sleep = AsyncFakeSleep()
    attempts: list[int] = []

    @retrying(POLICY, retry_on=(ConnectionError,), sleep=sleep)
    async def deliver(payload: str) -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise ConnectionError("reset")
        return payload.upper()

    assert await deliver("hook") == "HOOK"
    assert attempts == [1, 2, 3]
    assert len(sleep.delays) == 2
    assert deliver.__name__ == "deliver"


def test_decorated_sync_function_honours_a_foreign_retry_after() -> None:
    sleep = FakeSleep()
    flaky = Flaky(ThrottledByVendor(4))

    @retrying(POLICY, retry_on=(ThrottledByVendor,), sleep=sleep)
    def send() -> str:
        return flaky()

    assert send() == "ok"
    assert sleep.delays[0] >= 4


async def test_decorated_async_function_gives_up_after_max_attempts() -> None:
    sleep = AsyncFakeSleep()
    policy = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1)

    @retrying(policy, sleep=sleep)
    async def always_down() -> None:
        raise BrokerUnavailable("503")

    with pytest.raises(BrokerUnavailable):
        await always_down()
    assert len(sleep.delays) == 1
    assert 0 <= sleep.delays[0] <= 0.5
