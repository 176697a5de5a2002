"""Which alarm changes need work, and of what category and priority (pure).

An alarm instance **needs action** when it is active (FIRING, FAULT or NO_DATA), not inhibited,
not merely stale, and either its rule asks for a work order (the `work_order` hint) or it is
critical. A warning or info alarm without a hint stays an alarm for the control room: rules opt
into work orders by their hint, so a noisy informational rule never floods the technicians.

The hint's `category` becomes the order's category (`alarm` without a hint); its `priority`
(`urgent`, `high`, `normal`, `low`, or `P1`..`P4`) the order's priority (P3 if the hint names
none, P2 for a critical alarm without a hint).
Fire (category `fire`, or a rule whose id names smoke or fire) and an open manhole (category
`manhole_cover`) are always P1.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from cloud_ingest.ingest.work_orders import AlarmInstanceChange

ACTIVE_STATES: Final = frozenset({"firing", "fault", "no_data"})
"""Alarm states that need someone to act."""
CLEARED_STATES: Final = frozenset({"resolved", "normal"})
"""Alarm states reporting that the condition is gone."""
PRIORITIES: Final = ("P1", "P2", "P3", "P4")
"""From the most to the least urgent."""
HINT_PRIORITIES: Final = {"urgent": "P1", "high": "P2", "normal": "P3", "low": "P4"}
P1_CATEGORIES: Final = frozenset({"fire", "manhole_cover"})
"""Categories that are always P1 (people's lives: fire, an open manhole)."""
DEFAULT_CATEGORY: Final = "alarm"
DEFAULT_PRIORITY: Final = "P2"
"""The priority of a critical alarm without a hint."""
HINTED_PRIORITY: Final = "P3"
"""The priority of a hint that names none (normal)."""
_FIRE_RULE: Final = re.compile(r"(^|[_.:/-])(smoke|fire)([_.:/-]|$)")


def state_of(change: AlarmInstanceChange) -> str:
    """The alarm state in lower case."""
    return change.state.lower()


def needs_action(change: AlarmInstanceChange) -> bool:
    """Whether `change` opens (or joins) a work order; see the module text."""
    if change.inhibited_by or change.stale or state_of(change) not in ACTIVE_STATES:
        return False
    return change.work_order is not None or change.severity.lower() == "critical"


def category_of(change: AlarmInstanceChange) -> str:
    """The order category for `change` (the hint's, else `alarm`)."""
    hint = change.work_order or {}
    category = hint.get("category")
    return str(category) if isinstance(category, str) and category else DEFAULT_CATEGORY


def is_fire_or_manhole(category: str, rule_id: str = "") -> bool:
    """Whether the work is about fire or an open manhole (always P1)."""
    return category in P1_CATEGORIES or _FIRE_RULE.search(rule_id.lower()) is not None


def priority_of(change: AlarmInstanceChange) -> str:
    """The order priority for `change` (P1 most urgent)."""
    category = category_of(change)
    if is_fire_or_manhole(category, change.rule_id):
        return "P1"
    if change.work_order is None:
        return DEFAULT_PRIORITY
    return normal_priority(change.work_order.get("priority"), HINTED_PRIORITY)


def normal_priority(value: object, default: str = DEFAULT_PRIORITY) -> str:
    """`urgent`/`high`/`normal`/`low` or `P1`..`P4` as `P1`..`P4`; `default` for anything else."""
    if not isinstance(value, str):
        return default
    text = value.strip()
    if text.upper() in PRIORITIES:
        return text.upper()
    return HINT_PRIORITIES.get(text.lower(), default)


def more_urgent(a: str, b: str) -> str:
    """The more urgent of two priorities."""
    return min(a, b, key=PRIORITIES.index)


def dedupe_key(change: AlarmInstanceChange) -> str:
    """The SHA-256 naming one delivery of `change`: (fingerprint, last_seq, stale)."""
    raw = f"{change.fingerprint}\x00{change.last_seq}\x00{int(change.stale)}"
    return hashlib.sha256(raw.encode()).hexdigest()


def group_lock_key(location: str, category: str) -> int:
    """A signed 64-bit key for the advisory lock of one (location, category) group."""
    digest = hashlib.sha256(f"wo\x00{location}\x00{category}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
