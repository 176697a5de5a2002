"""`ScaledClock`, the simulated clock shared by `edge-agent run --clock` and `propsim run --origin`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.clock import (
    MIN_WALL_INTERVAL_S,
    FrozenClock,
    ScaledClock,
    SystemClock,
    clock_spec,
    parse_clock_spec,
    wall_interval,
)

START = datetime(2026, 1, 5, 6, 0, tzinfo=timezone(timedelta(hours=8)))
ORIGIN = 1_765_000_000.0


class FakeTime:
    """Stands in for `time.time` and `time.monotonic`, which move together."""

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.mono = 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime(ORIGIN - 2.0)
    monkeypatch.setattr(time, "time", fake.time)
    monkeypatch.setattr(time, "monotonic", fake.monotonic)
    return fake


def test_the_scaled_clock_reads_start_at_origin_and_runs_speed_times_faster(
    fake_time: FakeTime,
) -> None:
    clock = ScaledClock(START, 180, ORIGIN)
    assert clock.now() == START  # 2 s before the origin: simulated time has not begun
    assert clock.monotonic() == 0.0
    fake_time.sleep(2.0)
    assert clock.now() == START
    assert clock.now().tzinfo is UTC
    fake_time.sleep(0.5)
    assert clock.now() == START + timedelta(seconds=90)
    assert clock.monotonic() == pytest.approx(2.5 * 180)


def test_clocks_built_apart_with_the_same_spec_agree(fake_time: FakeTime) -> None:
    first = ScaledClock(START, 60, ORIGIN)
    fake_time.sleep(7.25)
    second = parse_clock_spec(first.spec)
    assert second.now() == first.now() == START + timedelta(seconds=(7.25 - 2.0) * 60)
    # Each monotonic clock starts where it was built, but both advance at the same rate.
    before = (first.monotonic(), second.monotonic())
    fake_time.sleep(1.0)
    assert (first.monotonic() - before[0], second.monotonic() - before[1]) == (60.0, 60.0)


def test_the_real_wall_clock_drives_it() -> None:
    origin = time.time()
    clock = ScaledClock(START, 1000, origin)
    a = clock.now()
    time.sleep(0.05)
    b = clock.now()
    assert timedelta(seconds=40) <= b - a <= timedelta(seconds=5000)
    assert START <= a <= START + timedelta(seconds=1000)


def test_a_spec_round_trips_and_keeps_the_given_offset() -> None:
    spec = clock_spec(START, ORIGIN, 180)
    assert spec == "2026-01-05T06:00:00+08:00@1765000000.0x180.0"
    clock = parse_clock_spec(spec)
    assert (clock.start, clock.origin, clock.speed) == (START, ORIGIN, 180.0)
    assert clock.start.utcoffset() == timedelta(hours=8)
    assert clock.spec == spec
    odd = clock_spec(START, 1765000000.123456, 2.5)
    parsed = parse_clock_spec(odd)
    assert (parsed.origin, parsed.speed) == (1765000000.123456, 2.5)


@pytest.mark.parametrize(
    ("spec", "start", "origin", "speed"),
    [
        ("2026-01-05T06:00:00+08:00@1765000000.0x180", START, ORIGIN, 180.0),
        ("2026-01-04T22:00:00Z@1765000000X0.5", START, ORIGIN, 0.5),
        (" 2026-01-04T22:00:00+00:00@1765000000x1 ", START, ORIGIN, 1.0),
        ("2026-01-04T22:00:00+00:00@1.765e9x60", START, 1.765e9, 60.0),
    ],
)
def test_specs_that_parse(spec: str, start: datetime, origin: float, speed: float) -> None:
    clock = parse_clock_spec(spec)
    assert (clock.start, clock.origin, clock.speed) == (start, origin, speed)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "is not START@ORIGINxSPEED"),
        ("2026-01-05T06:00:00+08:00", "is not START@ORIGINxSPEED"),
        ("2026-01-05T06:00:00+08:00@1765000000", "is not START@ORIGINxSPEED"),
        ("@1765000000x2", "is not START@ORIGINxSPEED"),
        ("2026-01-05T06:00:00+08:00@x2", "is not START@ORIGINxSPEED"),
        ("2026-01-05T06:00:00+08:00@1765000000x", "is not START@ORIGINxSPEED"),
        ("yesterday@1765000000x2", "START 'yesterday' is not an ISO 8601 time"),
        ("2026-01-05T06:00:00@1765000000x2", "needs a UTC offset"),
        ("2026-01-05T06:00:00Z@soonx2", "ORIGIN 'soon' is not a Unix time"),
        ("2026-01-05T06:00:00Z@nanx2", "ORIGIN 'nan' is not a Unix time"),
        ("2026-01-05T06:00:00Z@1765000000xfast", "SPEED 'fast' is not a positive number"),
        ("2026-01-05T06:00:00Z@1765000000xinf", "SPEED 'inf' is not a positive number"),
        ("2026-01-05T06:00:00Z@1765000000x0", "SPEED must be positive"),
        ("2026-01-05T06:00:00Z@1765000000x-3", "SPEED must be positive"),
    ],
)
def test_bad_specs_are_refused_with_a_readable_reason(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match="clock spec") as err:
        parse_clock_spec(spec)
    assert message in str(err.value)


def test_the_scaled_clock_refuses_what_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        ScaledClock(datetime(2026, 1, 5), 2, ORIGIN)  # noqa: DTZ001
    for speed in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="speed must be a positive number"):
            ScaledClock(START, speed, ORIGIN)
    with pytest.raises(ValueError, match="origin"):
        ScaledClock(START, 2, float("nan"))
    with pytest.raises(ValueError, match="speed"):
        clock_spec(START, ORIGIN, 0)


def test_periodic_work_runs_every_clock_second_but_not_too_often() -> None:
    assert wall_interval(SystemClock(), 1.0) == 1.0
    assert wall_interval(SystemClock(), 0.001) == 0.001  # the real clock is never changed
    assert wall_interval(FrozenClock(START), 60.0) == 60.0
    assert wall_interval(ScaledClock(START, 10, ORIGIN), 1.0) == pytest.approx(0.1)
    assert wall_interval(ScaledClock(START, 0.5, ORIGIN), 1.0) == 2.0
    # At 180x one simulated second is 5.6 ms: ticks are held to 20 ms (3.6 simulated s).
    assert wall_interval(ScaledClock(START, 180, ORIGIN), 1.0) == MIN_WALL_INTERVAL_S == 0.02
    assert wall_interval(ScaledClock(START, 180, ORIGIN), 60.0) == pytest.approx(60 / 180)
