"""Milesight WS301 magnetic door/window contact, via ChirpStack, fPort 85.

Readings: `battery_pct`, `contact_open`, `tamper` (true when the device is taken off its mount,
`tamper_status: uninstalled`). The serial number is `FF 08` (6 bytes).

The README example `017564 030001 040001` claims `tamper_status: installed`, but the README table and
the official decoder both say 1 = `uninstalled` (DEVICE_PROTOCOLS.md §7.1): we decode 1 as tamper.

Encoder keys: `battery_pct`, `contact_open` (or `magnet_status`), `tamper` (or `tamper_status`), `sn` (12 hex digits).
"""

from __future__ import annotations

from core.metrics import Metric
from firmware_adapters.codec import DeviceClass
from firmware_adapters.fields import Choice, u8
from firmware_adapters.milesight import WS_ATTRIBUTES, tlv_codec

ID = "lorawan.milesight.ws301"
TABLE = {
    **WS_ATTRIBUTES,
    (0x01, 0x75): u8(Metric.BATTERY_PCT),
    (0x03, 0x00): Choice("magnet_status", {0: "close", 1: "open"}, Metric.CONTACT_OPEN, ("open",)),
    (0x04, 0x00): Choice(
        "tamper_status", {0: "installed", 1: "uninstalled"}, Metric.TAMPER, ("uninstalled",)
    ),
}


CODEC = tlv_codec(
    ID, DeviceClass.PERIMETER, "Milesight WS301 magnetic door/window contact", TABLE, __file__
)
