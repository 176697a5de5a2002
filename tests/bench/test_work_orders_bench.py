"""`bench/work_orders.py` at a tiny size: every figure is there, positive, and the ratios add up."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench import work_orders

RATES = (
    "alarm_changes_per_s",
    "alarm_baseline_per_change_per_s",
    "actions_per_s",
    "actions_server_cpu_ms",
    "actions_per_server_cpu_s",
    "baseline_healthz_per_s",
    "baseline_healthz_server_cpu_ms",
    "stream_p50_ms",
    "stream_p99_ms",
    "stream_baseline_one_console_p99_ms",
)
RATIOS = {
    "alarm_ratio_per_change": ("alarm_changes_per_s", "alarm_baseline_per_change_per_s"),
    "actions_ratio_healthz": ("actions_per_s", "baseline_healthz_per_s"),
    "actions_cpu_ratio_healthz": ("baseline_healthz_server_cpu_ms", "actions_server_cpu_ms"),
    "stream_ratio_one_console": ("stream_p99_ms", "stream_baseline_one_console_p99_ms"),
}
OTHERS = ("alarm_duplicate_share", "stream_consoles", "stream_missing")


def test_tiny_run_reports_every_figure() -> None:
    figures = work_orders.run(0.6, consoles=3)

    assert set(figures) == set(RATES) | set(RATIOS) | set(OTHERS)
    for name in RATES:
        assert figures[name] > 0, name
    for name, (ours, baseline) in RATIOS.items():
        assert math.isclose(figures[name], figures[ours] / figures[baseline]), name
    assert 0.2 < figures["alarm_duplicate_share"] < 1  # every second batch is redelivered
    assert figures["stream_consoles"] == 3
    assert figures["stream_missing"] == 0


def test_every_second_batch_redelivers_the_one_before() -> None:
    batches = work_orders.alarm_batches(4)

    assert [len(b) for b in batches] == [work_orders.BATCH] * 4
    assert batches[1] == batches[0]
    assert batches[3] == batches[2]
    assert batches[2] != batches[0]
    assert any(c.stale for c in batches[2])
