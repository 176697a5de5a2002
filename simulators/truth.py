"""Ground truth: what the simulator injected (JSON lines), and scoring an agent's alarms against it.

One line per incident: `{"t": ISO time, "t_s": seconds since start, "device": id, "incident": name,
"until": ISO time or null, "location": path, "kind": device kind, "source": "timeline"|"model"|"fault",
"detect_within_s": seconds}`. Fault records are what a gateway can see of an injected fault: an
unplugged serial device is a `link_lost` incident.

`score()` matches alarms to incidents per device: an alarm raised within `max_delay_s` of an
incident's start detects it (late if after the incident's `detect_within_s`); an alarm about a unit
or compound detects an incident inside it that no device alarm did; an incident nobody raised is
missed; a second alarm about a detected incident is a duplicate; an alarm that matches no incident
(inside its window plus `grace_s`) is false.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from core.site import LEVELS, bound_device
from core.types import AlarmEvent, AlarmState, Severity


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """One injected incident."""

    t: datetime
    t_s: float
    device: str
    incident: str
    until: datetime | None = None
    location: str = ""
    kind: str = ""
    source: str = "timeline"
    detect_within_s: float = 600.0
    """How soon an agent should raise the incident's alarm to be on time."""

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        data = asdict(self)
        data["t"] = self.t.isoformat()
        data["until"] = self.until.isoformat() if self.until else None
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> TruthRecord:
        """Parse one line written by `to_json`."""
        data = json.loads(line)
        data["t"] = datetime.fromisoformat(data["t"])
        data["until"] = datetime.fromisoformat(data["until"]) if data["until"] else None
        return cls(**data)


class TruthWriter:
    """Appends records to a JSON-lines file (flushed per line, so a crashed run keeps what it had)."""

    def __init__(self, stream: IO[str]) -> None:
        """Write to an open text stream."""
        self._stream = stream
        self.count = 0

    def write(self, record: TruthRecord) -> None:
        """Append one record."""
        self._stream.write(record.to_json() + "\n")
        self._stream.flush()
        self.count += 1


def read_truth(path: Path | str) -> list[TruthRecord]:
    """Load a ground-truth file."""
    with Path(path).open(encoding="utf-8") as f:
        return [TruthRecord.from_json(line) for line in f if line.strip()]


@dataclass(frozen=True, slots=True)
class RaisedAlarm:
    """An alarm as the system under test raised it: when, for which subject, and what it said.

    `device` is the alarm's subject: a device id, or for an alarm about a whole unit or compound
    (a composite rule) its scope, `unit:<path>`, whose `<path>` is also in `scope`.
    """

    at: datetime
    device: str
    label: str = ""
    scope: str = ""


@dataclass(frozen=True, slots=True)
class Detection:
    """An incident and the alarm that detected it."""

    incident: TruthRecord
    alarm: RaisedAlarm
    delay_s: float


@dataclass(slots=True)
class Score:
    """How an agent's alarms compare with the ground truth.

    `duplicates` are further alarms about an incident already detected (the control room would
    see it twice); `aggregates` are alarms about a scope (a unit, a compound) whose incidents were
    detected device by device, which add a conclusion rather than repeat one.
    """

    detected: list[Detection] = field(default_factory=list)
    late: list[Detection] = field(default_factory=list)
    missed: list[TruthRecord] = field(default_factory=list)
    false: list[RaisedAlarm] = field(default_factory=list)
    duplicates: list[RaisedAlarm] = field(default_factory=list)
    aggregates: list[RaisedAlarm] = field(default_factory=list)

    @property
    def recall(self) -> float:
        """Share of incidents detected at all (on time or late); 1.0 when there were none."""
        total = len(self.detected) + len(self.late) + len(self.missed)
        return 1.0 if total == 0 else (len(self.detected) + len(self.late)) / total

    @property
    def perfect(self) -> bool:
        """Every incident detected on time, once, and nothing else raised."""
        return not (self.late or self.missed or self.false or self.duplicates)

    def summary(self) -> dict[str, int]:
        """Counts per outcome."""
        return {
            "detected": len(self.detected),
            "late": len(self.late),
            "missed": len(self.missed),
            "false": len(self.false),
            "duplicate": len(self.duplicates),
        }


def alarms_from_events(events: Iterable[AlarmEvent]) -> list[RaisedAlarm]:
    """The alarms the control room is shown: one per alarm instance (fingerprint and start).

    An instance counts from its first FIRING or FAULT event, unless that event was suppressed
    (inhibited by a more specific alarm, silenced, outside an armed schedule) or only `info`
    (a forecast, not an incident); re-sends of an instance are the same alarm.
    """
    seen: set[tuple[str, datetime]] = set()
    out: list[RaisedAlarm] = []
    for e in events:
        if e.state not in _RAISED or (e.fingerprint, e.starts_at) in seen:
            continue
        seen.add((e.fingerprint, e.starts_at))
        if e.suppressed or e.severity is Severity.INFO:
            continue
        level, colon, path = e.device_id.partition(":")
        scope = path if colon and level in LEVELS else ""
        out.append(RaisedAlarm(e.starts_at, e.device_id, e.rule_id, scope))
    return out


_RAISED = frozenset({AlarmState.FIRING, AlarmState.FAULT})


def score(
    truth: Sequence[TruthRecord],
    alarms: Sequence[RaisedAlarm],
    *,
    max_delay_s: float | None = None,
    late_after_s: float | None = None,
    grace_s: float = 300.0,
    incidents: Iterable[str] | None = None,
) -> Score:
    """Score alarms against the truth (see the module docstring).

    Args:
        truth: injected incidents.
        alarms: what the system under test raised.
        max_delay_s: an alarm later than this after the start does not detect the incident
            (default: per incident, twice its `detect_within_s` and at least 10 minutes more).
        late_after_s: a detection after this delay counts as late (default: per incident, its
            `detect_within_s`).
        grace_s: an alarm this long after an incident's end still belongs to it (not false).
        incidents: only score these incident names (all when `None`).
    """
    wanted = set(incidents) if incidents is not None else None
    records = sorted(
        (r for r in truth if wanted is None or r.incident in wanted), key=lambda r: r.t
    )
    result = Score()
    used: set[int] = set()
    ordered = sorted(range(len(alarms)), key=lambda i: alarms[i].at)
    device_alarms = [i for i in ordered if not alarms[i].scope]
    scope_alarms = [i for i in ordered if alarms[i].scope]
    for rec in records:
        limit = _max_delay(rec, max_delay_s)
        match = next(
            (
                i
                for i in device_alarms
                if i not in used
                and _same_device(alarms[i], rec)
                and 0 <= (alarms[i].at - rec.t).total_seconds() <= limit
            ),
            None,
        )
        if match is None:
            match = next(
                (
                    i
                    for i in scope_alarms
                    if _in_scope(alarms[i], rec)
                    and 0 <= (alarms[i].at - rec.t).total_seconds() <= limit
                ),
                None,
            )
        if match is None:
            result.missed.append(rec)
            continue
        used.add(match)
        delay = (alarms[match].at - rec.t).total_seconds()
        late = rec.detect_within_s if late_after_s is None else late_after_s
        target = result.late if delay > late else result.detected
        target.append(Detection(rec, alarms[match], delay))
    for i in ordered:
        if i in used:
            continue
        a = alarms[i]
        if any(_within(a, r, grace_s, _max_delay(r, max_delay_s)) for r in records):
            (result.aggregates if a.scope else result.duplicates).append(a)
        else:
            result.false.append(a)
    return result


def _max_delay(rec: TruthRecord, max_delay_s: float | None) -> float:
    if max_delay_s is not None:
        return max_delay_s
    return max(2 * rec.detect_within_s, rec.detect_within_s + 600.0)


def _same_device(alarm: RaisedAlarm, rec: TruthRecord) -> bool:
    """The alarm is about the incident's device, or about a detector or zone of that panel."""
    return bound_device(alarm.device) == rec.device


def _in_scope(alarm: RaisedAlarm, rec: TruthRecord) -> bool:
    scope = alarm.scope.strip("/").split("/")
    return rec.location.strip("/").split("/")[: len(scope)] == scope


def _within(alarm: RaisedAlarm, rec: TruthRecord, grace_s: float, max_delay_s: float) -> bool:
    if not _same_device(alarm, rec) and not (alarm.scope and _in_scope(alarm, rec)):
        return False
    since = (alarm.at - rec.t).total_seconds()
    if rec.until is None:
        return 0 <= since <= max_delay_s + grace_s
    return since >= 0 and (alarm.at - rec.until).total_seconds() <= grace_s


def iter_lines(records: Iterable[TruthRecord]) -> Iterator[str]:
    """JSON lines of records, for writing in one go."""
    for r in records:
        yield r.to_json() + "\n"
