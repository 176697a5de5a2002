"""Time as a dependency: components take a `Clock` and never call `datetime.now()` themselves."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of wall-clock time (tz-aware UTC) and monotonic seconds."""

    def now(self) -> datetime:
        """Return the current time, tz-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin that never go backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return `time.monotonic()`."""
        return time.monotonic()


class FrozenClock:
    """A clock that only moves when told to; for tests and simulated time."""

    def __init__(self, start: datetime) -> None:
        """Start at `start`, which must be tz-aware."""
        if start.tzinfo is None:
            msg = "FrozenClock needs a tz-aware start time"
            raise ValueError(msg)
        self._now = start.astimezone(UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        """Return the frozen time."""
        return self._now

    def monotonic(self) -> float:
        """Return seconds advanced since creation."""
        return self._mono

    def advance(self, seconds: float) -> datetime:
        """Move time forward by `seconds` (never backwards) and return the new time."""
        if seconds < 0:
            msg = "a clock never goes backwards"
            raise ValueError(msg)
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when`, which must not be earlier than now."""
        self.advance((when - self._now).total_seconds())
