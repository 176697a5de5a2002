"""Grid addressing: where a device sits in the community hierarchy, and what kind of device it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

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
    """

    device_id: str
    kind: DeviceKind
    location: SitePath = SitePath()
    labels: Mapping[str, str] = field(default_factory=dict)
    codec_id: str = ""
    expected_interval_s: float | None = None
