"""Turn decoded GB/T 26875.3 information objects into canonical readings and attributes.

Sub-device ids (documented contract): a building fire-protection system is
`<frame device>/<system type>-<system address>` (e.g. `dev/1-3`), one of its components
`<frame device>/<system type>-<system address>/<component address as 8 hex digits>` (e.g.
`dev/1-3/000600d9`); the transmission device's own status belongs to the frame device itself.
Attributes are keyed `<sub-device label>.<field>` (`uitd.<field>` for the transmission device).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.metrics import Metric, quality_of
from core.types import Reading, Scalar
from firmware_adapters.gbt26875.frame import CODEC_ID, decode_time_tag
from firmware_adapters.gbt26875.objects import InfoObject
from firmware_adapters.gbt26875.semantics import (
    ANALOG_TYPES,
    OPERATION_BITS,
    STATUS_BITS,
    UITD_OPERATION_BITS,
    flag_names,
    status_readings,
)

_SYSTEM_TYPES = frozenset({1, 4, 5, 6, 8})
_COMPONENT_TYPES = frozenset({2, 3, 7})


def object_label(obj: InfoObject) -> str:
    """Return the sub-device label of an object (`""` for the transmission device itself)."""
    system = f"{obj.int_field('system_type')}-{obj.int_field('system_address')}"
    if obj.type in _COMPONENT_TYPES:
        return f"{system}/{obj.int_field('component_address'):08x}"
    if obj.type in _SYSTEM_TYPES:
        return system
    return ""


class ObjectMapper:
    """Collects readings, attributes and warnings for the objects of one frame."""

    def __init__(self, device_id: str, received_at: datetime, offset: timedelta) -> None:
        """Map objects of a frame from `device_id` received at `received_at`."""
        self.device_id = device_id
        self.received_at = received_at
        self.offset = offset
        self.readings: list[Reading] = []
        self.attributes: dict[str, Scalar] = {}
        self.warnings: list[str] = []

    def add(self, obj: InfoObject) -> None:
        """Map one object."""
        label = object_label(obj)
        device = f"{self.device_id}/{label}" if label else self.device_id
        key = label or "uitd"
        ts = self._time(obj, key)
        if obj.type in STATUS_BITS:
            word = obj.int_field("status")
            bits = STATUS_BITS[obj.type]
            self._put(f"{key}.status", word)
            self._put(f"{key}.flags", ",".join(flag_names(word, bits)))
            for metric, value in status_readings(word, bits).items():
                self._reading(device, metric, value, ts)
        if "component_type" in obj.fields:
            self._put(f"{key}.component_type", obj.int_field("component_type"))
        if obj.description is not None:
            self._put(f"{key}.description", obj.description)
        if "analog_type" in obj.fields:
            self._analog(obj, device, key, ts)
        if "operation" in obj.fields:
            bits = UITD_OPERATION_BITS if obj.type == 24 else OPERATION_BITS  # noqa: PLR2004
            flags = obj.int_field("operation")
            self._put(f"{key}.operation", ",".join(n for b, n in bits.items() if flags >> b & 1))
            self._put(f"{key}.operator", obj.int_field("operator"))
        if "major" in obj.fields:
            version = f"{obj.int_field('major')}.{obj.int_field('minor')}"
            self._put(f"{key}.software_version", version)
        clock = obj.fields.get("clock")
        if isinstance(clock, bytes):
            moment = decode_time_tag(clock, self.offset)
            self._put(f"{key}.clock", moment.isoformat() if moment else clock.hex())

    def _analog(self, obj: InfoObject, device: str, key: str, ts: datetime) -> None:
        analog = ANALOG_TYPES.get(obj.int_field("analog_type"))
        raw = obj.int_field("analog_raw")
        if analog is None:
            self._put(f"{key}.analog_{obj.int_field('analog_type')}", raw)
            return
        value = round(raw * analog.scale, 6)
        if analog.metric is None:
            self._put(f"{key}.{analog.name}", value)
        else:
            self._reading(device, analog.metric, value, ts)

    def _time(self, obj: InfoObject, key: str) -> datetime:
        if obj.time_tag is None:
            return self.received_at
        moment = decode_time_tag(obj.time_tag, self.offset)
        if moment is None:
            self.warnings.append(
                f"{key}: invalid time tag {obj.time_tag.hex()}, used reception time"
            )
            return self.received_at
        return moment

    def _reading(self, device: str, metric: Metric, value: float | bool, ts: datetime) -> None:  # noqa: FBT001
        quality = quality_of(metric, value)
        self.readings.append(Reading(device, metric, value, ts, quality, CODEC_ID))

    def _put(self, key: str, value: Scalar) -> None:
        slot, n = key, 1
        while slot in self.attributes:
            n += 1
            slot = f"{key}#{n}"
        self.attributes[slot] = value
