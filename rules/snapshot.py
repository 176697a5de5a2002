"""JSON-ready snapshots of engine state, so PENDING timers, counters and sequence numbers survive a restart.

The format is versioned; times are epoch seconds (UTC). `RuleEngine.snapshot()` writes it and
`RuleEngine.restore()` reads it back.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Final

from core.types import AlarmState, Severity
from rules.errors import SnapshotError
from rules.state import Instance

SNAPSHOT_VERSION: Final = 1

_FLOAT_FIELDS: Final = (
    "pending_since",
    "starts_at",
    "last_true",
    "clear_since",
    "last_sent",
    "resolved_at",
)


def instance_to_json(inst: Instance, rule_version: str) -> dict[str, Any]:
    """One instance as plain JSON values, tagged with the version of its rule."""
    data = asdict(inst)
    data["state"] = inst.state.value
    data["severity"] = inst.severity.value if inst.severity else None
    data["rule_version"] = rule_version
    return data


def instance_from_json(data: dict[str, Any]) -> Instance:
    """Read back what `instance_to_json` wrote; raise `SnapshotError` on a malformed entry."""
    try:
        inst = Instance(str(data["rule_id"]), str(data["subject"]), str(data.get("location", "")))
        inst.state = AlarmState(data["state"])
        for name in _FLOAT_FIELDS:
            value = data.get(name)
            setattr(inst, name, None if value is None else float(value))
        inst.paused = bool(data.get("paused", False))
        inst.severity = Severity(data["severity"]) if data.get("severity") else None
        value = data.get("value")
        inst.value = value if isinstance(value, bool | int | float) else None
        inst.extra = dict(data.get("extra", {}))
    except (KeyError, TypeError, ValueError) as err:
        raise SnapshotError(f"bad alarm instance in snapshot: {err}") from err
    return inst


def check_version(snapshot: dict[str, Any]) -> None:
    """Refuse snapshots of another format version."""
    version = snapshot.get("version")
    if version != SNAPSHOT_VERSION:
        raise SnapshotError(f"snapshot version {version!r}; this engine reads {SNAPSHOT_VERSION}")
