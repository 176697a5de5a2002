import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.windows import SampleWindow, aggregate, hours_until, mad_score, theil_sen


def arr(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def test_theil_sen_ignores_an_outlier_that_breaks_least_squares() -> None:
    ts = arr([0, 3600, 7200, 10800, 14400, 18000])
    values = arr([10, 20, 30, 95, 50, 60])  # a bag on the sensor at 3 h
    fit = theil_sen(ts, values)
    assert fit is not None
    assert math.isclose(fit[0] * 3600, 10.0)


def test_hours_until_full() -> None:
    ts = arr([0, 3600, 7200, 10800])
    assert math.isclose(hours_until(ts, arr([20, 30, 40, 50]), 100) or 0, 5.0)
    assert hours_until(ts, arr([50, 50, 50, 50]), 100) == math.inf
    assert hours_until(ts, arr([90, 95, 100, 105]), 100) == 0.0
    # falling towards a low target (battery)
    assert math.isclose(hours_until(ts, arr([40, 38, 36, 34]), 10) or 0, 12.0)


def test_forecast_restarts_after_an_emptying() -> None:
    ts = arr([0, 3600, 7200, 10800, 14400])
    values = arr([60, 70, 80, 90, 5])
    assert (
        aggregate("forecast_hours", ts, values, target=100, reset_drop=30, min_samples=3)
        == math.inf
    )
    assert aggregate("forecast_hours", ts, values, target=100) is not None


def test_mad_score_is_robust_and_handles_constant_history() -> None:
    history = [10.0, 11, 12, 10, 11, 12, 10, 11, 12]
    assert (mad_score(arr([*history, 11])) or 0) < 1
    assert (mad_score(arr([*history, 200])) or 0) > 50
    assert mad_score(arr([5, 5, 5, 5, 5])) == 0.0
    assert mad_score(arr([5, 5, 5, 5, 9])) == math.inf
    assert mad_score(arr([1, 2])) is None


def test_rate_and_simple_aggregates() -> None:
    ts = arr([0, 60, 120])
    values = arr([0, 5, 10])
    assert aggregate("rate", ts, values) == 5.0
    assert aggregate("mean", ts, values) == 5.0
    assert aggregate("count_true", ts, arr([1, 0, 1])) == 2.0
    assert aggregate("max", ts[:0], values[:0]) is None


def test_window_refuses_out_of_order_samples() -> None:
    window = SampleWindow(horizon_s=100, capacity=8)
    assert window.append(10, 1)
    assert not window.append(5, 2)
    assert window.dump() == ([10.0], [1.0])


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.floats(min_value=0, max_value=50), min_size=1, max_size=300),
    horizon=st.floats(min_value=1, max_value=500),
    capacity=st.integers(min_value=2, max_value=64),
)
def test_window_span_keeps_every_sample_within_the_horizon_that_fits(
    steps: list[float], horizon: float, capacity: int
) -> None:
    window = SampleWindow(horizon_s=horizon, capacity=capacity)
    t = 0.0
    samples = []
    for i, step in enumerate(steps):
        t += step
        window.append(t, float(i))
        samples.append((t, float(i)))
    ts, values = window.span(t - horizon)
    expected = [(s, v) for s, v in samples if s >= t - horizon]
    kept = list(zip(ts.tolist(), values.tolist(), strict=True))
    # the newest samples are always kept, in order; older ones only while capacity allows
    assert kept == expected[len(expected) - len(kept) :]
    assert len(kept) >= min(len(expected), capacity // 2)
