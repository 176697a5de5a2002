"""The canonical metric catalog: every metric Steward knows, with kind, unit and valid range.

A vendor's field names never leave its codec; a codec converts to one of these metrics. The unit is
part of the name and of the spec. A value outside the valid range is kept and flagged
(`Quality.OUT_OF_RANGE`), never silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class MetricKind(StrEnum):
    """How a metric's values behave."""

    GAUGE = "gauge"
    """A number that goes up and down (distance, temperature)."""
    COUNTER = "counter"
    """A number that only grows, except on reset (frames received, litres metered)."""
    BOOLEAN = "boolean"
    """A true/false state (smoke present, cover moved)."""


class Quality(StrEnum):
    """How far a reading can be trusted."""

    GOOD = "good"
    OUT_OF_RANGE = "out_of_range"
    """The value lies outside the metric's valid range; it is kept so that nothing is lost."""
    SUSPECT = "suspect"
    """The device itself flagged the value (sensor error, stale measurement)."""


class Metric(StrEnum):
    """Canonical metric names (snake_case, unit in the name)."""

    DISTANCE_MM = "distance_mm"
    FILL_PCT = "fill_pct"
    BATTERY_PCT = "battery_pct"
    BATTERY_V = "battery_v"
    TEMPERATURE_C = "temperature_c"
    HUMIDITY_PCT = "humidity_pct"
    ILLUMINANCE_LUX = "illuminance_lux"
    TILT_DEG = "tilt_deg"
    TILT_X_DEG = "tilt_x_deg"
    TILT_Y_DEG = "tilt_y_deg"
    TILT_Z_DEG = "tilt_z_deg"
    WATER_LEVEL_MM = "water_level_mm"
    GAS_LEL_PCT = "gas_lel_pct"
    SMOKE_PCT = "smoke_pct"
    WATER_VOLUME_L = "water_volume_l"
    WATER_FLOW_LPH = "water_flow_lph"
    RSSI_DBM = "rssi_dbm"
    SNR_DB = "snr_db"
    SMOKE = "smoke"
    FIRE_ALARM = "fire_alarm"
    FAULT = "fault"
    TAMPER = "tamper"
    CONTACT_OPEN = "contact_open"
    OCCUPANCY = "occupancy"
    INTRUSION = "intrusion"
    VIBRATION = "vibration"
    WATER_LEAK = "water_leak"
    COVER_MOVED = "cover_moved"
    FULL = "full"
    LOW_BATTERY = "low_battery"
    POWER_FAULT = "power_fault"
    TILT_ALARM = "tilt_alarm"
    ONLINE = "online"
    SELF_TEST = "self_test"
    # Gateway self-statistics, published as readings of the gateway itself.
    FRAMES_IN_TOTAL = "frames_in_total"
    DECODE_ERRORS_TOTAL = "decode_errors_total"
    ALARMS_TOTAL = "alarms_total"
    OUTBOX_DEPTH = "outbox_depth"
    OUTBOX_DROPPED_TOTAL = "outbox_dropped_total"
    FRAMES_DROPPED_TOTAL = "frames_dropped_total"
    FRAMES_SKIPPED_TOTAL = "frames_skipped_total"
    LOCAL_BROKER_DROPPED_TOTAL = "local_broker_dropped_total"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What a metric means: kind, canonical unit, valid range and a one-line description."""

    kind: MetricKind
    unit: str
    minimum: float
    maximum: float
    description: str


def _gauge(unit: str, minimum: float, maximum: float, description: str) -> MetricSpec:
    return MetricSpec(MetricKind.GAUGE, unit, minimum, maximum, description)


def _counter(unit: str, description: str) -> MetricSpec:
    return MetricSpec(MetricKind.COUNTER, unit, 0.0, math.inf, description)


def _flag(description: str) -> MetricSpec:
    return MetricSpec(MetricKind.BOOLEAN, "", 0.0, 1.0, description)


CATALOG: Final[dict[Metric, MetricSpec]] = {
    Metric.DISTANCE_MM: _gauge("mm", 0, 20_000, "distance from sensor to target surface"),
    Metric.FILL_PCT: _gauge("%", 0, 100, "fill level of a container"),
    Metric.BATTERY_PCT: _gauge("%", 0, 100, "battery charge"),
    Metric.BATTERY_V: _gauge("V", 0, 60, "battery voltage"),
    Metric.TEMPERATURE_C: _gauge("°C", -50, 150, "temperature"),
    Metric.HUMIDITY_PCT: _gauge("%", 0, 100, "relative humidity"),
    Metric.ILLUMINANCE_LUX: _gauge("lx", 0, 200_000, "illuminance"),
    Metric.TILT_DEG: _gauge("°", 0, 180, "tilt from the installed position"),
    Metric.TILT_X_DEG: _gauge("°", -180, 180, "angle around the x axis"),
    Metric.TILT_Y_DEG: _gauge("°", -180, 180, "angle around the y axis"),
    Metric.TILT_Z_DEG: _gauge("°", -180, 180, "angle around the z axis"),
    Metric.WATER_LEVEL_MM: _gauge("mm", 0, 20_000, "water level above the reference"),
    Metric.GAS_LEL_PCT: _gauge("%LEL", 0, 100, "flammable gas concentration"),
    Metric.SMOKE_PCT: _gauge("%", 0, 100, "smoke obscuration or concentration as reported"),
    Metric.WATER_VOLUME_L: _counter("L", "metered water volume"),
    Metric.WATER_FLOW_LPH: _gauge("L/h", 0, 1_000_000, "water flow rate"),
    Metric.RSSI_DBM: _gauge("dBm", -200, 50, "received signal strength"),
    Metric.SNR_DB: _gauge("dB", -50, 50, "signal-to-noise ratio"),
    Metric.SMOKE: _flag("smoke detected"),
    Metric.FIRE_ALARM: _flag("fire alarm raised"),
    Metric.FAULT: _flag("device or component fault"),
    Metric.TAMPER: _flag("tamper switch triggered"),
    Metric.CONTACT_OPEN: _flag("door or window contact open"),
    Metric.OCCUPANCY: _flag("presence detected"),
    Metric.INTRUSION: _flag("intrusion detected"),
    Metric.VIBRATION: _flag("vibration detected"),
    Metric.WATER_LEAK: _flag("water leak detected"),
    Metric.COVER_MOVED: _flag("manhole cover moved or lifted"),
    Metric.FULL: _flag("container reported full"),
    Metric.LOW_BATTERY: _flag("battery low"),
    Metric.POWER_FAULT: _flag("mains or supply power fault"),
    Metric.TILT_ALARM: _flag("tilt beyond the device's threshold"),
    Metric.ONLINE: _flag("device reachable"),
    Metric.SELF_TEST: _flag("self-test in progress or reported"),
    Metric.FRAMES_IN_TOTAL: _counter("", "frames received by the gateway"),
    Metric.DECODE_ERRORS_TOTAL: _counter("", "frames that failed to decode"),
    Metric.ALARMS_TOTAL: _counter("", "alarm events emitted"),
    Metric.OUTBOX_DEPTH: _gauge("", 0, math.inf, "records waiting in the outbox"),
    Metric.OUTBOX_DROPPED_TOTAL: _counter("", "telemetry records dropped by a full outbox"),
    Metric.FRAMES_DROPPED_TOTAL: _counter(
        "", "frames dropped because the gateway's queue was full"
    ),
    Metric.FRAMES_SKIPPED_TOTAL: _counter(
        "", "messages a source received but could not route to a device (unbound, unreadable)"
    ),
    Metric.LOCAL_BROKER_DROPPED_TOTAL: _counter(
        "", "messages the local broker dropped, for any client, since it started (its $SYS count)"
    ),
}


def spec(metric: Metric) -> MetricSpec:
    """Return the catalog entry of a metric."""
    return CATALOG[metric]


_JUDGED: Final[dict[Metric, tuple[bool, float, float]]] = {
    metric: (entry.kind is MetricKind.BOOLEAN, entry.minimum, entry.maximum)
    for metric, entry in CATALOG.items()
}
"""Per metric: boolean or not, and the valid range (what `quality_of` reads for every value)."""
_GOOD: Final = Quality.GOOD
_OUT_OF_RANGE: Final = Quality.OUT_OF_RANGE


def quality_of(metric: Metric, value: float | bool) -> Quality:  # noqa: FBT001
    """Judge a value against its metric's valid range and kind.

    Booleans are always in range for a boolean metric; a number given for a boolean metric, a
    boolean for a numeric metric, NaN, or a number outside the range is `OUT_OF_RANGE`.
    """
    boolean, minimum, maximum = _JUDGED[metric]
    if boolean:
        return _GOOD if value.__class__ is bool else _OUT_OF_RANGE
    if value.__class__ is bool or value != value:  # noqa: PLR0124 - NaN is not equal to itself
        return _OUT_OF_RANGE
    return _GOOD if minimum <= value <= maximum else _OUT_OF_RANGE


def parse_metric(name: str) -> Metric:
    """Return the metric of a canonical name, raising `ValueError` naming the unknown one."""
    try:
        return Metric(name)
    except ValueError:
        msg = f"unknown metric {name!r}"
        raise ValueError(msg) from None
