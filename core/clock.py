"""Time as a dependency: components take a `Clock` and never call `datetime.now()` themselves."""

from __future__ import annotations

import math
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


MIN_WALL_INTERVAL_S = 0.02
"""The shortest real interval a periodic task is scaled down to on a fast simulated clock."""


class ScaledClock:
    """Simulated time that runs `speed` times faster than the wall clock, for simulations and tests.

    At the Unix wall time `origin` (epoch seconds) the clock reads `start`; from then on
    `now() = start + (time.time() - origin) * speed`. Because the anchor is the shared wall clock,
    two processes built with the same `(start, speed, origin)` agree on the simulated time (to
    within how well their wall clocks agree). Before `origin` the clock stands still at `start`:
    simulated time begins at the origin, so a process started early does not count its own
    start-up as minutes of simulated silence.
    `monotonic()` is `time.monotonic()` scaled by `speed`, 0 at construction.
    """

    def __init__(self, start: datetime, speed: float, origin: float) -> None:
        """Read `start` (tz-aware) at wall time `origin` and advance `speed` times real time."""
        if start.tzinfo is None or start.utcoffset() is None:
            msg = f"the simulated start time needs a UTC offset, e.g. +08:00: {start.isoformat()}"
            raise ValueError(msg)
        if not math.isfinite(speed) or speed <= 0:
            msg = f"the clock speed must be a positive number, not {speed}"
            raise ValueError(msg)
        if not math.isfinite(origin):
            msg = f"the clock origin must be a Unix time in seconds, not {origin}"
            raise ValueError(msg)
        self.start = start
        """The simulated time at `origin`, with the offset it was given in."""
        self._start_utc = start.astimezone(UTC)
        self.speed = float(speed)
        self.origin = float(origin)
        self._mono_anchor = time.monotonic()

    def now(self) -> datetime:
        """Return the simulated time, tz-aware UTC."""
        elapsed = time.time() - self.origin
        return self._start_utc + timedelta(seconds=elapsed * self.speed if elapsed > 0 else 0.0)

    def monotonic(self) -> float:
        """Return simulated seconds since this clock was built (real monotonic time times speed)."""
        return (time.monotonic() - self._mono_anchor) * self.speed

    def wall_seconds(self, simulated_s: float) -> float:
        """How many real seconds `simulated_s` simulated seconds take."""
        return simulated_s / self.speed

    @property
    def spec(self) -> str:
        """This clock as a `--clock` spec (see `clock_spec`)."""
        return clock_spec(self.start, self.origin, self.speed)

    def __repr__(self) -> str:
        """The clock's spec, for logs."""
        return f"ScaledClock({self.spec!r})"


def wall_interval(clock: Clock, simulated_s: float) -> float:
    """The real seconds a periodic task sleeps so that it runs every `simulated_s` on `clock`.

    On a `ScaledClock` that is `simulated_s / speed`, but never less than `MIN_WALL_INTERVAL_S`;
    on any other clock it is `simulated_s` unchanged.
    """
    if isinstance(clock, ScaledClock):
        return max(clock.wall_seconds(simulated_s), MIN_WALL_INTERVAL_S)
    return simulated_s


CLOCK_SPEC_SYNTAX = "START@ORIGINxSPEED"
"""How a simulated clock is written on a command line.

START is an ISO 8601 time with a UTC offset (or `Z`): the simulated time at the wall time ORIGIN
(Unix epoch seconds, a decimal number); SPEED is simulated seconds per real second (> 0).
Example: `2026-01-05T06:00:00+08:00@1765000000.0x180` (06:00 in UTC+8 at that Unix time, 180x).
"""
CLOCK_SPEC_EXAMPLE = "2026-01-05T06:00:00+08:00@1765000000.0x180"


def clock_spec(start: datetime, origin: float, speed: float) -> str:
    """Format the spec `parse_clock_spec` reads: `START@ORIGINxSPEED`.

    Raises `ValueError` for the same values `ScaledClock` refuses.
    """
    clock = ScaledClock(start, speed, origin)  # validates
    return f"{start.isoformat()}@{clock.origin!r}x{clock.speed!r}"


def parse_clock_spec(text: str) -> ScaledClock:
    """Read a `START@ORIGINxSPEED` spec (see `CLOCK_SPEC_SYNTAX`) into a `ScaledClock`.

    Raises `ValueError` with a message naming the part that is wrong.
    """
    start_text, at, rest = text.strip().rpartition("@")
    origin_text, x, speed_text = rest.lower().rpartition("x")
    if not at or not x or not start_text or not origin_text or not speed_text:
        msg = f"clock spec {text!r} is not {CLOCK_SPEC_SYNTAX}, e.g. {CLOCK_SPEC_EXAMPLE}"
        raise ValueError(msg)
    try:
        start = datetime.fromisoformat(start_text)
    except ValueError:
        msg = f"clock spec {text!r}: START {start_text!r} is not an ISO 8601 time"
        raise ValueError(msg) from None
    if start.tzinfo is None:
        msg = f"clock spec {text!r}: START {start_text!r} needs a UTC offset, e.g. +08:00 or Z"
        raise ValueError(msg)
    origin = _number(text, "ORIGIN", origin_text, "a Unix time in seconds")
    speed = _number(text, "SPEED", speed_text, "a positive number")
    if speed <= 0:
        msg = f"clock spec {text!r}: SPEED must be positive, not {speed_text!r}"
        raise ValueError(msg)
    return ScaledClock(start, speed, origin)


def _number(text: str, name: str, part: str, what: str) -> float:
    try:
        value = float(part)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        msg = f"clock spec {text!r}: {name} {part!r} is not {what}"
        raise ValueError(msg)
    return value
