"""Dragino LDS02 door sensor (perimeter), via ChirpStack, fPort 10.

10-byte uplink (Dragino `LDS02_Decoder_1.8.2`), big-endian:
byte 0 bit 7 door open, bit 6 water leak; battery mV = `(b0 << 8 | b1) & 0x3FFF`; byte 2 mode (1 door
counting, 2 water-leak counting, 3 alarm mode); bytes 3-5 event count (u24); bytes 6-8 duration of the
last event in minutes (u24); byte 9 bit 0 alarm (door open longer than configured).

Readings: `battery_v`; `contact_open` (modes 1 and 3) or `water_leak` (mode 2). Attributes: `mode`,
`open_count` + `last_open_minutes` (or `leak_count` + `last_leak_minutes`), `alarm`.
EDC mode (the device reports after a set number of events) sends 5 bytes on fPort 7, decoded as
the vendor decoder does (dragino-end-node-decoder `e81cc58`, `LDS02/LDS02_Decoder_1.8.2.txt`):
battery as above, byte 0 bit 7 door open, bytes 2-4 the event count (u24). Readings `battery_v`,
`contact_open`; attribute `edc_count`.
The TTN example `0b880100250001` (7 bytes, for TTN's own decoder) is too short for the vendor's
layout and is a `truncated` error.

Encoder keys: `battery_v`, `contact_open` or `water_leak`, `mode` (1), `open_count`/`leak_count`,
`last_open_minutes`/`last_leak_minutes`, `alarm`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.dragino import number
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.fields import Decoded
from firmware_adapters.lorawan import (
    RADIO_METRICS,
    chirpstack_aware,
    finish,
    fport_of,
    require_length,
)

ID = "lorawan.dragino.lds02"
FPORT = 10
EDC_FPORT = 7
EDC_SIZE = 5
LEAK_MODE = 2
MODES = (1, 2, 3)
DOOR_OPEN = 0x80
WATER_LEAK = 0x40
U24 = 0xFFFFFF
BATTERY_MASK = 0x3FFF
METRICS: Final[frozenset[Metric]] = frozenset(
    {Metric.BATTERY_V, Metric.CONTACT_OPEN, Metric.WATER_LEAK}
)
"""What `decode` emits (the radio metrics come on top, from `finish`)."""


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one uplink."""
    if fport_of(frame, ID, (FPORT, EDC_FPORT)) == EDC_FPORT:
        return _edc(frame)
    require_length(frame, ID, (10,))
    buf = frame.payload
    mode = buf[2]
    if mode not in MODES:
        raise DecodeError(ID, DecodeReason.RANGE, f"undefined mode {mode}", buf)
    out = Decoded()
    out.put(Metric.BATTERY_V, ((buf[0] << 8 | buf[1]) & BATTERY_MASK) / 1000)
    out.put("mode", mode)
    what = "leak" if mode == LEAK_MODE else "open"
    if mode == LEAK_MODE:
        out.put(Metric.WATER_LEAK, bool(buf[0] & WATER_LEAK))
    else:
        out.put(Metric.CONTACT_OPEN, bool(buf[0] & DOOR_OPEN))
    out.put(f"{what}_count", int.from_bytes(buf[3:6], "big"))
    out.put(f"last_{what}_minutes", int.from_bytes(buf[6:9], "big"))
    out.put("alarm", bool(buf[9] & 1))
    return finish(frame, ID, out)


def _edc(frame: RawFrame) -> DecodeResult:
    require_length(frame, ID, (EDC_SIZE,))
    buf = frame.payload
    out = Decoded()
    out.put(Metric.BATTERY_V, ((buf[0] << 8 | buf[1]) & BATTERY_MASK) / 1000)
    out.put(Metric.CONTACT_OPEN, bool(buf[0] & DOOR_OPEN))
    out.put("edc_count", int.from_bytes(buf[2:5], "big"))
    return finish(frame, ID, out)


def _u24(values: Mapping[str, object], key: str) -> bytes:
    value = round(number(values, key, 0))
    if not 0 <= value <= U24:
        raise EncodeError(f"{key} must fit 24 bits, got {value}")
    return value.to_bytes(3, "big")


def encode(values: Mapping[str, object]) -> bytes:
    """Build a 10-byte uplink from the values named in the module docstring."""
    mode = round(number(values, "mode", 1))
    if mode not in MODES:
        raise EncodeError(f"mode must be one of {MODES}")
    battery_mv = round(number(values, Metric.BATTERY_V.value) * 1000)
    if not 0 <= battery_mv <= BATTERY_MASK:
        raise EncodeError(f"battery_v out of range: {battery_mv} mV")
    flags = DOOR_OPEN if values.get(Metric.CONTACT_OPEN.value) else 0
    flags |= WATER_LEAK if values.get(Metric.WATER_LEAK.value) else 0
    what = "leak" if mode == LEAK_MODE else "open"
    head = (flags << 8 | battery_mv).to_bytes(2, "big") + bytes([mode])
    tail = bytes([1 if values.get("alarm") else 0])
    return head + _u24(values, f"{what}_count") + _u24(values, f"last_{what}_minutes") + tail


CODEC = Codec(
    ID,
    DeviceClass.PERIMETER,
    "Dragino LDS02 LoRaWAN door sensor",
    chirpstack_aware(ID, decode),
    encode,
    vectors_beside(__file__),
    metrics=METRICS | RADIO_METRICS,
)
