"""Small parsers for rule files: YAML with line numbers, durations and daily time ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Final

import yaml

_DURATION: Final = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))+$")
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_HHMM: Final = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def parse_duration(value: object) -> float:
    """Return seconds for `90`, `90s`, `10m`, `1h30m`, `2d`; raise `ValueError` otherwise.

    A bare number is seconds. Negative durations are refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")  # noqa: TRY004 - pydantic reports ValueError
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(value.strip()):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value.strip()))
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 1h30m, 2d)")
    if seconds < 0:
        raise ValueError(f"negative duration: {value!r}")
    return seconds


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


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers its own line and the line of each key (1-based)."""

    line: int
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A YAML sequence that remembers its own line and the line of each item (1-based)."""

    line: int
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """A safe loader whose mappings and sequences carry line numbers; duplicate keys are errors."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in out:
            loader.duplicates.append((line, f"duplicate key {key!r}"))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_with_lines(text: str) -> tuple[object, list[tuple[int, str]]]:
    """Parse YAML text; return the document (mappings as `LineDict`) and `(line, message)` problems.

    Syntax errors raise `yaml.YAMLError` (its `problem_mark` has the line).
    """
    loader = _LineLoader(text)
    try:
        document = loader.get_single_data()
    finally:
        loader.dispose()
    return document, loader.duplicates


def line_of(document: object, loc: tuple[int | str, ...]) -> int:
    """Return the line of the deepest node of `document` that `loc` (a pydantic error path) reaches."""
    line = getattr(document, "line", 1)
    node = document
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            line = node.key_lines[part]
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line
