"""Per-codec value choices: the few fields a format needs that a behaviour model does not name.

Models speak canonical metrics; most encoders take those directly. Where a format reports an event
name or per-axis flags instead, the mapping here derives them from the canonical values. Nothing
here builds bytes: that is the codec encoder's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from simulators.emission import Value

ValueMap = Callable[[Mapping[str, Value]], dict[str, object]]


def _gs524n(values: Mapping[str, Value]) -> dict[str, object]:
    if values.get("smoke"):
        event = "alarm"
    elif values.get("tamper"):
        event = "removed"
    elif values.get("low_battery"):
        event = "low battery"
    else:
        event = "normal"
    return {
        **values,
        "event": event,
        "smoke_pct": round(float(values.get("smoke_pct", 0))),
        "temperature_c": round(float(values.get("temperature_c", 20))),
    }


def _tilt_flags(values: Mapping[str, Value]) -> dict[str, object]:
    alarm = bool(values.get("tilt_alarm", False))
    return {**values, "threshold_x": alarm, "threshold_y": False, "threshold_z": alarm}


def _volts(values: Mapping[str, Value]) -> dict[str, object]:
    """Dragino sensors report their Li-SOCl2 cell in volts: 3.6 V full, 3.0 V flat."""
    pct = float(values.get("battery_pct", 100))
    return {**values, "battery_v": round(3.0 + 0.6 * pct / 100, 3)}


def _bin_angle(values: Mapping[str, Value]) -> dict[str, object]:
    """The Dingtek DF702 reports the bin's angle: upright, or on its side when knocked over."""
    return {**values, "tilt_deg": 90.0 if values.get("tilt_alarm") else 0.0}


VALUE_MAPS: dict[str, ValueMap] = {
    "lorawan.milesight.gs524n": _gs524n,
    "lorawan.milesight.em310_tilt": _tilt_flags,
    "lorawan.milesight.em320_tilt": _tilt_flags,
    "lorawan.dragino.lds02": _volts,
    "lorawan.dragino.ldds75": _volts,
    "lorawan.dragino.ldds20": _volts,
    "lorawan.dragino.dds75_lb": _volts,
    "lorawan.dingtek.df702": _bin_angle,
}


def encoder_values(codec_id: str, values: Mapping[str, Value]) -> dict[str, object]:
    """The values to hand to `codec_id`'s encoder for one sample."""
    mapper = VALUE_MAPS.get(codec_id)
    return mapper(values) if mapper else dict(values)
