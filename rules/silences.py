"""Silences and maintenance windows: time-bounded suppressions, each with a reason.

Suppression never changes an alarm's state; it adds a flag to the events (`silence`, `maintenance`,
`disarmed`, `inhibited`) so the cloud can hold back notifications and work orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.site import SitePath
from rules.errors import SilenceError
from rules.spec import MaintenanceWindow


@dataclass(frozen=True, slots=True)
class Silence:
    """Suppress matching alarms from `starts_at` until `ends_at` (mandatory), for a stated reason.

    Empty `rules` / `devices` match every rule / device; `location` matches devices inside that path.
    """

    id: str
    reason: str
    starts_at: float
    ends_at: float
    rules: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    location: SitePath = field(default_factory=SitePath)
    created_by: str = ""

    def active(self, t: float) -> bool:
        """Whether the silence is in force at `t`."""
        return self.starts_at <= t < self.ends_at

    def matches(self, rule_id: str, subject: str, location: SitePath | None) -> bool:
        """Whether the silence covers this rule and subject."""
        if self.rules and rule_id not in self.rules:
            return False
        if self.devices and subject not in self.devices:
            return False
        if self.location.parts:
            return location is not None and location.within(self.location)
        return True

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form for snapshots."""
        return {
            "id": self.id,
            "reason": self.reason,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "rules": list(self.rules),
            "devices": list(self.devices),
            "location": str(self.location),
            "created_by": self.created_by,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Silence:
        """Read back what `to_json` wrote."""
        return cls(
            id=str(data["id"]),
            reason=str(data["reason"]),
            starts_at=float(data["starts_at"]),
            ends_at=float(data["ends_at"]),
            rules=tuple(data.get("rules", ())),
            devices=tuple(data.get("devices", ())),
            location=SitePath.parse(str(data.get("location", ""))),
            created_by=str(data.get("created_by", "")),
        )


def new_silence(
    silence_id: str,
    *,
    reason: str,
    ends_at: datetime,
    now: datetime,
    starts_at: datetime | None = None,
    rules: tuple[str, ...] = (),
    devices: tuple[str, ...] = (),
    location: str = "",
    created_by: str = "",
) -> Silence:
    """Validate and build a silence; raise `SilenceError` without a reason or with a past expiry."""
    if not reason.strip():
        raise SilenceError("a silence needs a reason")
    if ends_at.tzinfo is None or (starts_at is not None and starts_at.tzinfo is None):
        raise SilenceError("silence times must be tz-aware")
    start = starts_at or now
    if ends_at <= max(start, now):
        raise SilenceError(f"silence expiry {ends_at.isoformat()} is not in the future")
    try:
        path = SitePath.parse(location)
    except ValueError as err:
        raise SilenceError(str(err)) from err
    return Silence(
        silence_id,
        reason.strip(),
        start.timestamp(),
        ends_at.timestamp(),
        rules,
        devices,
        path,
        created_by,
    )


class SilenceBook:
    """The silences in force on one engine: ids, expiry, matching and their part of a snapshot.

    Ids are `s1`, `s2`, ... from a counter that only grows and is kept in the snapshot, so an id
    is never given twice, whatever was removed or expired in between.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Silence] = {}
        self._issued = 0

    def add(
        self,
        *,
        reason: str,
        ends_at: datetime,
        now: datetime,
        starts_at: datetime | None = None,
        rules: tuple[str, ...] = (),
        devices: tuple[str, ...] = (),
        location: str = "",
        created_by: str = "",
    ) -> Silence:
        """Validate and add a silence under a new id (see `new_silence` for the checks)."""
        silence_id = f"s{self._issued + 1}"
        while silence_id in self._by_id:  # a snapshot written before ids were counted
            self._issued += 1
            silence_id = f"s{self._issued + 1}"
        silence = new_silence(
            silence_id,
            reason=reason,
            ends_at=ends_at,
            now=now,
            starts_at=starts_at,
            rules=rules,
            devices=devices,
            location=location,
            created_by=created_by,
        )
        self._issued += 1
        self._by_id[silence.id] = silence
        return silence

    def remove(self, silence_id: str) -> bool:
        """End a silence early; return whether it existed."""
        return self._by_id.pop(silence_id, None) is not None

    def expire(self, t: float) -> None:
        """Forget the silences that ended at or before `t`."""
        for silence_id in [s.id for s in self._by_id.values() if s.ends_at <= t]:
            del self._by_id[silence_id]

    def covers(self, rule_id: str, subject: str, location: SitePath | None, t: float) -> bool:
        """Whether a silence in force at `t` covers this rule and subject."""
        return any(
            s.active(t) and s.matches(rule_id, subject, location) for s in self._by_id.values()
        )

    @property
    def all(self) -> tuple[Silence, ...]:
        """The silences held, in the order they were added."""
        return tuple(self._by_id.values())

    def to_json(self) -> dict[str, Any]:
        """This book's part of an engine snapshot."""
        return {"issued": self._issued, "items": [s.to_json() for s in self._by_id.values()]}

    def load_json(self, data: object) -> None:
        """Read back what `to_json` wrote (or the bare list older snapshots hold)."""
        if isinstance(data, dict):
            self._issued = int(data.get("issued", 0))
            items = data.get("items", [])
        else:
            items = data or []
        for item in items:
            silence = Silence.from_json(item)
            self._by_id[silence.id] = silence


def in_maintenance(
    windows: tuple[MaintenanceWindow, ...],
    rule_id: str,
    subject: str,
    location: SitePath | None,
    t: float,
) -> bool:
    """Whether a maintenance window of the rule files covers this alarm at `t`."""
    if not windows:
        return False
    when = datetime.fromtimestamp(t, UTC)
    for window in windows:
        if not window.starts <= when < window.ends:
            continue
        if window.rules and rule_id not in window.rules:
            continue
        if window.devices and subject not in window.devices:
            continue
        if window.location.parts and (location is None or not location.within(window.location)):
            continue
        return True
    return False
