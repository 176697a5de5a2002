"""Dragino DDS75-LB ultrasonic distance sensor (the newer LDDS75), via ChirpStack.

- fPort 2: the 8-byte distance frame of `firmware_adapters.dragino`. When bit 4 of byte 0 is set the
  device is in multi-distance mode, decoded as Dragino's own decoder does
  (dragino-end-node-decoder `e81cc58`, `DDS75-LB/DDS75-LB_ChirpstackV4_Decoder.txt`): battery mV
  `(b0 << 8 | b1) & 0x0FFF`; bytes 2-7 carry nothing; from byte 8, big-endian u16 distances in mm
  (at most 20, stopping 4 bytes before the end); the last 4 bytes are the interrupt flag, the
  DS18B20 temperature (int16 / 10) and the sensor flag. Readings: `battery_v`, `temperature_c`, and
  `distance_mm` of the frame's last sample; attributes `distances_mm` (every sample, comma
  separated, in frame order), `distance_count`, `interrupt_flag`, `sensor_flag`.
- fPort 5: device status, 7 bytes: sensor model (0x27 = DDS75-LB), firmware `x.y.z` (bytes 1-2, one
  nibble each after the first), frequency band code, sub-band (0xFF = none), battery mV. Readings:
  `battery_v`; attributes `sensor_model`, `firmware_version`, `frequency_band`, `sub_band`.
- fPorts 3 (datalog) and 6 (detect-mode data) are `unsupported`.

Encoder keys: those of the distance frame; or, with `status: true`, `battery_v`, `firmware_version`
(`"1.2.3"`), `frequency_band` (int), `sub_band` (int or omitted).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.dragino import (
    DISTANCE_FPORT,
    DISTANCE_METRICS,
    decode_distance,
    encode_distance,
    number,
    unsupported,
)
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.fields import Decoded
from firmware_adapters.lorawan import (
    RADIO_METRICS,
    chirpstack_aware,
    finish,
    fport_of,
    require_length,
)

ID = "lorawan.dragino.dds75_lb"
STATUS_FPORT = 5
MODEL = 0x27
MULTI_DISTANCE = 0x10
MULTI_HEAD, MULTI_TAIL, MAX_DISTANCES = 8, 4, 20
MULTI_BATTERY_MASK = 0x0FFF
_STATUS = struct.Struct(">BHBBH")
_TAIL = struct.Struct(">BhB")


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one uplink."""
    port = fport_of(frame, ID, (DISTANCE_FPORT, 3, STATUS_FPORT, 6))
    if port in {3, 6}:
        raise unsupported(frame, ID, f"fport {port} (datalog / detect mode) is not decoded")
    if port == STATUS_FPORT:
        return _status(frame)
    if frame.payload and frame.payload[0] & MULTI_DISTANCE:
        return _multi_distance(frame)
    return decode_distance(frame, ID)


def _multi_distance(frame: RawFrame) -> DecodeResult:
    buf = frame.payload
    if len(buf) < MULTI_HEAD + MULTI_TAIL:
        raise DecodeError(
            ID,
            DecodeReason.TRUNCATED,
            f"multi-distance frame of {len(buf)} bytes; at least {MULTI_HEAD + MULTI_TAIL}",
            buf,
        )
    end = min(MULTI_HEAD + 2 * MAX_DISTANCES, len(buf) - MULTI_TAIL)
    # As the vendor decoder: pairs from byte 8 while the pair starts before `end`.
    distances = [buf[i] << 8 | buf[i + 1] for i in range(MULTI_HEAD, end, 2)]
    interrupt, temperature, sensor_flag = _TAIL.unpack_from(buf, len(buf) - MULTI_TAIL)
    out = Decoded()
    out.put(Metric.BATTERY_V, ((buf[0] << 8 | buf[1]) & MULTI_BATTERY_MASK) / 1000)
    if distances:
        out.put(Metric.DISTANCE_MM, distances[-1])
    out.put("distances_mm", ",".join(map(str, distances)))
    out.put("distance_count", len(distances))
    out.put(Metric.TEMPERATURE_C, temperature / 10)
    out.put("interrupt_flag", interrupt)
    out.put("sensor_flag", sensor_flag)
    return finish(frame, ID, out)


def _status(frame: RawFrame) -> DecodeResult:
    require_length(frame, ID, (_STATUS.size,))
    model, firmware, band, sub_band, battery_mv = _STATUS.unpack(frame.payload)
    out = Decoded()
    out.put("sensor_model", "DDS75-LB" if model == MODEL else f"0x{model:02x}")
    out.put("firmware_version", f"{firmware >> 8 & 0x0F}.{firmware >> 4 & 0x0F}.{firmware & 0x0F}")
    out.put("frequency_band", band)
    out.put("sub_band", "NULL" if sub_band == 0xFF else sub_band)  # noqa: PLR2004
    out.put(Metric.BATTERY_V, battery_mv / 1000)
    return finish(frame, ID, out)


def encode(values: Mapping[str, object]) -> bytes:
    """Build a distance (fPort 2) or, with `status: true`, a status (fPort 5) payload."""
    if not values.get("status"):
        return encode_distance(values)
    version = str(values.get("firmware_version", "1.0.0")).split(".")
    if len(version) != 3 or not all(v.isdigit() and int(v) < 16 for v in version):  # noqa: PLR2004
        raise EncodeError(f"firmware_version must be x.y.z with digits < 16, got {version}")
    major, minor, patch = (int(v) for v in version)
    sub_band = values.get("sub_band", 0xFF)
    try:
        return _STATUS.pack(
            MODEL,
            major << 8 | minor << 4 | patch,
            round(number(values, "frequency_band", 1)),
            0xFF if sub_band in {None, "NULL"} else round(number(values, "sub_band")),
            round(number(values, Metric.BATTERY_V.value) * 1000),
        )
    except struct.error as err:
        raise EncodeError(f"value out of range: {err}") from err


CODEC = Codec(
    ID,
    DeviceClass.BIN,
    "Dragino DDS75-LB LoRaWAN ultrasonic distance sensor",
    chirpstack_aware(ID, decode),
    encode,
    vectors_beside(__file__),
    metrics=DISTANCE_METRICS | RADIO_METRICS,  # the status frame's battery_v is among them
)
