"""Dingtek LoRaWAN frames (DF702 bin sensor, DC410 manhole sensor): big-endian, fPort 3.

Frame: `80 | 00 01 | type | length | level u16 mm | gps flag | [longitude f32 LE, latitude f32 LE] |
temperature | angle sign | angle | flags A | flags B | counter u16 | reserved | 81`: 17 bytes, or 25
with GPS (gps flag 1). Type 3 is the parameter confirmation (25 bytes): upload interval (h, byte 7),
detection interval (min, 8), full threshold (cm, 9), fire threshold (°C, 10), tilt threshold (°,
11), tilt alarm enabled (12), range (13: 0 -> 2000 mm, else 5000 mm); it yields attributes only.

The flag bytes hold one flag per nibble (0 or 1); which flag is which differs per model and is
given by the codec. A nibble with any other value (or an unused nibble that is set) drops only that
flag, with an `undefined_value` issue; the rest of the frame still decodes. A GPS float that is NaN
or infinite is dropped with a `non_finite` issue (`fields.Decoded`).

Decoded per the vendor protocol ("DF702&DF703 Waste Bin Sensor Protocol_LoRaWAN V2.8"), not per the
TTN decoders, which have known bugs (DEVICE_PROTOCOLS.md §7.5): they ignore the angle sign byte (every
non-zero angle comes out negative), approximate the GPS floats and read the temperature unsigned.
Here the temperature is a signed byte, a sign byte of 0 means a positive angle (anything else
negative), `tilt_deg` is the angle's magnitude and the signed angle is the attribute `angle_deg`.

Readings: `distance_mm` (the ultrasonic level reading: distance from sensor to surface), `temperature_c`,
`tilt_deg`, plus the model's flags. Attributes: `frame_type`, `angle_deg`, `longitude`, `latitude`
(GPS frames), `frame_counter`, and the parameter names above (`upload_interval_h`,
`detection_interval_min`, `full_threshold_cm`, `fire_threshold_c`, `tilt_threshold_deg`,
`tilt_alarm_enabled`, `range_mm`).

Encoder keys: `distance_mm`, `temperature_c`, `tilt_deg` (or signed `angle_deg`), the model's flag
metrics, optional `frame_type` (1), `frame_counter`, `longitude` + `latitude` (GPS frame); or
`parameters: true` with the parameter names.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Final

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError, IssueKind
from firmware_adapters.fields import Decoded
from firmware_adapters.lorawan import RADIO_METRICS, finish, fport_of

FPORT = 3
HEAD, TAIL = 0x80, 0x81
SHORT, LONG = 17, 25
PARAMETERS = 3
SHORT_RANGE, LONG_RANGE = 2000, 5000
FRAME_TYPES = (1, 2, PARAMETERS)
Flags = Sequence[Metric | None]
"""The four nibbles, in order: flags A high, A low, B high, B low (None: must be 0)."""
MEASUREMENT_METRICS: Final[frozenset[Metric]] = frozenset(
    {Metric.DISTANCE_MM, Metric.TEMPERATURE_C, Metric.TILT_DEG}
)
"""What `_measurement` emits besides the model's flags."""

_GPS = struct.Struct("<ff")
_PARAMETER_NAMES = (
    "upload_interval_h",
    "detection_interval_min",
    "full_threshold_cm",
    "fire_threshold_c",
    "tilt_threshold_deg",
)


def codec_metrics(flags: Flags) -> frozenset[Metric]:
    """A model's declared `metrics`: the measurements, its flags and the radio metrics."""
    return MEASUREMENT_METRICS | {m for m in flags if m is not None} | RADIO_METRICS


def _error(codec_id: str, reason: DecodeReason, detail: str, frame: RawFrame) -> DecodeError:
    return DecodeError(codec_id, reason, detail, frame.payload)


def decode_frame(frame: RawFrame, codec_id: str, flags: Flags) -> DecodeResult:
    """Decode a heartbeat, GPS or parameter frame."""
    fport_of(frame, codec_id, (FPORT,))
    buf = frame.payload
    if len(buf) < SHORT:
        raise _error(codec_id, DecodeReason.TRUNCATED, f"{len(buf)} bytes; at least {SHORT}", frame)
    if buf[0] != HEAD or buf[-1] != TAIL:
        raise _error(codec_id, DecodeReason.MALFORMED, "frame must start 0x80 and end 0x81", frame)
    if buf[4] != len(buf) or len(buf) not in {SHORT, LONG}:
        raise _error(
            codec_id, DecodeReason.LENGTH, f"length byte {buf[4]}, {len(buf)} bytes", frame
        )
    frame_type = buf[3]
    if frame_type not in FRAME_TYPES:
        raise _error(codec_id, DecodeReason.UNKNOWN_TYPE, f"frame type {frame_type}", frame)
    out = Decoded()
    out.put("frame_type", frame_type)
    if frame_type == PARAMETERS:
        _parameters(frame, codec_id, out)
    else:
        _measurement(frame, codec_id, flags, out)
    return finish(frame, codec_id, out)


def _parameters(frame: RawFrame, codec_id: str, out: Decoded) -> None:
    buf = frame.payload
    if len(buf) != LONG:
        raise _error(codec_id, DecodeReason.LENGTH, "parameter frame must be 25 bytes", frame)
    for offset, name in enumerate(_PARAMETER_NAMES, start=7):
        out.put(name, buf[offset])
    out.put("tilt_alarm_enabled", bool(buf[12]))
    out.put("range_mm", SHORT_RANGE if buf[13] == 0 else LONG_RANGE)


def _measurement(frame: RawFrame, codec_id: str, flags: Flags, out: Decoded) -> None:
    buf = frame.payload
    out.put(Metric.DISTANCE_MM, buf[5] << 8 | buf[6])
    gps = buf[7]
    if (gps == 1) != (len(buf) == LONG) or gps > 1:
        raise _error(codec_id, DecodeReason.LENGTH, f"gps flag {gps} with {len(buf)} bytes", frame)
    at = 8
    if gps:
        longitude, latitude = _GPS.unpack_from(buf, at)
        out.put("longitude", round(longitude, 6))
        out.put("latitude", round(latitude, 6))
        at += _GPS.size
    out.put(Metric.TEMPERATURE_C, buf[at] - 256 if buf[at] > 127 else buf[at])  # noqa: PLR2004
    angle = buf[at + 2]
    out.put(Metric.TILT_DEG, angle)
    out.put("angle_deg", angle if buf[at + 1] == 0 else -angle)
    nibbles = (buf[at + 3] >> 4, buf[at + 3] & 0xF, buf[at + 4] >> 4, buf[at + 4] & 0xF)
    for n, (value, metric) in enumerate(zip(nibbles, flags, strict=True)):
        if value > 1 or (metric is None and value):
            name = metric.value if metric is not None else "unused flag"
            out.issue(
                IssueKind.UNDEFINED_VALUE,
                f"{name} (nibble {n} of 0x{buf[at + 3]:02x}{buf[at + 4]:02x}): undefined value {value}",
            )
        elif metric is not None:
            out.put(metric, bool(value))
    out.put("frame_counter", buf[at + 5] << 8 | buf[at + 6])


def _int(values: Mapping[str, object], key: str, default: int | None = None) -> int:
    value = values.get(key, default)
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int | float):
        raise EncodeError(f"{key} must be a number, got {value!r}")
    return round(value)


def encode_frame(values: Mapping[str, object], flags: Flags) -> bytes:
    """Build a heartbeat, GPS or (with `parameters: true`) parameter frame."""
    try:
        if values.get("parameters"):
            body = bytes([0, 0, *(_int(values, n) for n in _PARAMETER_NAMES)])
            body += bytes(
                [_int(values, "tilt_alarm_enabled", 0), _int(values, "range_mm", 0) != SHORT_RANGE]
            )
            return (
                bytes([HEAD, 0, 1, PARAMETERS, LONG])
                + body
                + bytes(LONG - 6 - len(body))
                + bytes([TAIL])
            )
        gps = "longitude" in values
        angle = (
            _int(values, "angle_deg")
            if "angle_deg" in values
            else _int(values, Metric.TILT_DEG.value)
        )
        body = _int(values, Metric.DISTANCE_MM.value).to_bytes(2, "big") + bytes([int(gps)])
        if gps:
            body += _GPS.pack(
                float(_int_or_float(values, "longitude")), float(_int_or_float(values, "latitude"))
            )
        nibbles = [_int(values, m.value, 0) if m is not None else 0 for m in flags]
        body += bytes(
            [
                _int(values, Metric.TEMPERATURE_C.value) & 0xFF,
                int(angle < 0),
                abs(angle),
                nibbles[0] << 4 | nibbles[1],
                nibbles[2] << 4 | nibbles[3],
            ]
        )
        body += _int(values, "frame_counter", 0).to_bytes(2, "big") + b"\x00"
        size = LONG if gps else SHORT
        return bytes([HEAD, 0, 1, _int(values, "frame_type", 1), size]) + body + bytes([TAIL])
    except (ValueError, OverflowError, struct.error) as err:
        raise EncodeError(f"value out of range: {err}") from err


def _int_or_float(values: Mapping[str, object], key: str) -> float:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{key} must be a number, got {value!r}")
    return float(value)
