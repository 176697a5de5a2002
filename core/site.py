"""Grid addressing: where a device sits in the community hierarchy, and what kind of device it is."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from core.derived import Derivation
from core.metrics import Metric

LEVELS: Final = ("district", "street", "community", "grid", "compound", "building", "unit")
"""The levels of a location path, from the widest to the narrowest."""


class DeviceKind(StrEnum):
    """What a device is for; rules and work-order routing match on it."""

    SMOKE = "smoke"
    MANHOLE = "manhole"
    BIN = "bin"
    PERIMETER = "perimeter"
    FIRE_PANEL = "fire_panel"
    ALARM_PANEL = "alarm_panel"
    METER = "meter"
    LEVEL = "level"
    GATEWAY = "gateway"
    OTHER = "other"


@dataclass(frozen=True, slots=True, order=True)
class SitePath:
    """A location in the hierarchy, e.g. `huangpu/nanjing-rd/xinhua/g03/c1/b2/u1`.

    A path may stop at any level (a compound-level bin has no building or unit).
    """

    parts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SitePath:
        """Parse `a/b/c`; raises `ValueError` for empty segments or too many levels."""
        if not text.strip("/"):
            return cls(())
        parts = tuple(text.strip("/").split("/"))
        if any(not p.strip() for p in parts):
            msg = f"empty segment in location path {text!r}"
            raise ValueError(msg)
        if len(parts) > len(LEVELS):
            msg = f"location path {text!r} has {len(parts)} levels; at most {len(LEVELS)}"
            raise ValueError(msg)
        return cls(parts)

    def __str__(self) -> str:
        return "/".join(self.parts)

    def level(self, name: str) -> str | None:
        """Return the segment at a named level (`"building"`), or `None` where the path stops earlier."""
        index = LEVELS.index(name)
        return self.parts[index] if index < len(self.parts) else None

    def truncate(self, name: str) -> SitePath:
        """Return the path cut after the named level (the scope of that level)."""
        return SitePath(self.parts[: LEVELS.index(name) + 1])

    def within(self, other: SitePath) -> bool:
        """Whether this path lies inside (or equals) `other`."""
        return self.parts[: len(other.parts)] == other.parts


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the gateway knows about a bound device, beyond its readings.

    `expected_interval_s` is the reporting interval; rules use it for NO_DATA detection.
    `derive` says how the device's raw metrics become the quantities rules reason about
    (`core.derived`); the pipeline applies it to every reading of the device.
    """

    device_id: str
    kind: DeviceKind
    location: SitePath = SitePath()
    labels: Mapping[str, str] = field(default_factory=dict)
    codec_id: str = ""
    expected_interval_s: float | None = None
    derive: tuple[Derivation, ...] = ()


TYPICAL_METRICS: Final[Mapping[DeviceKind, frozenset[Metric]]] = {
    DeviceKind.SMOKE: frozenset(
        {
            Metric.SMOKE,
            Metric.SMOKE_PCT,
            Metric.FIRE_ALARM,
            Metric.TEMPERATURE_C,
            Metric.BATTERY_PCT,
            Metric.BATTERY_V,
            Metric.LOW_BATTERY,
            Metric.TAMPER,
            Metric.FAULT,
            Metric.SELF_TEST,
            Metric.ONLINE,
        }
    ),
    DeviceKind.PERIMETER: frozenset(
        {
            Metric.CONTACT_OPEN,
            Metric.OCCUPANCY,
            Metric.INTRUSION,
            Metric.VIBRATION,
            Metric.TAMPER,
            Metric.BATTERY_PCT,
            Metric.BATTERY_V,
            Metric.LOW_BATTERY,
            Metric.ONLINE,
        }
    ),
    DeviceKind.MANHOLE: frozenset(
        {
            Metric.TILT_DEG,
            Metric.TILT_X_DEG,
            Metric.TILT_Y_DEG,
            Metric.TILT_Z_DEG,
            Metric.TILT_ALARM,
            Metric.COVER_MOVED,
            Metric.DISTANCE_MM,
            Metric.WATER_LEVEL_MM,
            Metric.TEMPERATURE_C,
            Metric.BATTERY_PCT,
            Metric.BATTERY_V,
            Metric.LOW_BATTERY,
            Metric.ONLINE,
        }
    ),
    DeviceKind.BIN: frozenset(
        {
            Metric.DISTANCE_MM,
            Metric.FILL_PCT,
            Metric.FULL,
            Metric.TEMPERATURE_C,
            Metric.FIRE_ALARM,
            Metric.TILT_ALARM,
            Metric.BATTERY_PCT,
            Metric.BATTERY_V,
            Metric.LOW_BATTERY,
            Metric.ONLINE,
        }
    ),
    DeviceKind.LEVEL: frozenset(
        {
            Metric.DISTANCE_MM,
            Metric.WATER_LEVEL_MM,
            Metric.WATER_LEAK,
            Metric.TEMPERATURE_C,
            Metric.BATTERY_PCT,
            Metric.BATTERY_V,
            Metric.ONLINE,
        }
    ),
    DeviceKind.METER: frozenset(
        {
            Metric.WATER_VOLUME_L,
            Metric.WATER_FLOW_LPH,
            Metric.WATER_LEAK,
            Metric.TAMPER,
            Metric.BATTERY_PCT,
            Metric.BATTERY_V,
            Metric.ONLINE,
        }
    ),
}
"""What a device of each kind typically reports.

The assumption for a device whose codec serves many models (Zigbee2MQTT, a Modbus register table)
and whose binding does not list `metrics`. Panels and other kinds report whatever their codec can.
"""


def bound_device(device_id: str) -> str:
    """The bound device a reading belongs to: the id itself, or a panel's for one of its parts.

    Panels report for their detectors and zones as `<panel>/<part>` (`panel-b1/zone-012`,
    `panel-b1/1-1/00000065`); bound device ids never contain `/`.
    """
    return device_id.split("/", 1)[0]


def info_of(devices: Mapping[str, DeviceInfo], device_id: str) -> DeviceInfo | None:
    """What is known of a device: its binding, or for a part of a panel the panel's binding.

    A part takes the panel's kind, place, labels, codec and derived readings, but no reporting
    interval: a detector behind a panel reports on change, and the panel's silence is the panel's.
    """
    info = devices.get(device_id)
    if info is not None or "/" not in device_id:
        return info
    parent = devices.get(bound_device(device_id))
    if parent is None:
        return None
    return dataclasses.replace(parent, device_id=device_id, expected_interval_s=None)
