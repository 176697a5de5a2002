"""Durations as people write them in configuration, rule and scenario files: `90`, `45s`, `1h30m`.

One grammar for every file: a number is seconds; text is one or more `<number><unit>` parts with the
units `ms`, `s`, `m`, `h`, `d`, `w` (`250ms`, `30s`, `20m`, `1h30m`, `2d`), with no spaces inside.
Negative, NaN and over-long durations are refused with a message fit for a file:line report.
"""

from __future__ import annotations

import math
import re
from typing import Final

_DURATION: Final = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))+$")
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SHOWN_CHARS: Final = 40
_HUGE_BITS: Final = 128

MAX_DURATION_S: Final = 365 * 86_400.0
"""The longest duration `parse_duration` accepts unless told otherwise (365d)."""


def parse_duration(value: object, *, max_s: float = MAX_DURATION_S) -> float:
    """Return the seconds of `90`, `2.5`, `90s`, `10m`, `1h30m`, `2d`; raise `ValueError` otherwise.

    A number is seconds. Text needs a unit on every part. Booleans, negative, NaN, infinite and
    durations longer than `max_s` are refused.
    """
    if isinstance(value, bool):
        raise ValueError(_not_a_duration(value))  # noqa: TRY004 - pydantic reports ValueError
    if isinstance(value, float):
        seconds = value
    elif isinstance(value, int):  # a huge int would overflow float()
        seconds = float(value) if abs(value) <= max_s else math.inf if value > 0 else -math.inf
    elif isinstance(value, str) and _DURATION.match(value.strip()):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value.strip()))
    else:
        raise ValueError(_not_a_duration(value))
    if math.isnan(seconds):
        raise ValueError(_not_a_duration(value))
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {_shown(value)}")
    if seconds > max_s:
        raise ValueError(f"a duration is at most {format_duration(max_s)}: {_shown(value)}")
    return seconds


def seconds_if_duration(value: object) -> object:
    """Text such as `20m` as seconds (`parse_duration`); anything else unchanged.

    For a number field that also takes durations: the field's own type then checks numbers as it
    always did (strict, finite, bounded), and its bounds apply to the seconds of a duration.
    """
    return parse_duration(value, max_s=math.inf) if isinstance(value, str) else value


def format_duration(seconds: float) -> str:
    """Return a compact form of a duration (`1h30m`, `45s`, `366d`, `0s`)."""
    if seconds <= 0:
        return "0s"
    if math.isinf(seconds):
        return "forever"
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


def _not_a_duration(value: object) -> str:
    return f"not a duration: {_shown(value)} (use e.g. 45s, 20m, 1h30m, 2d)"


def _shown(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > _HUGE_BITS:  # repr may refuse it
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
