"""IANA time-zone names as written in configuration and rule files, checked in one place."""

from __future__ import annotations

import re
import zoneinfo
from typing import Final

MAX_ZONE_NAME: Final = 64
"""Longer names are refused without asking the zone database (the longest IANA name has 32)."""
_ZONE_NAME: Final = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")


def check_zone(name: str) -> str:
    """Return `name` if it names a time zone `zoneinfo` can load.

    Raises:
        ValueError: `unknown time zone '...'` for anything else: a region directory (`Asia`), a
            path, a name too long or with odd characters, a file that is not a zone.
    """
    if len(name) > MAX_ZONE_NAME or not _ZONE_NAME.match(name):
        raise ValueError(f"unknown time zone {_shown(name)}")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {_shown(name)}") from None
    return name


def _shown(name: str) -> str:
    return repr(name if len(name) <= MAX_ZONE_NAME else name[:MAX_ZONE_NAME] + "...")
