"""Milesight EM400-UDL ultrasonic distance sensor, via ChirpStack, fPort 85.

Readings: `battery_pct`, `temperature_c`, `distance_mm`, `tilt_alarm` (`position: tilt`).
Attributes: `position`, `temperature_alarm` and `distance_alarm` (`threshold_alarm` /
`threshold_alarm_release`, sent on the `83 67` / `84 82` alarm channels) and the common `FF xx` ones.
The NB-IoT variant's `06 88` location channel does not occur on LoRaWAN and is an `unknown_type`.

Encoder keys: `battery_pct`, `temperature_c`, `distance_mm`, `position` (or `tilt_alarm`),
`temperature_alarm`, `distance_alarm` (with both alarm keys the alarm channels are used), `sn`.
"""

from __future__ import annotations

from core.metrics import Metric
from firmware_adapters.codec import DeviceClass
from firmware_adapters.fields import Choice, Group, s16le, u8, u16le
from firmware_adapters.milesight import EM_ATTRIBUTES, THRESHOLD_ALARM, tlv_codec

ID = "lorawan.milesight.em400_udl"
TABLE = {
    **EM_ATTRIBUTES,
    (0x01, 0x75): u8(Metric.BATTERY_PCT),
    (0x03, 0x67): s16le(Metric.TEMPERATURE_C, 0.1),
    (0x04, 0x82): u16le(Metric.DISTANCE_MM),
    (0x05, 0x00): Choice("position", {0: "normal", 1: "tilt"}, Metric.TILT_ALARM, ("tilt",)),
    (0x83, 0x67): Group(
        s16le(Metric.TEMPERATURE_C, 0.1), Choice("temperature_alarm", THRESHOLD_ALARM)
    ),
    (0x84, 0x82): Group(u16le(Metric.DISTANCE_MM), Choice("distance_alarm", THRESHOLD_ALARM)),
}


CODEC = tlv_codec(
    ID, DeviceClass.BIN, "Milesight EM400-UDL ultrasonic distance sensor", TABLE, __file__
)
