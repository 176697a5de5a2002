"""Sample windows per (device, metric) and the analytics rules run over them (numpy).

A `SampleWindow` keeps samples in time order in two preallocated arrays; when full it drops what is
older than its horizon (or the oldest half) in one move, so appending costs no allocation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt

DEFAULT_CAPACITY: Final = 512
"""Samples kept per window; enough for 24 h of 3-minute readings."""

MAD_TO_SIGMA: Final = 1.4826
"""Scales a median absolute deviation to a standard deviation for normal data."""

_MAX_FIT_POINTS: Final = 48
"""Forecasts fit the most recent points only; Theil-Sen is quadratic in the number of points."""

FloatArray = npt.NDArray[np.float64]


class SampleWindow:
    """Time-ordered samples of one metric of one device, covering at least `horizon_s` seconds."""

    __slots__ = ("_ts", "_values", "horizon_s", "size")

    def __init__(self, horizon_s: float, capacity: int = DEFAULT_CAPACITY) -> None:
        self.horizon_s = horizon_s
        self._ts: FloatArray = np.empty(capacity, dtype=np.float64)
        self._values: FloatArray = np.empty(capacity, dtype=np.float64)
        self.size = 0

    def append(self, ts: float, value: float) -> bool:
        """Add a sample; return `False` (and keep nothing) if it is older than the newest one."""
        n = self.size
        if n and ts < self._ts[n - 1]:
            return False
        if n == len(self._ts):
            n = self._compact(ts)
        self._ts[n] = ts
        self._values[n] = value
        self.size = n + 1
        return True

    def _compact(self, now: float) -> int:
        n = self.size
        keep_from = int(np.searchsorted(self._ts[:n], now - self.horizon_s, side="left"))
        keep_from = max(keep_from, n // 2)
        kept = n - keep_from
        self._ts[:kept] = self._ts[keep_from:n]
        self._values[:kept] = self._values[keep_from:n]
        return kept

    def span(self, since: float) -> tuple[FloatArray, FloatArray]:
        """Return views of the timestamps and values at or after `since`."""
        n = self.size
        start = int(np.searchsorted(self._ts[:n], since, side="left"))
        return self._ts[start:n], self._values[start:n]

    def dump(self) -> tuple[list[float], list[float]]:
        """Return the samples as plain lists (for snapshots)."""
        n = self.size
        return self._ts[:n].tolist(), self._values[:n].tolist()


def _rate(ts: FloatArray, values: FloatArray) -> float | None:
    if len(values) < 2 or ts[-1] <= ts[0]:  # noqa: PLR2004
        return None
    return float((values[-1] - values[0]) / (ts[-1] - ts[0]) * 60.0)


_SIMPLE: Final[dict[str, Callable[[FloatArray, FloatArray], float | None]]] = {
    "mean": lambda _ts, v: float(v.mean()),
    "min": lambda _ts, v: float(v.min()),
    "max": lambda _ts, v: float(v.max()),
    "count_true": lambda _ts, v: float(np.count_nonzero(v)),
    "rate": _rate,
    "mad_score": lambda _ts, v: mad_score(v),
}


def aggregate(
    agg: str,
    ts: FloatArray,
    values: FloatArray,
    *,
    target: float | None = None,
    reset_drop: float | None = None,
    min_samples: int = 2,
) -> float | None:
    """Compute a window aggregate; `None` when the samples do not support an answer.

    - `mean`, `min`, `max`: of the values; `count_true`: number of non-zero samples;
    - `rate`: change per minute between the first and the last sample;
    - `forecast_hours`: hours until a robust linear fit reaches `target` (0 if already there, inf if
      it never will). With `reset_drop`, only the samples after the last fall larger than it are
      fitted, and fewer than `min_samples` of them forecast nothing (inf);
    - `mad_score`: how many robust standard deviations the last value lies from the median of the
      ones before it.
    """
    if len(values) == 0:
        return None
    if agg == "forecast_hours":
        if target is None:
            return None
        if reset_drop is not None:
            drops = np.flatnonzero(np.diff(values) < -reset_drop)
            if drops.size:
                ts, values = ts[drops[-1] + 1 :], values[drops[-1] + 1 :]
                if len(values) < max(2, min_samples):
                    return math.inf
        return hours_until(ts, values, target)
    try:
        return _SIMPLE[agg](ts, values)
    except KeyError:
        raise ValueError(f"unknown aggregate {agg!r}") from None


def theil_sen(ts: FloatArray, values: FloatArray) -> tuple[float, float] | None:
    """Return `(slope, intercept)` of the Theil-Sen fit (median of pairwise slopes), or `None`."""
    ts = ts[-_MAX_FIT_POINTS:]
    values = values[-_MAX_FIT_POINTS:]
    i, j = np.triu_indices(len(ts), k=1)
    dt = ts[j] - ts[i]
    usable = dt > 0
    if not usable.any():
        return None
    slope = float(np.median((values[j] - values[i])[usable] / dt[usable]))
    intercept = float(np.median(values - slope * ts))
    return slope, intercept


def hours_until(ts: FloatArray, values: FloatArray, target: float) -> float | None:
    """Hours from the last sample until the robust trend reaches `target` (rising or falling)."""
    if len(ts) < 2:  # noqa: PLR2004
        return None
    fit = theil_sen(ts, values)
    if fit is None:
        return None
    slope, intercept = fit
    level = slope * ts[-1] + intercept
    rising = target >= values[0]
    if (rising and level >= target) or (not rising and level <= target):
        return 0.0
    if slope == 0 or (slope > 0) != rising:
        return math.inf
    return float(max(0.0, (target - level) / slope / 3600.0))


def mad_score(values: FloatArray) -> float | None:
    """Robust z-score of the last value against the median and MAD of the earlier ones."""
    if len(values) < 3:  # noqa: PLR2004
        return None
    history = values[:-1]
    last = float(values[-1])
    median = float(np.median(history))
    deviation = np.abs(history - median)
    scale = MAD_TO_SIGMA * float(np.median(deviation))
    if scale == 0:
        scale = 1.2533 * float(deviation.mean())  # mean absolute deviation of a normal sample
    if scale == 0:
        return 0.0 if last == median else math.inf
    return abs(last - median) / scale
