"""`bench/ingest.py` at a tiny size: every figure is there, positive, and the ratios add up."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench import ingest

RATES = (
    "parse_only_per_s",
    "sqlite_readings_per_s",
    "sqlite_baseline_executemany_per_s",
    "sqlite_alarm_events_per_s",
    "postgres_readings_per_s",
    "postgres_baseline_copy_per_s",
    "postgres_alarm_events_per_s",
)
RATIOS = {
    "sqlite_ratio_executemany": ("sqlite_readings_per_s", "sqlite_baseline_executemany_per_s"),
    "postgres_ratio_copy": ("postgres_readings_per_s", "postgres_baseline_copy_per_s"),
    "sqlite_ratio_parse_only": ("sqlite_readings_per_s", "parse_only_per_s"),
    "postgres_ratio_parse_only": ("postgres_readings_per_s", "parse_only_per_s"),
}


def test_tiny_run_reports_every_figure() -> None:
    figures = ingest.run(0.7)

    assert set(figures) == set(RATES) | set(RATIOS)
    for name in RATES:
        assert figures[name] > 0, name
    for name, (ours, baseline) in RATIOS.items():
        assert math.isclose(figures[name], figures[ours] / figures[baseline]), name


def test_alarm_envelopes_replay_every_second_envelope() -> None:
    envelopes = ingest.alarm_envelopes(4, datetime.now(UTC))

    assert envelopes[1].alarm_events == envelopes[0].alarm_events
    assert envelopes[1].batch_id != envelopes[0].batch_id
    assert envelopes[2].alarm_events[0].seq > envelopes[0].alarm_events[0].seq
