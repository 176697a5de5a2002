from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.clock import FrozenClock, SystemClock
from core.metrics import CATALOG, Metric, MetricKind, Quality, parse_metric, quality_of
from core.site import LEVELS, SitePath

ARCHITECTURE_METRICS = [
    *("distance_mm", "fill_pct", "battery_pct", "battery_v", "temperature_c", "tilt_deg"),
    *("tilt_x_deg", "tilt_y_deg", "tilt_z_deg", "water_level_mm", "gas_lel_pct", "smoke_pct"),
    *("smoke", "fire_alarm", "fault", "tamper", "contact_open", "occupancy", "intrusion"),
    *("vibration", "water_leak", "cover_moved", "full", "low_battery", "power_fault", "tilt_alarm"),
]


def test_catalog_has_every_canonical_metric_with_a_spec() -> None:
    for name in ARCHITECTURE_METRICS:
        assert parse_metric(name) in CATALOG
    assert set(CATALOG) == set(Metric)
    for metric, spec in CATALOG.items():
        assert spec.minimum <= spec.maximum, metric
        assert spec.description, metric


def test_boolean_metrics_have_no_unit_and_numeric_names_carry_theirs() -> None:
    for spec in CATALOG.values():
        if spec.kind is MetricKind.BOOLEAN:
            assert spec.unit == ""
    assert CATALOG[Metric.DISTANCE_MM].unit == "mm"
    assert CATALOG[Metric.TEMPERATURE_C].unit == "°C"


@pytest.mark.parametrize(
    ("metric", "value", "quality"),
    [
        (Metric.FILL_PCT, 50.0, Quality.GOOD),
        (Metric.FILL_PCT, 100.0, Quality.GOOD),
        (Metric.FILL_PCT, 130.0, Quality.OUT_OF_RANGE),
        (Metric.TEMPERATURE_C, -60.0, Quality.OUT_OF_RANGE),
        (Metric.TEMPERATURE_C, math.nan, Quality.OUT_OF_RANGE),
        (Metric.DISTANCE_MM, True, Quality.OUT_OF_RANGE),
        (Metric.SMOKE, True, Quality.GOOD),
        (Metric.SMOKE, 1.0, Quality.OUT_OF_RANGE),
        (Metric.WATER_VOLUME_L, 1e9, Quality.GOOD),
    ],
)
def test_quality_flags_but_never_drops(metric: Metric, value: float, quality: Quality) -> None:
    assert quality_of(metric, value) is quality


def test_unknown_metric_is_named() -> None:
    with pytest.raises(ValueError, match="'fill_percent'"):
        parse_metric("fill_percent")


def test_frozen_clock_moves_only_forward() -> None:
    start = datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    clock = FrozenClock(start)
    assert clock.now() == start
    assert clock.now().tzinfo is UTC
    assert clock.advance(1.5) == start + timedelta(seconds=1.5)
    assert clock.monotonic() == 1.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="tz-aware"):
        FrozenClock(datetime(2026, 1, 1))  # noqa: DTZ001


def test_system_clock_is_utc_and_monotonic() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    first = clock.monotonic()
    assert clock.monotonic() >= first


def test_site_path_levels_and_scopes() -> None:
    path = SitePath.parse("huangpu/nanjing-rd/xinhua/g03/c1/b2/u1")
    assert str(path) == "huangpu/nanjing-rd/xinhua/g03/c1/b2/u1"
    assert path.level("building") == "b2"
    assert path.truncate("compound") == SitePath.parse("huangpu/nanjing-rd/xinhua/g03/c1")
    assert path.within(path.truncate("grid"))
    assert not path.truncate("grid").within(path)
    assert SitePath.parse("huangpu/nanjing-rd").level("unit") is None
    assert len(LEVELS) == 7


@pytest.mark.parametrize("text", ["a//b", "a/ /b", "1/2/3/4/5/6/7/8"])
def test_bad_site_paths_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match=r"location path|empty segment"):
        SitePath.parse(text)
