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


VALUE_MAPS: dict[str, ValueMap] = {
    "lorawan.milesight.gs524n": _gs524n,
    "lorawan.milesight.em310_tilt": _tilt_flags,
    "lorawan.milesight.em320_tilt": _tilt_flags,
}


def encoder_values(codec_id: str, values: Mapping[str, Value]) -> dict[str, object]:
    """The values to hand to `codec_id`'s encoder for one sample."""
    mapper = VALUE_MAPS.get(codec_id)
    return mapper(values) if mapper else dict(values)
