"""Ground truth: what the simulator injected (JSON lines), and scoring an agent's alarms against it.

One line per incident: `{"t": ISO time, "t_s": seconds since start, "device": id, "incident": name,
"until": ISO time or null, "location": path, "kind": device kind, "source": "timeline"|"model"}`.

`score()` matches alarms to incidents per device: an alarm raised within `max_delay_s` of an
incident's start detects it (late if after `late_after_s`); an incident nobody raised is missed; an
alarm that matches no incident (inside its window plus `grace_s`) is false.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from core.types import AlarmEvent, AlarmState


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
    """An alarm as the system under test raised it: when, for which device, and what it said."""

    at: datetime
    device: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Detection:
    """An incident and the alarm that detected it."""

    incident: TruthRecord
    alarm: RaisedAlarm
    delay_s: float


@dataclass(slots=True)
class Score:
    """How an agent's alarms compare with the ground truth."""

    detected: list[Detection] = field(default_factory=list)
    late: list[Detection] = field(default_factory=list)
    missed: list[TruthRecord] = field(default_factory=list)
    false: list[RaisedAlarm] = field(default_factory=list)

    @property
    def recall(self) -> float:
        """Share of incidents detected at all (on time or late); 1.0 when there were none."""
        total = len(self.detected) + len(self.late) + len(self.missed)
        return 1.0 if total == 0 else (len(self.detected) + len(self.late)) / total

    def summary(self) -> dict[str, int]:
        """Counts per outcome."""
        return {
            "detected": len(self.detected),
            "late": len(self.late),
            "missed": len(self.missed),
            "false": len(self.false),
        }


def alarms_from_events(events: Iterable[AlarmEvent]) -> list[RaisedAlarm]:
    """The FIRING transitions of alarm events (re-sends of the same fingerprint counted once)."""
    seen: set[tuple[str, datetime]] = set()
    out: list[RaisedAlarm] = []
    for e in events:
        if e.state is not AlarmState.FIRING or (e.fingerprint, e.starts_at) in seen:
            continue
        seen.add((e.fingerprint, e.starts_at))
        out.append(RaisedAlarm(e.starts_at, e.device_id, e.rule_id))
    return out


def score(
    truth: Sequence[TruthRecord],
    alarms: Sequence[RaisedAlarm],
    *,
    max_delay_s: float = 600.0,
    late_after_s: float = 60.0,
    grace_s: float = 300.0,
    incidents: Iterable[str] | None = None,
) -> Score:
    """Score alarms against the truth (see the module docstring).

    Args:
        truth: injected incidents.
        alarms: what the system under test raised.
        max_delay_s: an alarm later than this after the start does not detect the incident.
        late_after_s: a detection after this delay counts as late.
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
    for rec in records:
        match = next(
            (
                i
                for i in ordered
                if i not in used
                and alarms[i].device == rec.device
                and 0 <= (alarms[i].at - rec.t).total_seconds() <= max_delay_s
            ),
            None,
        )
        if match is None:
            result.missed.append(rec)
            continue
        used.add(match)
        delay = (alarms[match].at - rec.t).total_seconds()
        target = result.late if delay > late_after_s else result.detected
        target.append(Detection(rec, alarms[match], delay))
    for i in ordered:
        if i in used:
            continue
        a = alarms[i]
        if not any(_within(a, r, grace_s, max_delay_s) for r in records):
            result.false.append(a)
    return result


def _within(alarm: RaisedAlarm, rec: TruthRecord, grace_s: float, max_delay_s: float) -> bool:
    if alarm.device != rec.device:
        return False
    since = (alarm.at - rec.t).total_seconds()
    if rec.until is None:
        return 0 <= since <= max_delay_s + grace_s
    return since >= 0 and (alarm.at - rec.until).total_seconds() <= grace_s


def iter_lines(records: Iterable[TruthRecord]) -> Iterator[str]:
    """JSON lines of records, for writing in one go."""
    for r in records:
        yield r.to_json() + "\n"
