"""The one clock: every piece of PineLab asks it for the time, so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The system clock, in UTC."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        return datetime.now(UTC)


class FrozenClock(Clock):
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 2, 15, 30, tzinfo=UTC)

    def now(self) -> datetime:
        """Return the frozen time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._now += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        """Put the clock at a given time."""
        self._now = when


_clock: Clock = Clock()


def now() -> datetime:
    """Return the current time from the installed clock."""
    return _clock.now()


def install(clock: Clock) -> Clock:
    """Install a clock (tests) and return the one it replaces."""
    global _clock
    previous, _clock = _clock, clock
    return previous
