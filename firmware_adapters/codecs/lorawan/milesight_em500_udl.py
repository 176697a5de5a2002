"""Milesight EM500-UDL ultrasonic distance sensor, via ChirpStack, fPort 85.

Readings: `battery_pct`, `distance_mm`; history records (`20 CE`: unix time u32 + distance u16) become
`distance_mm` readings stamped with the device's own time. The `83 E9` alarm channel carries distance
and mutation in tenths of a millimetre (the vendor decoder divides by 10 on this channel only); its
attributes are `distance_alarm` (`normal`, `threshold_alarm`, `mutation_alarm`) and
`distance_mutation_mm`.

Encoder keys: `battery_pct`, `distance_mm`, `distance_alarm` + `distance_mutation_mm` (alarm
channel), `history` (a list of `(unix_seconds, distance_mm)` pairs), `sn`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime

from core.metrics import Metric
from firmware_adapters.codec import DeviceClass
from firmware_adapters.errors import EncodeError
from firmware_adapters.fields import Choice, Decoded, Field, Group, u8, u16le
from firmware_adapters.milesight import EM_ATTRIBUTES, encode_tlv, tlv_codec

ID = "lorawan.milesight.em500_udl"
_RECORD = struct.Struct("<IH")


class HistoryRecord(Field):
    """`20 CE`: one stored measurement with the device's timestamp."""

    size = _RECORD.size
    keys = ("history",)

    @property
    def metrics(self) -> frozenset[Metric]:
        """The stored distance."""
        return frozenset({Metric.DISTANCE_MM})

    def read(self, buf: bytes, at: int, out: Decoded) -> None:
        """Append a device-stamped distance reading."""
        stamp, distance = _RECORD.unpack_from(buf, at)
        out.timed.append((Metric.DISTANCE_MM, distance, datetime.fromtimestamp(stamp, UTC)))

    def write(self, values: Mapping[str, object]) -> bytes:
        """Write the first history pair (`encode` writes one record per pair)."""
        history = values.get("history")
        if not isinstance(history, list | tuple) or not history:
            raise EncodeError("history must be a non-empty list of (unix_seconds, distance_mm)")
        stamp, distance = history[0]
        try:
            return _RECORD.pack(int(stamp), int(distance))
        except struct.error as err:
            raise EncodeError(f"history record {history[0]!r} does not fit") from err


ALARM = {0: "normal", 1: "threshold_alarm", 2: "mutation_alarm"}
TABLE: dict[tuple[int, int], Field] = {
    **EM_ATTRIBUTES,
    (0x01, 0x75): u8(Metric.BATTERY_PCT),
    (0x03, 0x82): u16le(Metric.DISTANCE_MM),
    (0x83, 0xE9): Group(
        u16le(Metric.DISTANCE_MM, 0.1),
        u16le("distance_mutation_mm", 0.1),
        Choice("distance_alarm", ALARM),
    ),
    (0x20, 0xCE): HistoryRecord(),
}


def encode(values: Mapping[str, object]) -> bytes:
    """Build an uplink payload from the values named in the module docstring."""
    rest = {k: v for k, v in values.items() if k != "history"}
    history = values.get("history") or []
    if not isinstance(history, list | tuple):
        raise EncodeError("history must be a list")
    records = b"".join(
        b"\x20\xce" + TABLE[0x20, 0xCE].write({"history": [pair]}) for pair in history
    )
    return (encode_tlv(rest, TABLE) if rest else b"") + records


CODEC = tlv_codec(
    ID,
    DeviceClass.BIN,
    "Milesight EM500-UDL ultrasonic distance sensor",
    TABLE,
    __file__,
    encode=encode,
)
