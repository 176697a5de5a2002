"""Milesight EM400-MUD multi-purpose ultrasonic distance sensor, via ChirpStack, fPort 85.

Readings: `battery_pct`, `temperature_c`, `distance_mm`, `tilt_alarm` (`position: tilt`).
Attributes: `position`, `temperature_alarm` and `distance_alarm` (`threshold_alarm` /
`threshold_alarm_release`, sent on the `83 67` / `84 82` alarm channels) and the common `FF xx` ones.
The NB-IoT variant's `06 88` location channel does not occur on LoRaWAN and is an `unknown_type`.

Encoder keys: `battery_pct`, `temperature_c`, `distance_mm`, `position` (or `tilt_alarm`),
`temperature_alarm`, `distance_alarm` (with both alarm keys the alarm channels are used), `sn`.
"""

from __future__ import annotations

from firmware_adapters.codec import DeviceClass
from firmware_adapters.codecs.lorawan.milesight_em400_udl import TABLE
from firmware_adapters.milesight import tlv_codec

ID = "lorawan.milesight.em400_mud"
# The MUD variant differs from the UDL in its probe and range, not in its payload.


CODEC = tlv_codec(
    ID,
    DeviceClass.BIN,
    "Milesight EM400-MUD multi-purpose ultrasonic distance sensor",
    TABLE,
    __file__,
)
