"""Milesight EM310-UDL ultrasonic distance sensor (bin level), via ChirpStack, fPort 85.

Readings: `battery_pct`, `distance_mm`, `tilt_alarm` (the device reports `position: tilt` when it is
no longer mounted straight). Attributes: `position` (`normal`/`tilt`) and the common `FF xx` device
attributes. Fill level is derived from the distance by rules/config, not here.

Encoder keys: `battery_pct`, `distance_mm`, `position` (or `tilt_alarm`), `sn` (16 hex digits).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.fields import Choice, u8, u16le
from firmware_adapters.lorawan import chirpstack_aware
from firmware_adapters.milesight import EM_ATTRIBUTES, decode_tlv, encode_tlv

ID = "lorawan.milesight.em310_udl"
TABLE = {
    **EM_ATTRIBUTES,
    (0x01, 0x75): u8(Metric.BATTERY_PCT),
    (0x03, 0x82): u16le(Metric.DISTANCE_MM),
    (0x04, 0x00): Choice("position", {0: "normal", 1: "tilt"}, Metric.TILT_ALARM, ("tilt",)),
}


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one uplink."""
    return decode_tlv(frame, ID, TABLE)


def encode(values: Mapping[str, object]) -> bytes:
    """Build an uplink payload from the values named in the module docstring."""
    return encode_tlv(values, TABLE)


CODEC = Codec(
    ID,
    DeviceClass.BIN,
    "Milesight EM310-UDL ultrasonic distance sensor",
    chirpstack_aware(ID, decode),
    encode,
    vectors_beside(__file__),
)
