"""Derived readings: parsing a binding's `derive` mapping and computing what it derives."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from core.derived import (
    AnyFlag,
    DerivationError,
    FillFromDistance,
    LevelFromDistance,
    derive,
    parse_derivations,
)
from core.metrics import Metric, Quality
from core.types import Reading

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def reading(metric: Metric, value: float | bool, quality: Quality = Quality.GOOD) -> Reading:
    return Reading("dev-1", metric, value, T0, quality, codec_id="lorawan.x.y")


def test_fill_is_linear_between_the_empty_floor_and_the_full_line_and_clamped() -> None:
    (fill,) = parse_derivations(
        {"fill_pct": {"from": "distance_mm", "empty_mm": 1350, "full_mm": 150}}
    )
    assert isinstance(fill, FillFromDistance)
    values = [
        derive(reading(Metric.DISTANCE_MM, d), [fill])[0].value for d in (1350, 750, 150, 50, 1500)
    ]
    assert values == [0.0, 50.0, 100.0, 100.0, 0.0]


def test_level_is_the_depth_less_the_distance_never_below_zero() -> None:
    (level,) = parse_derivations({"water_level_mm": {"from": "distance_mm", "depth_mm": 2500}})
    assert isinstance(level, LevelFromDistance)
    assert [derive(reading(Metric.DISTANCE_MM, d), [level])[0].value for d in (1500, 2600)] == [
        1000.0,
        0.0,
    ]


def test_a_derived_reading_keeps_device_time_codec_quality_and_names_its_source() -> None:
    (fill,) = parse_derivations(
        {"fill_pct": {"from": "distance_mm", "empty_mm": 1000, "full_mm": 0}}
    )
    (out,) = derive(reading(Metric.DISTANCE_MM, 25_000, Quality.OUT_OF_RANGE), [fill])
    assert (out.device_id, out.ts, out.codec_id, out.quality) == (
        "dev-1",
        T0,
        "lorawan.x.y",
        Quality.OUT_OF_RANGE,
    )
    assert out.derived_from is Metric.DISTANCE_MM


def test_any_flag_is_true_while_any_source_last_said_so() -> None:
    (flag,) = parse_derivations({"intrusion": {"from": ["contact_open", "occupancy"]}})
    assert isinstance(flag, AnyFlag)
    memory: dict[tuple[str, Metric], dict[Metric, bool]] = {}
    steps = [
        (Metric.OCCUPANCY, True),
        (Metric.CONTACT_OPEN, True),
        (Metric.OCCUPANCY, False),
        (Metric.CONTACT_OPEN, False),
    ]
    assert [derive(reading(m, v), [flag], memory)[0].value for m, v in steps] == [
        True,
        True,
        True,
        False,
    ]


def test_invert_and_no_derivation_from_a_wrong_type_or_nan() -> None:
    (flag,) = parse_derivations({"fault": {"from": "online", "invert": True}})
    assert derive(reading(Metric.ONLINE, value=False), [flag])[0].value is True
    assert derive(reading(Metric.ONLINE, 1.0), [flag]) == []
    (fill,) = parse_derivations(
        {"fill_pct": {"from": "distance_mm", "empty_mm": 1000, "full_mm": 0}}
    )
    assert derive(reading(Metric.DISTANCE_MM, math.nan), [fill]) == []
    assert derive(reading(Metric.DISTANCE_MM, value=True), [fill]) == []
    assert derive(reading(Metric.TEMPERATURE_C, 20.0), [fill]) == []


def test_every_problem_is_reported_with_its_key() -> None:
    with pytest.raises(DerivationError) as err:
        parse_derivations(
            {
                "fill_pct": {"from": "distance_mm", "empty_mm": "tall", "full_mm": 150, "extra": 1},
                "water_level_mm": {"from": "distance_mm"},
                "intrusion": {"from": "temperature_c"},
                "smoke": {"from": "smoke"},
                "nonsense": {"from": "smoke"},
                "fault": {"from": "online", "invert": "yes"},
            }
        )
    assert err.value.problems == (
        (("fill_pct", "extra"), "unknown key; expected empty_mm, full_mm"),
        (("fill_pct", "empty_mm"), "must be a number of millimetres, not 'tall'"),
        (("water_level_mm", "depth_mm"), "required"),
        (
            ("intrusion",),
            (
                "cannot derive intrusion from temperature_c; supported: fill_pct from distance_mm "
                "(empty_mm, full_mm); water_level_mm from distance_mm (depth_mm); a flag from one or "
                "more flags (true while any is; invert: optional)"
            ),
        ),
        (("smoke", "from"), "a metric cannot be derived from itself"),
        (("nonsense",), "unknown metric 'nonsense'"),
        (("fault", "invert"), "must be true or false"),
    )
    with pytest.raises(DerivationError, match="derive must be a mapping"):
        parse_derivations(["fill_pct"])
