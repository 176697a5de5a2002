"""Milesight EM310-TILT three-axis tilt sensor, via ChirpStack, fPort 85.

Usable on manhole covers. Readings: `battery_pct`, `tilt_x_deg`, `tilt_y_deg`, `tilt_z_deg`
(int16 / 100), `tilt_alarm` (any axis past its threshold). Attributes: `threshold_x`, `threshold_y`,
`threshold_z` (booleans, the per-axis flags of the status byte).

Encoder keys: `battery_pct`, `tilt_x_deg`, `tilt_y_deg`, `tilt_z_deg`, `threshold_x`, `threshold_y`,
`threshold_z` (booleans).
"""

from __future__ import annotations

from core.metrics import Metric
from firmware_adapters.codec import DeviceClass
from firmware_adapters.fields import Bits, Group, s16le, u8
from firmware_adapters.milesight import EM_ATTRIBUTES, tlv_codec

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


CODEC = tlv_codec(
    ID, DeviceClass.MANHOLE, "Milesight EM310-TILT three-axis tilt sensor", TABLE, __file__
)
