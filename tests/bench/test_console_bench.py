"""`bench/console.py` at a tiny size: every figure is there, plausible, and the ratios add up."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench import console
from simulators.cloud_server import CHROMIUM

LATENCIES = ("alarm_browser", "alarm_event_source", "alarm_stream")
PAGES = ("overview", "overview_empty")
TIMINGS = ("ttfb", "fcp", "figure")
RATIOS = {
    "alarm_ratio_p50_stream": ("alarm_browser_p50_ms", "alarm_stream_p50_ms"),
    "alarm_ratio_p99_stream": ("alarm_browser_p99_ms", "alarm_stream_p99_ms"),
    "overview_ratio_fcp_empty": ("overview_fcp_ms", "overview_empty_fcp_ms"),
    "overview_ratio_figure_empty": ("overview_figure_ms", "overview_empty_figure_ms"),
}


def test_tiny_run_reports_every_figure() -> None:
    if shutil.which("mosquitto") is None or not Path(CHROMIUM).exists():
        pytest.fail("the console bench needs mosquitto and chromium: run `make system-deps`")

    figures = console.run(5, 50, 10, loads=1, interval_s=0.05)

    latencies = {f"{p}_{q}_ms" for p in LATENCIES for q in ("p50", "p99", "max")}
    timings = {f"{p}_{t}{m}_ms" for p in PAGES for t in TIMINGS for m in ("", "_max")}
    others = {
        "alarm_browser_share_p50_ms",
        "alarm_row_after_event_p50_ms",
        "background_readings_per_s",
        "overview_open_alarms",
        "overview_devices",
    }
    assert set(figures) == latencies | timings | others | set(RATIOS)
    for name in latencies | timings:
        assert figures[name] > 0, name
    for prefix in LATENCIES:
        assert figures[f"{prefix}_p50_ms"] <= figures[f"{prefix}_p99_ms"]
        assert figures[f"{prefix}_p99_ms"] <= figures[f"{prefix}_max_ms"]
    assert figures["background_readings_per_s"] > 0
    assert figures["overview_open_alarms"] == 10
    assert figures["overview_devices"] >= 50
    for name, (ours, baseline) in RATIOS.items():
        assert math.isclose(figures[name], figures[ours] / figures[baseline]), name


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]

    assert console.percentile(values, 0.5) == 50
    assert console.percentile(values, 0.99) == 99
    assert console.percentile([3.0], 0.99) == 3
