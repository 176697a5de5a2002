"""Zigbee2MQTT-style benchmark payloads and the naming of benchmark devices.

Every message carries its device's sequence number twice: as `seq` (what ThingsBoard's MQTT connector
maps to a time series) and as `illuminance` (Steward forwards only catalog metrics, and the generic
Zigbee2MQTT codec maps `illuminance` to `illuminance_lux`; values beyond the catalog range are kept
and flagged `out_of_range`). `last_seen` is the send time in epoch milliseconds, as Zigbee2MQTT
writes it with `last_seen: epoch`. Smoke detectors send `smoke` true and false alternately so that
every other message fires an alarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

BASE_TOPIC: Final = "zigbee2mqtt"
SENSOR_PREFIX: Final = "bench_"
SMOKE_PREFIX: Final = "smoke_"


@dataclass(frozen=True)
class DeviceSet:
    """The benchmark's devices: `sensors` light sensors and `smoke` smoke detectors."""

    sensors: int = 200
    smoke: int = 0

    @property
    def count(self) -> int:
        """All devices."""
        return self.sensors + self.smoke

    def friendly_name(self, index: int) -> str:
        """Zigbee2MQTT friendly name of device `index` (sensors first, then smoke detectors)."""
        if index < self.sensors:
            return f"{SENSOR_PREFIX}{index:04d}"
        return f"{SMOKE_PREFIX}{index - self.sensors:04d}"

    def device_id(self, index: int) -> str:
        """Gateway device id of device `index` (the friendly name with dashes)."""
        return self.friendly_name(index).replace("_", "-")

    def topic(self, index: int) -> str:
        """Zigbee2MQTT state topic of device `index`."""
        return f"{BASE_TOPIC}/{self.friendly_name(index)}"

    def is_smoke(self, index: int) -> bool:
        """Whether device `index` is a smoke detector."""
        return index >= self.sensors

    def index_of(self, name: str) -> int | None:
        """Device index of a friendly name or device id; None for names that are not ours."""
        for prefix, offset in ((SENSOR_PREFIX, 0), (SMOKE_PREFIX, self.sensors)):
            for form in (prefix, prefix.replace("_", "-")):
                if name.startswith(form):
                    digits = name[len(form) :]
                    if digits.isdigit() and int(digits) < (
                        self.sensors if offset == 0 else self.smoke
                    ):
                        return offset + int(digits)
        return None


def sensor_payload(seq: int, sent_ms: int) -> bytes:
    """State of a light sensor: sequence number as `seq` and `illuminance`, send time in ms.

    Formatted directly (the same bytes as compact `json.dumps`): the generator makes tens of
    thousands a second and must not be what limits a run.
    """
    return b'{"illuminance":%d,"seq":%d,"linkquality":87,"last_seen":%d}' % (seq, seq, sent_ms)


def smoke_payload(seq: int, sent_ms: int) -> bytes:
    """State of a smoke detector: smoke on odd sequence numbers, so every other message alarms."""
    smoke = b"true" if seq % 2 == 1 else b"false"
    return b'{"smoke":%s,"battery":97,"seq":%d,"last_seen":%d}' % (smoke, seq, sent_ms)


def payload(devices: DeviceSet, index: int, seq: int, sent_ms: int) -> bytes:
    """The payload device `index` sends as its `seq`-th message."""
    if devices.is_smoke(index):
        return smoke_payload(seq, sent_ms)
    return sensor_payload(seq, sent_ms)
