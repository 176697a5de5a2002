"""Small parsers for rule files: durations and daily time ranges (YAML is read by `core.yaml_located`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final

_DURATION: Final = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))+$")
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_HHMM: Final = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
MAX_DURATION_S: Final = 365 * 86_400.0
"""The longest duration a rule or rule test may name (365d)."""


def parse_duration(value: object) -> float:
    """Return seconds for `90`, `90s`, `10m`, `1h30m`, `2d`; raise `ValueError` otherwise.

    A bare number is seconds. Negative, infinite, NaN and longer than 365d durations are refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")  # noqa: TRY004 - pydantic reports ValueError
    if isinstance(value, float):
        seconds = value
    elif isinstance(value, int):  # a huge int would overflow float()
        seconds = (
            float(value) if abs(value) <= MAX_DURATION_S else math.inf if value > 0 else -math.inf
        )
    elif isinstance(value, str) and _DURATION.match(value.strip()):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value.strip()))
    else:
        raise ValueError(f"not a duration: {_shown(value)} (use e.g. 30s, 10m, 1h30m, 2d)")
    if math.isnan(seconds):
        raise ValueError(f"not a duration: {_shown(value)}")
    if seconds < 0:
        raise ValueError(f"negative duration: {_shown(value)}")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"duration {_shown(value)} is longer than 365d")
    return seconds


def _shown(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 128:  # noqa: PLR2004 - repr may refuse it
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."  # noqa: PLR2004


def format_duration(seconds: float) -> str:
    """Return a compact form of a duration (`1h30m`, `45s`, `0s`)."""
    if seconds <= 0:
        return "0s"
    out = []
    rest = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        whole = int(rest // size)
        if whole:
            out.append(f"{whole}{unit}")
            rest -= whole * size
    if rest or not out:
        out.append(f"{rest:g}s")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class DailyRange:
    """A daily interval of local wall-clock time, `22:00-06:00` (may wrap past midnight)."""

    start_min: int
    end_min: int

    @classmethod
    def parse(cls, text: object) -> DailyRange:
        """Parse `HH:MM-HH:MM`; raise `ValueError` with the offending text."""
        if not isinstance(text, str) or text.count("-") != 1:
            raise ValueError(f"not a daily range: {text!r} (use e.g. '22:00-06:00')")
        start, end = (part.strip() for part in text.split("-"))
        bounds = []
        for part in (start, end):
            m = _HHMM.match(part)
            if not m or (int(m.group(1)) == 24 and m.group(2) != "00"):  # noqa: PLR2004
                raise ValueError(f"not a time of day: {part!r} in {text!r}")
            bounds.append(int(m.group(1)) * 60 + int(m.group(2)))
        if bounds[0] == bounds[1]:
            raise ValueError(f"empty daily range: {text!r}")
        return cls(bounds[0], bounds[1])

    def __str__(self) -> str:
        return f"{self.start_min // 60:02d}:{self.start_min % 60:02d}-{self.end_min // 60:02d}:{self.end_min % 60:02d}"

    def contains(self, local: datetime) -> bool:
        """Whether a local time falls inside the range (start inclusive, end exclusive)."""
        minute = local.hour * 60 + local.minute
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min

    def period_start(self, local: datetime) -> datetime | None:
        """Return the local start of the period containing `local`, or `None` outside it."""
        if not self.contains(local):
            return None
        start = datetime.combine(local.date(), time(), tzinfo=local.tzinfo) + timedelta(
            minutes=self.start_min
        )
        if start > local:
            start -= timedelta(days=1)
        return start
