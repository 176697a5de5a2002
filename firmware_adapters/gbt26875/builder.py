"""Build GB/T 26875.3 frames from plain values (the encoder used by simulators and tests).

Accepted keys (all optional):
- frame: `serial` (int), `command` (int, default 2 send data), `source`, `destination` (int),
  `sent_at` (aware datetime; zero tag when absent), `utc_offset` (`"+08:00"`, the panel clock's zone),
  `info_type` (int, default 2), `objects` (list of mappings; when absent the top-level mapping is the
  one object).
- object: the layout field names (`system_type`, `system_address`, `component_type`,
  `component_address`, `status`, `analog_type`, `analog_raw`, `operation`, `operator`, `major`,
  `minor`), `description` (str), `at` (aware datetime, the object's time tag), `clock` (aware
  datetime); for status types the canonical booleans `fire_alarm`, `fault`, `power_fault`,
  `self_test` when `status` is absent; for analog values `value` (in the unit of table 6), or a
  canonical metric key (`temperature_c`, `gas_lel_pct`) that also selects the analog type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from core.metrics import Metric
from firmware_adapters.errors import EncodeError
from firmware_adapters.gbt26875.frame import build_frame, encode_time_tag
from firmware_adapters.gbt26875.objects import LAYOUTS, TIME_TAG_LEN, InfoObject, encode_unit
from firmware_adapters.gbt26875.semantics import (
    ANALOG_BY_METRIC,
    ANALOG_TYPES,
    STATUS_BITS,
    status_word,
)


def parse_offset(text: str) -> timedelta:
    """Parse a `+HH:MM` / `-HH:MM` UTC offset.

    Raises:
        ValueError: the text is not such an offset.
    """
    sign = {"+": 1, "-": -1}.get(text[:1])
    hours, sep, minutes = text[1:].partition(":")
    if sign is None or not sep or not (hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"UTC offset {text!r} is not +HH:MM")
    return sign * timedelta(hours=int(hours), minutes=int(minutes))


def _int(values: Mapping[str, object], key: str, default: int = 0) -> int:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"{key} must be an integer, not {value!r}")
    return value


def _time(values: Mapping[str, object], key: str, offset: timedelta) -> bytes:
    value = values.get(key)
    if value is None:
        return bytes(TIME_TAG_LEN)
    if not isinstance(value, datetime):
        raise EncodeError(f"{key} must be a datetime, not {value!r}")
    return encode_time_tag(value, offset)


def _object(kind: int, values: Mapping[str, object], offset: timedelta) -> InfoObject:
    layout = LAYOUTS[kind]
    fields: dict[str, int | bytes] = {}
    for name in layout.names:
        if name == "clock":
            fields[name] = _time(values, "clock", offset)
        elif name == "status" and "status" not in values:
            flags = {m: bool(values.get(m.value, False)) for m in Metric}
            fields[name] = status_word(flags, STATUS_BITS[kind])
        elif name == "analog_type" and "analog_type" not in values:
            fields[name] = next(
                (ANALOG_BY_METRIC[m] for m in ANALOG_BY_METRIC if m.value in values), 0
            )
        elif name == "analog_raw" and "analog_raw" not in values:
            fields[name] = _analog_raw(values, _int(fields, "analog_type"))
        else:
            fields[name] = _int(values, name)
    description = values.get("description")
    if description is not None and not isinstance(description, str):
        raise EncodeError(f"description must be a string, not {description!r}")
    time_tag = _time(values, "at", offset) if layout.timed else None
    return InfoObject(kind, fields, description, time_tag)


def _analog_raw(values: Mapping[str, object], analog_type: int) -> int:
    analog = ANALOG_TYPES.get(analog_type)
    key = (
        analog.metric.value
        if analog and analog.metric and analog.metric.value in values
        else "value"
    )
    value = values.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{key} must be a number, not {value!r}")
    return round(value / (analog.scale if analog else 1))


def encode_values(values: Mapping[str, object]) -> bytes:
    """Build a complete frame from plain values (see the module docstring for the keys).

    Raises:
        EncodeError: the values cannot be represented in a frame.
    """
    try:
        offset = parse_offset(str(values.get("utc_offset", "+00:00")))
        kind = _int(values, "info_type", 2)
        if kind not in LAYOUTS:
            raise EncodeError(f"information type {kind} cannot be encoded")
        raw_objects = values.get("objects", [values])
        if not isinstance(raw_objects, Sequence):
            raise EncodeError("objects must be a list of mappings")
        objects = [_object(kind, _mapping(o), offset) for o in raw_objects]
        app = encode_unit(kind, objects)
        return build_frame(
            serial=_int(values, "serial"),
            command=_int(values, "command", 2),
            app=app,
            time_tag=_time(values, "sent_at", offset),
            source=_int(values, "source"),
            destination=_int(values, "destination"),
        )
    except (ValueError, OverflowError) as err:
        raise EncodeError(str(err)) from err


def _mapping(value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise EncodeError(f"object must be a mapping, not {value!r}")
    return value
