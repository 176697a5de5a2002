"""Daily time ranges of rule files (durations are `core.durations`, YAML is `core.yaml_located`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final

_HHMM: Final = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


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
