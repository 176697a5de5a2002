from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.types import AlarmEvent, AlarmState, Severity
from simulators.truth import (
    RaisedAlarm,
    TruthRecord,
    TruthWriter,
    alarms_from_events,
    read_truth,
    score,
)

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def rec(
    device: str, at_s: float, incident: str = "fire", length: float | None = 600
) -> TruthRecord:
    until = None if length is None else T0 + timedelta(seconds=at_s + length)
    return TruthRecord(T0 + timedelta(seconds=at_s), at_s, device, incident, until)


def alarm(device: str, at_s: float) -> RaisedAlarm:
    return RaisedAlarm(T0 + timedelta(seconds=at_s), device, "r")


def test_detected_late_missed_and_false() -> None:
    truth = [rec("a", 100), rec("b", 100), rec("c", 100)]
    alarms = [alarm("a", 110), alarm("b", 400), alarm("d", 120), alarm("a", 5000)]
    result = score(truth, alarms, max_delay_s=600, late_after_s=60, grace_s=300)
    assert [d.incident.device for d in result.detected] == ["a"]
    assert result.detected[0].delay_s == 10
    assert [d.incident.device for d in result.late] == ["b"]
    assert [m.device for m in result.missed] == ["c"]
    assert sorted(a.device for a in result.false) == ["a", "d"]
    assert result.summary() == {
        "detected": 1,
        "late": 1,
        "missed": 1,
        "false": 2,
        "duplicate": 0,
    }
    assert result.recall == 2 / 3


def test_repeat_alarms_inside_an_incident_are_duplicates_not_false() -> None:
    result = score(
        [rec("a", 0, length=600)], [alarm("a", 5), alarm("a", 300), alarm("a", 850)], grace_s=300
    )
    assert len(result.detected) == 1
    assert result.false == []
    assert [a.at for a in result.duplicates] == [T0 + timedelta(seconds=s) for s in (300, 850)]
    assert not result.perfect


def test_a_scope_alarm_detects_an_incident_inside_it_or_aggregates_detected_ones() -> None:
    unit = RaisedAlarm(T0 + timedelta(seconds=20), "unit:d/s/c/g/c1/b1/u1", "r", "d/s/c/g/c1/b1/u1")
    inside = TruthRecord(T0, 0, "a", "fire", T0 + timedelta(seconds=600), "d/s/c/g/c1/b1/u1")
    other = TruthRecord(T0, 0, "b", "fire", T0 + timedelta(seconds=600), "d/s/c/g/c1/b1/u2")
    alone = score([inside], [unit], late_after_s=60)
    assert [d.alarm for d in alone.detected] == [unit]
    both = score([inside], [alarm("a", 10), unit], late_after_s=60)
    assert [d.alarm.device for d in both.detected] == ["a"]
    assert both.aggregates == [unit]
    assert both.perfect
    assert score([other], [unit], late_after_s=60).false == [unit]


def test_on_time_is_per_incident_by_default() -> None:
    slow = TruthRecord(T0, 0, "a", "flood", None, detect_within_s=1800)
    assert len(score([slow], [alarm("a", 1700)]).detected) == 1
    assert len(score([slow], [alarm("a", 1900)]).late) == 1


def test_alarm_before_the_incident_is_false_and_incident_missed() -> None:
    result = score([rec("a", 100)], [alarm("a", 50)])
    assert len(result.missed) == 1
    assert len(result.false) == 1


def test_incident_filter() -> None:
    result = score([rec("a", 0, "bin_full"), rec("b", 0, "fire")], [], incidents=["fire"])
    assert [m.device for m in result.missed] == ["b"]


def test_alarm_events_firing_once_per_instance() -> None:
    def event(seq: int, state: AlarmState, start: float) -> AlarmEvent:
        return AlarmEvent(
            "s/a/r", seq, state, Severity.CRITICAL, T0 + timedelta(seconds=start), T0, "r", "a"
        )

    events = [
        event(1, AlarmState.PENDING, 10),
        event(2, AlarmState.FIRING, 10),
        event(3, AlarmState.FIRING, 10),
        event(4, AlarmState.RESOLVED, 10),
    ]
    assert alarms_from_events(events) == [RaisedAlarm(T0 + timedelta(seconds=10), "a", "r")]


def test_suppressed_and_info_alarms_are_not_shown_as_alarms() -> None:
    def event(fp: str, severity: Severity = Severity.WARNING, **kw: object) -> AlarmEvent:
        return AlarmEvent(fp, 1, AlarmState.FIRING, severity, T0, T0, "r", "a", **kw)  # type: ignore[arg-type]

    events = [
        event("s/a/x", suppressed=("inhibited",)),
        event("s/a/y", Severity.INFO),
        AlarmEvent("s/a/z", 1, AlarmState.FAULT, Severity.WARNING, T0, T0, "z", "a"),
    ]
    assert [a.label for a in alarms_from_events(events)] == ["z"]


def test_truth_lines_round_trip(tmp_path: Path) -> None:
    buf = io.StringIO()
    writer = TruthWriter(buf)
    records = [rec("a", 1.5), rec("b", 2, length=None)]
    for r in records:
        writer.write(r)
    path = tmp_path / "t.jsonl"
    path.write_text(buf.getvalue())
    assert read_truth(path) == records
    assert writer.count == 2
