"""JSON-ready snapshots of engine state, so PENDING timers, counters and sequence numbers survive a restart.

The format is versioned; times are epoch seconds (UTC). `to_snapshot` writes an `EngineState` and
`load_snapshot` reads one back into a fresh engine's (`RuleEngine.snapshot()` and `.restore()`).
Alarm instances are tagged with the version of their rule, and come back only if that rule is
unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Final

from core.types import AlarmState, Severity
from rules.errors import SnapshotError
from rules.state import Instance

if TYPE_CHECKING:
    from rules.stores import EngineState

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


def to_snapshot(state: EngineState, site: str, versions: Mapping[str, str]) -> dict[str, Any]:
    """Everything needed to resume after a restart; `versions` maps each rule in force to its version."""
    hits, edges = state.hits.to_json()
    return {
        "version": SNAPSHOT_VERSION,
        "site": site,
        "started": state.heard.started,
        "seq": dict(state.seq),
        "counters": dict(state.counters),
        "last_seen": dict(state.heard.last_seen),
        "instances": [
            instance_to_json(inst, versions[inst.rule_id])
            for inst in state.instances.values()
            if inst.rule_id in versions
        ],
        "hits": hits,
        "windows": state.windows.to_json(),
        "silences": state.silences.to_json(),
        "edges": edges,
    }


def load_snapshot(
    state: EngineState, snapshot: Mapping[str, Any], versions: Mapping[str, str]
) -> None:
    """Fill a fresh engine's state from a snapshot; raise `SnapshotError` if it cannot be read.

    Instances whose rule is gone or changed (another version) are dropped and counted
    (`restore_dropped_instances`), as are the composite hits of rules that are gone.
    """
    if not isinstance(snapshot, Mapping):
        raise SnapshotError(f"bad snapshot: a mapping, not {type(snapshot).__name__}")
    data = dict(snapshot)
    check_version(data)
    try:
        state.seq.update({str(k): int(v) for k, v in data.get("seq", {}).items()})
        state.counters.update({str(k): int(v) for k, v in data.get("counters", {}).items()})
        state.heard.load_json(data.get("started"), data.get("last_seen"))
        for item in data.get("instances", []):
            rule_id = item.get("rule_id", "")
            if rule_id not in versions or versions[rule_id] != item.get("rule_version"):
                state.counters["restore_dropped_instances"] += 1
                continue
            inst = instance_from_json(item)
            state.instances[(inst.rule_id, inst.subject)] = inst
        state.hits.load_json(data.get("hits", []), data.get("edges", []), set(versions))
        state.windows.load_json(data.get("windows", []))
        state.silences.load_json(data.get("silences"))
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise SnapshotError(f"bad snapshot: {err}") from err
