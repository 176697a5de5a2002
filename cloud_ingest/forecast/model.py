"""Device forecasts from recent samples: a bin's time to full, a battery's days left.

Pure: samples and the time `now` in, a `Forecast` out; no clock, no I/O.

**Fit.** Both forecasts fit a Theil-Sen line (the median of the slopes between every pair of
samples; the intercept the median of `value - slope * t`): a third of the samples can be
outliers — a bag dropped in front of the sensor, a radio burst sagging the voltage — without
moving it. At most `MAX_FIT_POINTS` samples are fitted (evenly thinned, the newest kept), so
the pairwise slopes stay a few thousand.

**Resets.** A bin is emptied and a battery replaced: the trend starts again. The samples from
the last fall (bin) or rise (battery) larger than `reset` on are the ones fitted, the fall
judged between the medians of a few samples on each side (a single wild sample is not one);
the samples before it say nothing about the new trend.

**Answer.** The fitted level at `now`, the slope, and the time the line reaches the target
(100 % for a bin, `BATTERY_PCT_EMPTY` or `BATTERY_V_EMPTY` for a battery), or `None` with the
`status` saying why: `too_few_samples` (fewer than `min_samples`, or spanning less than
`min_span`), `not_rising` / `not_falling` (the trend is flat or goes the other way), or
`reached` (already at the target: 0 left). `confidence` is `high`, `medium` or `low` from the
number of samples, the time they span and how far they scatter around the line compared with
the change the line makes over that span; `note` says the same in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from statistics import median, median_high, median_low
from typing import Final

from core.metrics import Metric

MAX_FIT_POINTS: Final = 120
"""At most this many samples are fitted (Theil-Sen is quadratic in their number)."""
FULL_PCT: Final = 100.0
"""A bin is full at this fill level."""
EMPTIED_DROP_PCT: Final = 20.0
"""A fall of the fill level larger than this between two samples is the bin being emptied."""
BIN_LOOKBACK: Final = timedelta(hours=12)
"""The hours of fill samples a bin's forecast reads."""
BIN_MIN_SPAN: Final = timedelta(minutes=30)
"""A bin's samples must span at least this long to be fitted."""
MIN_RISE_PCT_PER_H: Final = 0.05
"""A fill level rising slower than this (half a point in 10 h) is not rising."""
BATTERY_PCT_EMPTY: Final = 10.0
"""A battery reporting percent is spent at this level (the rule pack's forecast target)."""
BATTERY_V_EMPTY: Final = 3.1
"""A battery reporting volts is spent at this voltage (the rule pack's low-voltage bound)."""
REPLACED_RISE: Final = {Metric.BATTERY_PCT: 20.0, Metric.BATTERY_V: 0.3}
"""A rise larger than this between two samples is a replaced (or recharged) battery."""
BATTERY_LOOKBACK: Final = timedelta(days=30)
"""The days of battery samples a battery's forecast reads."""
BATTERY_MIN_SPAN: Final = timedelta(days=3)
"""A battery's samples must span at least this long to be fitted."""
MIN_FALL_PER_DAY: Final = {Metric.BATTERY_PCT: 0.05, Metric.BATTERY_V: 0.0005}
"""A battery falling slower than this per day is not falling."""
MIN_SAMPLES: Final = 4
"""Fewer samples than this forecast nothing."""
RESET_RUN: Final = 3
"""Samples on each side whose medians tell an emptying or a replacement from a wild sample."""
_HOUR: Final = 3600.0
_DAY: Final = 86400.0


class Status(StrEnum):
    """What became of a forecast."""

    OK = "ok"
    REACHED = "reached"
    TOO_FEW_SAMPLES = "too_few_samples"
    NOT_RISING = "not_rising"
    NOT_FALLING = "not_falling"


class Confidence(StrEnum):
    """How far to trust a forecast's time."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a metric at a time (seconds since the epoch)."""

    t: float
    value: float


@dataclass(frozen=True, slots=True)
class Forecast:
    """When a trend reaches its target, and how well the samples support it."""

    metric: Metric
    status: Status
    target: float
    eta: datetime | None
    """When the fitted line reaches `target` (`now` if already there); `None` if it does not."""
    hours_left: float | None
    """Hours from `now` to `eta`."""
    level: float | None
    """The fitted value at `now`."""
    slope_per_hour: float | None
    samples_used: int
    since: datetime | None
    """The time of the first sample fitted (after the last reset)."""
    confidence: Confidence
    note: str

    @property
    def days_left(self) -> float | None:
        """`hours_left` in days."""
        return None if self.hours_left is None else self.hours_left / 24.0


@dataclass(frozen=True, slots=True)
class Fit:
    """A Theil-Sen line `value = slope * t + intercept` and the scatter of samples around it."""

    slope: float
    intercept: float
    scatter: float
    """The median absolute distance of the samples from the line."""

    def at(self, t: float) -> float:
        """The line's value at `t`."""
        return self.slope * t + self.intercept


def theil_sen(samples: Sequence[Sample]) -> Fit | None:
    """The Theil-Sen line through `samples` (time-ordered); `None` if they share one time."""
    slopes = [
        (b.value - a.value) / (b.t - a.t)
        for i, a in enumerate(samples)
        for b in samples[i + 1 :]
        if b.t > a.t
    ]
    if not slopes:
        return None
    slope = median(slopes)
    intercept = median(s.value - slope * s.t for s in samples)
    scatter = median(abs(s.value - (slope * s.t + intercept)) for s in samples)
    return Fit(slope, intercept, scatter)


def thinned(samples: Sequence[Sample], most: int = MAX_FIT_POINTS) -> list[Sample]:
    """At most `most` of `samples`, evenly spaced by index, the newest always kept."""
    if len(samples) <= most:
        return list(samples)
    step = (len(samples) - 1) / (most - 1)
    return [samples[round(i * step)] for i in range(most)]


def after_last_reset(samples: Sequence[Sample], reset: float, *, rising: bool) -> list[Sample]:
    """The samples from the last jump against the trend larger than `reset` on.

    For a rising trend (a bin) that is a fall (emptied); for a falling one (a battery) a rise
    (replaced). The jump is judged between the medians of the `RESET_RUN` samples before and
    after it, so a single wild sample (a bag in front of the sensor) and its return are not one;
    the cut is then made at the largest single step there.
    """
    values = [s.value for s in samples]
    against = 1.0 if rising else -1.0
    # of an even number of samples near the ends, the one that makes the jump smaller
    low, high = (median_low, median_high) if rising else (median_high, median_low)
    for i in range(len(values) - 1, 0, -1):
        before = low(values[max(0, i - RESET_RUN) : i])
        after = high(values[i : i + RESET_RUN])
        if against * (before - after) > reset:
            near = range(max(1, i - RESET_RUN + 1), min(len(values), i + RESET_RUN))
            cut = max(near, key=lambda k: against * (values[k - 1] - values[k]))
            return list(samples[cut:])
    return list(samples)


def time_to_full(
    samples: Sequence[Sample],
    now: datetime,
    *,
    target: float = FULL_PCT,
    lookback: timedelta = BIN_LOOKBACK,
    emptied_drop: float = EMPTIED_DROP_PCT,
) -> Forecast:
    """When a bin's fill level (`fill_pct` samples) reaches `target`, from the last `lookback`."""
    return _forecast(
        _Trend(Metric.FILL_PCT, target, rising=True, reset=emptied_drop, min_span=BIN_MIN_SPAN),
        samples,
        now,
        lookback,
        min_slope_per_h=MIN_RISE_PCT_PER_H,
    )


def battery_days_left(
    samples: Sequence[Sample],
    now: datetime,
    *,
    metric: Metric = Metric.BATTERY_PCT,
    threshold: float | None = None,
    lookback: timedelta = BATTERY_LOOKBACK,
) -> Forecast:
    """When a battery (`battery_pct` or `battery_v` samples) falls to `threshold`.

    `threshold` defaults to `BATTERY_PCT_EMPTY` or `BATTERY_V_EMPTY`; `Forecast.days_left` is
    the answer in days.
    """
    if metric not in REPLACED_RISE:
        raise ValueError(f"not a battery metric: {metric.value!r}")
    if threshold is None:
        threshold = BATTERY_PCT_EMPTY if metric is Metric.BATTERY_PCT else BATTERY_V_EMPTY
    trend = _Trend(
        metric, threshold, rising=False, reset=REPLACED_RISE[metric], min_span=BATTERY_MIN_SPAN
    )
    return _forecast(trend, samples, now, lookback, min_slope_per_h=MIN_FALL_PER_DAY[metric] / 24)


@dataclass(frozen=True, slots=True)
class _Trend:
    metric: Metric
    target: float
    rising: bool
    reset: float
    min_span: timedelta


def _forecast(
    trend: _Trend,
    samples: Sequence[Sample],
    now: datetime,
    lookback: timedelta,
    *,
    min_slope_per_h: float,
) -> Forecast:
    now_s = now.timestamp()
    start = now_s - lookback.total_seconds()
    recent = sorted(
        (s for s in samples if start <= s.t <= now_s and math.isfinite(s.value)),
        key=lambda s: s.t,
    )
    used = thinned(after_last_reset(recent, trend.reset, rising=trend.rising))
    span_s = used[-1].t - used[0].t if used else 0.0

    def nothing(status: Status, note: str, fit: Fit | None = None) -> Forecast:
        return Forecast(
            metric=trend.metric,
            status=status,
            target=trend.target,
            eta=None,
            hours_left=None,
            level=None if fit is None else fit.at(now_s),
            slope_per_hour=None if fit is None else fit.slope * _HOUR,
            samples_used=len(used),
            since=_time(used[0].t) if used else None,
            confidence=Confidence.NONE,
            note=note,
        )

    if len(used) < MIN_SAMPLES or span_s < trend.min_span.total_seconds():
        reset = " since the last reset" if len(used) < len(recent) else ""
        return nothing(
            Status.TOO_FEW_SAMPLES,
            f"{len(used)} samples over {_duration(span_s)}{reset}; at least {MIN_SAMPLES} "
            f"over {_duration(trend.min_span.total_seconds())} are needed",
        )
    fit = theil_sen(used)
    if fit is None:
        return nothing(Status.TOO_FEW_SAMPLES, "the samples share one time")
    toward = fit.slope if trend.rising else -fit.slope
    level = fit.at(now_s)
    reached = level >= trend.target if trend.rising else level <= trend.target
    if reached:
        hours = 0.0
        status = Status.REACHED
    elif toward * _HOUR < min_slope_per_h:
        flat = Status.NOT_RISING if trend.rising else Status.NOT_FALLING
        return nothing(flat, f"the trend is {_per_hour(fit.slope * _HOUR)}: {flat.value}", fit)
    else:
        hours = (trend.target - level) / fit.slope / _HOUR
        status = Status.OK
    confidence, note = _judge(trend, used, fit, span_s, now_s)
    return Forecast(
        metric=trend.metric,
        status=status,
        target=trend.target,
        eta=now + timedelta(hours=hours),
        hours_left=hours,
        level=level,
        slope_per_hour=fit.slope * _HOUR,
        samples_used=len(used),
        since=_time(used[0].t),
        confidence=confidence,
        note=note,
    )


def _judge(
    trend: _Trend, used: Sequence[Sample], fit: Fit, span_s: float, now_s: float
) -> tuple[Confidence, str]:
    """How far to trust the line: samples, span, scatter against the change, the last sample's age."""
    change = abs(fit.slope) * span_s
    noise = fit.scatter / change if change > 0 else math.inf
    age_s = now_s - used[-1].t
    stale = age_s > max(span_s / 4, trend.min_span.total_seconds())
    minimum = trend.min_span.total_seconds()
    if len(used) >= 3 * MIN_SAMPLES and span_s >= 4 * minimum and noise < 0.1 and not stale:  # noqa: PLR2004
        confidence = Confidence.HIGH
    elif len(used) >= 2 * MIN_SAMPLES and span_s >= 2 * minimum and noise < 0.3 and not stale:  # noqa: PLR2004
        confidence = Confidence.MEDIUM
    else:
        confidence = Confidence.LOW
    note = (
        f"{len(used)} samples over {_duration(span_s)}, {_per_hour(fit.slope * _HOUR)}, "
        f"scatter {fit.scatter:.3g} ({noise:.0%} of the change)"
    )
    if stale:
        note += f"; the last sample is {_duration(age_s)} old"
    return confidence, note


def _time(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _duration(seconds: float) -> str:
    if seconds >= 2 * _DAY:
        return f"{seconds / _DAY:.1f} d"
    if seconds >= _HOUR:
        return f"{seconds / _HOUR:.1f} h"
    return f"{seconds / 60:.0f} min"


def _per_hour(slope: float) -> str:
    if abs(slope) * 24 < 1:
        return f"{slope * 24:+.3g}/day"
    return f"{slope:+.3g}/h"
