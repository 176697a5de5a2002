"""Milesight EM320-TILT three-axis tilt sensor, via ChirpStack, fPort 85.

`03 D4` holds three int16 LE words; bit 0 of each word is that axis's threshold flag and bits 15..1
are the angle in hundredths of a degree (arithmetic shift, sign kept). Readings: `battery_pct`,
`tilt_x_deg`, `tilt_y_deg`, `tilt_z_deg`, `tilt_alarm` (any axis flagged). Attributes:
`threshold_x`, `threshold_y`, `threshold_z` (booleans).

Encoder keys: `battery_pct`, `tilt_x_deg`, `tilt_y_deg`, `tilt_z_deg`, `threshold_x`, `threshold_y`,
`threshold_z`, `sn`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from core.metrics import Metric
from firmware_adapters.codec import DeviceClass
from firmware_adapters.errors import EncodeError
from firmware_adapters.fields import Decoded, Field, u8
from firmware_adapters.milesight import EM_ATTRIBUTES, encode_tlv, tlv_codec

ID = "lorawan.milesight.em320_tilt"
_WORDS = struct.Struct("<hhh")
_AXES = (
    (Metric.TILT_X_DEG, "threshold_x"),
    (Metric.TILT_Y_DEG, "threshold_y"),
    (Metric.TILT_Z_DEG, "threshold_z"),
)


class FlaggedAngles(Field):
    """Three words of `angle << 1 | flag`."""

    size = _WORDS.size
    keys = (*(a for a, _ in _AXES), *(f for _, f in _AXES))

    @property
    def metrics(self) -> frozenset[Metric]:
        """The three angles, and `tilt_alarm` derived from the flags."""
        return super().metrics | {Metric.TILT_ALARM}

    def read(self, buf: bytes, at: int, out: Decoded) -> None:
        """Split each word into its angle and flag."""
        any_flag = False
        for word, (angle, flag) in zip(_WORDS.unpack_from(buf, at), _AXES, strict=True):
            out.put(angle, round((word >> 1) / 100, 2))
            out.put(flag, bool(word & 1))
            any_flag |= bool(word & 1)
        out.put(Metric.TILT_ALARM, any_flag)

    def write(self, values: Mapping[str, object]) -> bytes:
        """Pack the angles and flags."""
        words = []
        for angle, flag in _AXES:
            value = values.get(angle.value)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise EncodeError(f"{angle.value} must be a number")
            words.append(round(value * 100) << 1 | bool(values.get(flag)))
        try:
            return _WORDS.pack(*words)
        except struct.error as err:
            raise EncodeError(f"angles out of range: {words}") from err


TABLE: dict[tuple[int, int], Field] = {
    **EM_ATTRIBUTES,
    (0x01, 0x75): u8(Metric.BATTERY_PCT),
    (0x03, 0xD4): FlaggedAngles(),
}


def encode(values: Mapping[str, object]) -> bytes:
    """Build an uplink payload from the values named in the module docstring."""
    full = dict(values)
    if all(a.value in full for a, _ in _AXES):
        for _, flag in _AXES:
            full.setdefault(flag, False)
    return encode_tlv(full, TABLE)


CODEC = tlv_codec(
    ID,
    DeviceClass.MANHOLE,
    "Milesight EM320-TILT three-axis tilt sensor",
    TABLE,
    __file__,
    encode=encode,
)
