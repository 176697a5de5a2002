"""Milesight WS202 PIR motion and light sensor, via ChirpStack, fPort 85.

Readings: `battery_pct`, `occupancy` (PIR triggered). Attributes: `pir`, `daylight`.

`daylight` uses the names of the README table (0 `dark`, 1 `light`), the vendor protocol document;
the current official decoder says `dim`/`bright` for the same bytes (DEVICE_PROTOCOLS.md §7.2).

Encoder keys: `battery_pct`, `occupancy` (or `pir`), `daylight` (`dark`/`light`), `sn` (12 hex digits).
"""

from __future__ import annotations

from core.metrics import Metric
from firmware_adapters.codec import DeviceClass
from firmware_adapters.fields import Choice, u8
from firmware_adapters.milesight import WS_ATTRIBUTES, tlv_codec

ID = "lorawan.milesight.ws202"
TABLE = {
    **WS_ATTRIBUTES,
    (0x01, 0x75): u8(Metric.BATTERY_PCT),
    (0x03, 0x00): Choice("pir", {0: "normal", 1: "trigger"}, Metric.OCCUPANCY, ("trigger",)),
    (0x04, 0x00): Choice("daylight", {0: "dark", 1: "light"}),
}


CODEC = tlv_codec(
    ID, DeviceClass.PERIMETER, "Milesight WS202 PIR motion and light sensor", TABLE, __file__
)
