"""Dragino ultrasonic distance frames (LDDS75, LDDS20, DDS75-LB): 8 bytes, big-endian, fPort 2.

| bytes | field |
|---|---|
| 0-1 | battery mV, `& 0x3FFF` -> `battery_v` |
| 2-3 | distance, uint16, mm -> `distance_mm` (0 means no ultrasonic probe: `suspect`, with a warning) |
| 4 | interrupt flag -> attribute `interrupt_flag` |
| 5-6 | DS18B20 temperature, int16 / 10 -> `temperature_c` (0x7FFF when no probe: out of range, kept) |
| 7 | sensor flag -> attribute `sensor_flag` |

Per Dragino's own ChirpStack v4 decoders (dragino-end-node-decoder `e81cc58`). The TTN repository's
`ldds75.js` is a different, broken decoder (DEVICE_PROTOCOLS.md §7.4): it only takes 5-byte frames and
reports the battery as the distance; we do not follow it.

Encoder keys: `battery_v`, `distance_mm`, `temperature_c`, optional `interrupt_flag` (0) and
`sensor_flag` (1).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Final

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.fields import Decoded
from firmware_adapters.lorawan import (
    RADIO_METRICS,
    chirpstack_aware,
    finish,
    fport_of,
    require_length,
)

DISTANCE_FPORT = 2
_FRAME = struct.Struct(">HHBhB")
DISTANCE_METRICS: Final[frozenset[Metric]] = frozenset(
    {Metric.BATTERY_V, Metric.DISTANCE_MM, Metric.TEMPERATURE_C}
)
"""What `decode_distance` emits (the radio metrics come on top, from `finish`)."""


def decode_distance(frame: RawFrame, codec_id: str) -> DecodeResult:
    """Decode the 8-byte distance uplink."""
    require_length(frame, codec_id, (_FRAME.size,))
    battery_mv, distance, interrupt, temperature, sensor_flag = _FRAME.unpack(frame.payload)
    out = Decoded()
    out.put(Metric.BATTERY_V, (battery_mv & 0x3FFF) / 1000)
    out.put(Metric.DISTANCE_MM, distance)
    if distance == 0:
        out.suspect.add(Metric.DISTANCE_MM)
        out.warnings.append("distance 0: no ultrasonic probe detected")
    out.put(Metric.TEMPERATURE_C, temperature / 10)
    out.put("interrupt_flag", interrupt)
    out.put("sensor_flag", sensor_flag)
    return finish(frame, codec_id, out)


def number(values: Mapping[str, object], key: str, default: float | None = None) -> float:
    """A numeric encoder input, or `EncodeError`."""
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{key} must be a number, got {value!r}")
    return float(value)


def encode_distance(values: Mapping[str, object]) -> bytes:
    """Build the 8-byte distance uplink."""
    try:
        return _FRAME.pack(
            round(number(values, Metric.BATTERY_V.value) * 1000),
            round(number(values, Metric.DISTANCE_MM.value)),
            round(number(values, "interrupt_flag", 0)),
            round(number(values, Metric.TEMPERATURE_C.value) * 10),
            round(number(values, "sensor_flag", 1)),
        )
    except struct.error as err:
        raise EncodeError(f"value out of range: {err}") from err


def unsupported(frame: RawFrame, codec_id: str, what: str) -> DecodeError:
    """The error for a valid uplink kind this codec does not decode."""
    return DecodeError(codec_id, DecodeReason.UNSUPPORTED, what, frame.payload)


def distance_codec(codec_id: str, description: str, module_file: str) -> Codec:
    """The `Codec` of a Dragino distance sensor with the common 8-byte layout on fPort 2."""

    def decode(frame: RawFrame) -> DecodeResult:
        fport_of(frame, codec_id, (DISTANCE_FPORT,))
        return decode_distance(frame, codec_id)

    return Codec(
        codec_id,
        DeviceClass.BIN,
        description,
        chirpstack_aware(codec_id, decode),
        encode_distance,
        vectors_beside(module_file),
        metrics=DISTANCE_METRICS | RADIO_METRICS,
    )
