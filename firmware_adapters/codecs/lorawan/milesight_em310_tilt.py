"""Milesight EM310-TILT three-axis tilt sensor, via ChirpStack, fPort 85.

Usable on manhole covers. Readings: `battery_pct`, `tilt_x_deg`, `tilt_y_deg`, `tilt_z_deg`
(int16 / 100), `tilt_alarm` (any axis past its threshold). Attributes: `threshold_x`, `threshold_y`,
`threshold_z` (booleans, the per-axis flags of the status byte).

Encoder keys: `battery_pct`, `tilt_x_deg`, `tilt_y_deg`, `tilt_z_deg`, `threshold_x`, `threshold_y`,
`threshold_z` (booleans).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.fields import Bits, Group, s16le, u8
from firmware_adapters.lorawan import chirpstack_aware
from firmware_adapters.milesight import EM_ATTRIBUTES, decode_tlv, encode_tlv

ID = "lorawan.milesight.em310_tilt"
TABLE = {
    **EM_ATTRIBUTES,
    (0x01, 0x75): u8(Metric.BATTERY_PCT),
    (0x03, 0xCF): Group(
        s16le(Metric.TILT_X_DEG, 0.01),
        s16le(Metric.TILT_Y_DEG, 0.01),
        s16le(Metric.TILT_Z_DEG, 0.01),
        Bits({0: "threshold_x", 1: "threshold_y", 2: "threshold_z"}, Metric.TILT_ALARM),
    ),
}


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one uplink."""
    return decode_tlv(frame, ID, TABLE)


def encode(values: Mapping[str, object]) -> bytes:
    """Build an uplink payload from the values named in the module docstring."""
    return encode_tlv(values, TABLE)


CODEC = Codec(
    ID,
    DeviceClass.MANHOLE,
    "Milesight EM310-TILT three-axis tilt sensor",
    chirpstack_aware(ID, decode),
    encode,
    vectors_beside(__file__),
)
