"""Which subscriptions an event matches: topic pattern, minimum severity, company, area and role.

Pure functions, shared by the outbox (which filters in Python) and the API (which validates).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Final

SEVERITIES: Final = ("info", "warning", "critical")
"""Severities from the lowest to the highest."""

TOPIC_PATTERN: Final = re.compile(r"^[a-z0-9_*-]+(\.[a-z0-9_*-]+)*$")
"""A topic pattern: dot-separated words of `a-z 0-9 _ -`, `*` matching anything (dots included)."""


def severity_rank(severity: str) -> int:
    """The rank of `severity` (0 for info); `ValueError` for an unknown one."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        msg = f"unknown severity {severity!r}: one of {', '.join(SEVERITIES)}"
        raise ValueError(msg) from None


def normal_path(path: str) -> str:
    """`path` without surrounding blanks and slashes."""
    return path.strip().strip("/")


def within_area(location: str, area: str) -> bool:
    """`location` is `area` or lies below it (by whole path segments); every one is in `""`."""
    prefix = normal_path(area)
    if not prefix:
        return True
    place = normal_path(location)
    return place == prefix or place.startswith(prefix + "/")


def topic_matches(pattern: str, topic: str) -> bool:
    """`topic` matches `pattern` (`*`, `work_order.*`, `alarm.critical`)."""
    return fnmatchcase(topic, pattern)


def roles_of(data: Mapping[str, object]) -> frozenset[str] | None:
    """The roles an event is addressed to (`data["roles"]`), or None when it names none."""
    roles = data.get("roles")
    if isinstance(roles, list | tuple | set | frozenset):
        return frozenset(str(role) for role in roles)
    if isinstance(roles, str):
        return frozenset({roles})
    return None


def subscription_matches(
    *,
    sub_topic: str,
    sub_min_severity: str,
    sub_company: str,
    sub_area: str,
    sub_role: str | None,
    topic: str,
    severity: str,
    company: str,
    location: str,
    roles: frozenset[str] | None,
) -> bool:
    """Whether a subscription receives an event.

    The topic matches the pattern; the event's severity is at least the minimum; the subscription's
    company is the event's (or empty: every company); the location is within the area; and a
    subscription with a role receives only events addressed to that role.
    """
    if not topic_matches(sub_topic, topic):
        return False
    if sub_min_severity in SEVERITIES and severity_rank(severity) < severity_rank(sub_min_severity):
        return False
    if sub_company and sub_company != company:
        return False
    if not within_area(location, sub_area):
        return False
    return not (sub_role and (roles is None or sub_role not in roles))
