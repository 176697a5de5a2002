"""Milesight EM310-UDL ultrasonic distance sensor (bin level), via ChirpStack, fPort 85.

Readings: `battery_pct`, `distance_mm`, `tilt_alarm` (the device reports `position: tilt` when it is
no longer mounted straight). Attributes: `position` (`normal`/`tilt`) and the common `FF xx` device
attributes. Fill level is derived from the distance by rules/config, not here.

Encoder keys: `battery_pct`, `distance_mm`, `position` (or `tilt_alarm`), `sn` (16 hex digits).
"""

from __future__ import annotations

from core.metrics import Metric
from firmware_adapters.codec import DeviceClass
from firmware_adapters.fields import Choice, u8, u16le
from firmware_adapters.milesight import EM_ATTRIBUTES, tlv_codec

ID = "lorawan.milesight.em310_udl"
TABLE = {
    **EM_ATTRIBUTES,
    (0x01, 0x75): u8(Metric.BATTERY_PCT),
    (0x03, 0x82): u16le(Metric.DISTANCE_MM),
    (0x04, 0x00): Choice("position", {0: "normal", 1: "tilt"}, Metric.TILT_ALARM, ("tilt",)),
}


CODEC = tlv_codec(
    ID, DeviceClass.BIN, "Milesight EM310-UDL ultrasonic distance sensor", TABLE, __file__
)
