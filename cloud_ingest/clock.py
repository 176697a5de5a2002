"""Wall-clock time as a dependency of the cloud: services take a `Clock`, never `datetime.now()`.

`SystemClock` is the real one; `ManualClock` only moves when a test tells it to. Every time a
clock returns is tz-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> datetime:
        """Return the current time, tz-aware UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)


def _aware_utc(when: datetime, what: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        msg = f"{what} must be tz-aware (e.g. +08:00 or UTC): {when.isoformat()}"
        raise ValueError(msg)
    return when.astimezone(UTC)


class ManualClock:
    """A clock that stands still until `advance` or `set` moves it (for tests and simulations)."""

    def __init__(self, start: datetime) -> None:
        """Start at `start`, which must be tz-aware (it is kept as UTC)."""
        self._now = _aware_utc(start, "the start time")

    def now(self) -> datetime:
        """Return the time the clock was last set or advanced to, in UTC."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta` (not negative) and return the new time."""
        if delta < timedelta(0):
            msg = f"a clock never goes backwards (advance by {delta})"
            raise ValueError(msg)
        self._now += delta
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to `when` (tz-aware; may be earlier, e.g. to replay a case) and return it in UTC."""
        self._now = _aware_utc(when, "the time")
        return self._now
