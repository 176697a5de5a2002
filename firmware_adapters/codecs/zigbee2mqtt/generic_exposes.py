"""Zigbee2MQTT device state and availability -> readings, for any model, guided by its exposes.

Frames come from `firmware_adapters.zigbee2mqtt_exposes.frame_from_z2m_message` (see there for the
metadata: `kind`, `model`, `exposes`). Properties mapped to canonical metrics:

| property | metric | note |
|---|---|---|
| smoke, water_leak, occupancy, vibration, tamper, battery_low | smoke, water_leak, occupancy, vibration, tamper, low_battery | true when the value equals the expose's `value_on` (default `true`) |
| contact | contact_open | `value_on` of contact is `false`: `contact: false` means open |
| test | self_test | |
| battery | battery_pct | |
| voltage | battery_v | millivolts / 1000 |
| temperature, humidity, illuminance | temperature_c, humidity_pct, illuminance_lux | |
| angle_x, angle_y, angle_z | tilt_x_deg, tilt_y_deg, tilt_z_deg | |

Other scalar keys (linkquality, last_seen, sensitivity, ...) become attributes; `null` values (unknown
to Zigbee2MQTT) are skipped. A known property with a value of the wrong type is skipped with a
warning. Availability frames give `online` from `{"state": "online"}` or the legacy plain `online`.

Encoder keys: canonical metric names of the table (and any other scalar key, passed through), or
`online` alone for an availability payload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Final

import orjson

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.fields import Decoded
from firmware_adapters.zigbee2mqtt_exposes import CODEC_ID, Expose, parse_compact_exposes

ID = CODEC_ID
BINARY: Final[Mapping[str, Metric]] = {
    "smoke": Metric.SMOKE,
    "water_leak": Metric.WATER_LEAK,
    "contact": Metric.CONTACT_OPEN,
    "occupancy": Metric.OCCUPANCY,
    "vibration": Metric.VIBRATION,
    "tamper": Metric.TAMPER,
    "battery_low": Metric.LOW_BATTERY,
    "test": Metric.SELF_TEST,
}
DEFAULT_ON: Final[Mapping[str, bool]] = {"contact": False}
NUMERIC: Final[Mapping[str, tuple[Metric, float]]] = {
    "battery": (Metric.BATTERY_PCT, 1.0),
    "voltage": (Metric.BATTERY_V, 0.001),
    "temperature": (Metric.TEMPERATURE_C, 1.0),
    "humidity": (Metric.HUMIDITY_PCT, 1.0),
    "illuminance": (Metric.ILLUMINANCE_LUX, 1.0),
    "angle_x": (Metric.TILT_X_DEG, 1.0),
    "angle_y": (Metric.TILT_Y_DEG, 1.0),
    "angle_z": (Metric.TILT_Z_DEG, 1.0),
}
METRICS: Final[frozenset[Metric]] = frozenset(
    {
        Metric.SMOKE,
        Metric.WATER_LEAK,
        Metric.CONTACT_OPEN,
        Metric.OCCUPANCY,
        Metric.VIBRATION,
        Metric.TAMPER,
        Metric.LOW_BATTERY,
        Metric.SELF_TEST,
        Metric.BATTERY_PCT,
        Metric.BATTERY_V,
        Metric.TEMPERATURE_C,
        Metric.HUMIDITY_PCT,
        Metric.ILLUMINANCE_LUX,
        Metric.TILT_X_DEG,
        Metric.TILT_Y_DEG,
        Metric.TILT_Z_DEG,
        Metric.ONLINE,
    }
)
"""Every metric the converter tables (`BINARY`, `NUMERIC`) produce, and `online` (availability)."""
_SCALARS: Final = (str, int, float)
"""Attribute values kept as they are (bool is an int)."""
PROPERTY_OF: Final[Mapping[str, str]] = {
    **{m.value: p for p, m in BINARY.items()},
    **{m.value: p for p, (m, _) in NUMERIC.items()},
}


def _fail(reason: DecodeReason, detail: str, frame: RawFrame) -> DecodeError:
    return DecodeError(ID, reason, detail, frame.payload)


def _json(frame: RawFrame) -> object:
    try:
        return orjson.loads(frame.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(DecodeReason.MALFORMED, f"not JSON: {err}", frame) from None


@lru_cache(maxsize=512)
def _parsed_exposes(text: str) -> Mapping[str, Expose]:
    """Exposes of a model, parsed once: every state message of that model carries the same text."""
    return parse_compact_exposes(text)


def _exposes(frame: RawFrame) -> Mapping[str, Expose]:
    text = frame.meta.get("exposes")
    if not text:
        return {}
    try:
        return _parsed_exposes(text)
    except ValueError as err:
        raise _fail(DecodeReason.MALFORMED, f"bad exposes metadata: {err}", frame) from None


def _availability(frame: RawFrame) -> DecodeResult:
    text = frame.payload.decode("utf-8", "replace").strip()
    state: object = text
    if text.startswith("{"):
        doc = _json(frame)
        state = doc.get("state") if isinstance(doc, dict) else None
    if not isinstance(state, str) or state not in {"online", "offline"}:
        raise _fail(DecodeReason.MALFORMED, f"availability {text[:40]!r}", frame)
    out = Decoded()
    out.put(Metric.ONLINE, state == "online")
    return out.result(frame, ID)


def _put(out: Decoded, exposes: Mapping[str, Expose], key: str, value: object) -> None:
    metric = BINARY.get(key)
    if metric is not None:
        expose = exposes.get(key)
        on = expose.value_on if expose is not None and expose.value_on is not None else None
        on = DEFAULT_ON.get(key, True) if on is None else on
        if not isinstance(value, bool | str) or (
            isinstance(value, str) and not isinstance(on, str)
        ):
            out.warnings.append(f"{key}: unexpected value {value!r}")
            return
        out.values.append((metric, value == on))
        return
    numeric = NUMERIC.get(key)
    if numeric is not None:
        metric, scale = numeric
        if value.__class__ is bool or not isinstance(value, int | float):
            out.warnings.append(f"{key}: unexpected value {value!r}")
            return
        out.values.append((metric, round(value * scale, 6) if scale != 1.0 else value))
    elif isinstance(value, _SCALARS):
        out.attributes[key] = value


def decode(frame: RawFrame) -> DecodeResult:
    """Decode a state or availability message."""
    meta = frame.meta
    if meta.get("kind") == "availability":
        return _availability(frame)
    doc = _json(frame)
    if not isinstance(doc, dict):
        raise _fail(DecodeReason.MALFORMED, "state must be a JSON object", frame)
    exposes = _exposes(frame)
    out = Decoded()
    for key, value in doc.items():  # JSON object keys are strings
        if value is not None:
            _put(out, exposes, key, value)
    if "model" in meta:
        out.attributes.setdefault("model", meta["model"])
    return out.result(frame, ID)


def encode(values: Mapping[str, object]) -> bytes:
    """Build a state (or, for `online` alone, an availability) payload."""
    if set(values) == {Metric.ONLINE.value}:
        return json.dumps(
            {"state": "online" if values[Metric.ONLINE.value] else "offline"}
        ).encode()
    doc: dict[str, object] = {}
    for key, value in values.items():
        prop = PROPERTY_OF.get(key)
        if prop is None:
            if not isinstance(value, str | int | float | bool):
                raise EncodeError(f"{key} must be a scalar")
            doc[key] = value
        elif prop in BINARY:
            doc[prop] = bool(value) if DEFAULT_ON.get(prop, True) else not value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise EncodeError(f"{key} must be a number")
            doc[prop] = round(value / NUMERIC[prop][1], 6)
    return json.dumps(doc, separators=(",", ":")).encode()


CODEC = Codec(
    ID,
    DeviceClass.GENERIC,
    "Zigbee2MQTT device state and availability, mapped through the model's exposes",
    decode,
    encode,
    vectors_beside(__file__),
    metrics=METRICS,
)
