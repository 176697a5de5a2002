import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from core.metrics import Metric, Quality
from core.site import DeviceInfo, DeviceKind, SitePath
from core.types import AlarmEvent, AlarmState, Reading, Severity
from rules.engine import RuleEngine
from rules.errors import SilenceError, SnapshotError
from rules.spec import RuleSet, parse_rules

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

RULES = """
rules:
  - id: bin_full
    match: {metric: fill_pct, kinds: [bin]}
    above: 85
    for: 10s
    clear: {below: 60}
    clear_for: 5s
    severity: warning
    escalate: {after: 5m, to: critical}
    work_order: {category: sanitation, priority: normal}
  - id: hot
    match: {metric: temperature_c}
    above: 50
    keep_firing_for: 30s
  - id: burst
    type: composite
    match: {metric: intrusion, kinds: [perimeter]}
    equals: true
    scope: compound
    within: 1m
    min_events: 2
  - id: silent
    type: no_data
    match: {kinds: [bin]}
    no_data_factor: 2
"""

DEVICES = {
    "bin-1": DeviceInfo(
        "bin-1", DeviceKind.BIN, SitePath.parse("d/s/c/g/c1"), expected_interval_s=60
    ),
    "ir-1": DeviceInfo("ir-1", DeviceKind.PERIMETER, SitePath.parse("d/s/c/g/c1")),
    "ir-2": DeviceInfo("ir-2", DeviceKind.PERIMETER, SitePath.parse("d/s/c/g/c1")),
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def reading(device: str, metric: Metric, value: float | bool, t: float) -> Reading:
    return Reading(device, metric, value, at(t))


def engine(rules: str = RULES) -> RuleEngine:
    return RuleEngine(parse_rules(rules), DEVICES, site="site1")


def run(eng: RuleEngine, feed: Mapping[int, list[Reading]], until: float) -> list[AlarmEvent]:
    events: list[AlarmEvent] = []
    for second in range(int(until) + 1):
        for r in feed.get(second, []):
            events += eng.observe(r, at(second))
        events += eng.tick(at(second))
    return events


def test_firing_event_carries_fingerprint_seq_hint_and_evidence() -> None:
    eng = engine()
    events = run(eng, {0: [reading("bin-1", Metric.FILL_PCT, 90, 0)]}, 10)
    assert len(events) == 1
    event = events[0]
    assert event.fingerprint == "site1/bin-1/bin_full"
    assert (event.seq, event.state, event.severity) == (1, AlarmState.FIRING, Severity.WARNING)
    assert event.starts_at == at(10)
    assert event.valid_until == at(10 + 240)
    assert event.work_order is not None
    assert (event.work_order.category, event.work_order.priority) == ("sanitation", "normal")
    assert event.evidence["value"] == 90
    assert event.evidence["above"] == 85
    assert event.location == "d/s/c/g/c1"
    assert event.rule_version == eng.rules.rule("bin_full").version


def test_pending_dropped_silently_when_condition_clears_before_for() -> None:
    eng = engine()
    feed = {
        0: [reading("bin-1", Metric.FILL_PCT, 90, 0)],
        5: [reading("bin-1", Metric.FILL_PCT, 50, 5)],
    }
    assert run(eng, feed, 30) == []
    assert eng.state_of("bin_full", "bin-1") is AlarmState.NORMAL


def test_hysteresis_band_keeps_firing_and_clear_for_delays_resolve() -> None:
    eng = engine()
    feed = {
        0: [reading("bin-1", Metric.FILL_PCT, 90, 0)],
        20: [reading("bin-1", Metric.FILL_PCT, 70, 20)],  # in the band: still firing
        30: [reading("bin-1", Metric.FILL_PCT, 50, 30)],  # below clear: recovering
        32: [reading("bin-1", Metric.FILL_PCT, 90, 32)],  # back up: firing again, no new event
        40: [reading("bin-1", Metric.FILL_PCT, 40, 40)],
    }
    events = run(eng, feed, 50)
    assert [(e.state, e.at) for e in events] == [
        (AlarmState.FIRING, at(10)),
        (AlarmState.RESOLVED, at(45)),
    ]
    assert [e.seq for e in events] == [1, 2]


def test_firing_resent_every_minute_and_resolved_resent_for_five_minutes() -> None:
    eng = engine()
    feed = {
        0: [reading("hot-1", Metric.TEMPERATURE_C, 60, 0)],
        130: [reading("hot-1", Metric.TEMPERATURE_C, 20, 130)],
    }
    events = [e for e in run(eng, feed, 800) if e.device_id == "hot-1"]
    summary = [(e.state, (e.at - T0).total_seconds()) for e in events]
    firing = AlarmState.FIRING
    resolved = AlarmState.RESOLVED
    assert summary == [
        (firing, 0),
        (firing, 60),
        (firing, 120),
        (resolved, 130),  # last true at 0 s, keep_firing_for 30 s already over
        (resolved, 190),
        (resolved, 250),
        (resolved, 310),
        (resolved, 370),
        (resolved, 430),
    ]
    assert [e.valid_until for e in events[:3]] == [at(240), at(300), at(360)]
    assert all(e.valid_until is None for e in events[3:])
    assert [e.seq for e in events] == list(range(1, 10))
    assert eng.state_of("hot", "hot-1") is AlarmState.NORMAL


def test_unknown_device_matches_only_rules_without_device_facts() -> None:
    eng = engine()
    assert eng.observe(reading("stranger", Metric.TEMPERATURE_C, 99, 0), at(0))[0].rule_id == "hot"
    assert eng.observe(reading("stranger", Metric.FILL_PCT, 99, 0), at(0)) == []
    assert {e.rule_id for e in eng.tick(at(100))} == {"hot"}  # a re-send only


def test_bad_quality_readings_are_counted_not_evaluated() -> None:
    eng = engine()
    bad = Reading("hot-1", Metric.TEMPERATURE_C, 999.0, at(0), Quality.OUT_OF_RANGE)
    assert eng.observe(bad, at(0)) == []
    assert eng.counters["readings_skipped_out_of_range"] == 1


def test_escalation_raises_severity_while_firing() -> None:
    eng = engine()
    feed = {s: [reading("bin-1", Metric.FILL_PCT, 90, s)] for s in range(0, 400, 30)}
    events = run(eng, feed, 320)
    escalated = [e for e in events if e.severity is Severity.CRITICAL]
    assert (escalated[0].at - T0).total_seconds() == 310
    assert escalated[0].starts_at == at(10)


def test_composite_counts_triggers_in_scope_and_reports_the_scope() -> None:
    eng = engine()
    feed = {
        0: [reading("ir-1", Metric.INTRUSION, value=True, t=0)],
        5: [reading("ir-1", Metric.INTRUSION, value=True, t=5)],  # held, not a new trigger
        30: [reading("ir-2", Metric.INTRUSION, value=True, t=30)],
    }
    events = run(eng, feed, 200)
    firing = [e for e in events if e.state is AlarmState.FIRING]
    assert firing[0].device_id == "compound:d/s/c/g/c1"
    assert firing[0].fingerprint == "site1/compound:d/s/c/g/c1/burst"
    assert firing[0].at == at(30)
    assert firing[0].evidence["devices"] == "ir-1,ir-2"
    resolved = [e for e in events if e.state is AlarmState.RESOLVED]
    assert resolved[0].at == at(61)  # the first trigger left the 1 min window


def test_no_data_rule_and_firing_instance_go_no_data_when_device_is_silent() -> None:
    eng = engine()
    events = run(eng, {0: [reading("bin-1", Metric.FILL_PCT, 95, 0)]}, 200)
    states = [
        (e.rule_id, e.state, (e.at - T0).total_seconds())
        for e in events
        if e.state is not AlarmState.FIRING or e.seq == 1
    ]
    assert ("bin_full", AlarmState.FIRING, 10) in states
    assert ("silent", AlarmState.NO_DATA, 121) in states
    # threshold instances use the default factor 3
    assert ("bin_full", AlarmState.NO_DATA, 181) in states
    back = eng.observe(reading("bin-1", Metric.FILL_PCT, 95, 201), at(201))
    assert {(e.rule_id, e.state) for e in back} == {
        ("silent", AlarmState.RESOLVED),
        ("bin_full", AlarmState.FIRING),
    }
    firing = next(e for e in back if e.rule_id == "bin_full")
    assert firing.starts_at == at(10)  # the same alarm resumed


def test_silence_needs_reason_and_future_expiry_and_flags_events() -> None:
    eng = engine()
    with pytest.raises(SilenceError):
        eng.add_silence(reason=" ", ends_at=at(600), now=at(0))
    with pytest.raises(SilenceError):
        eng.add_silence(reason="works", ends_at=at(-1), now=at(0))
    eng.add_silence(reason="bin replaced", ends_at=at(100), now=at(0), devices=["bin-1"])
    events = run(eng, {0: [reading("bin-1", Metric.FILL_PCT, 95, 0)]}, 130)
    assert events[0].suppressed == ("silence",)
    assert events[-1].suppressed == ()  # the re-send at 130 s is after expiry
    assert eng.silences == ()


def test_silence_ids_are_never_reused_after_removal_expiry_or_restore() -> None:
    eng = engine()
    first, second, third = (
        eng.add_silence(reason=f"works {n}", ends_at=at(1000 + n), now=at(0)) for n in range(3)
    )
    assert eng.remove_silence(first.id)
    assert eng.remove_silence(second.id)
    assert not eng.remove_silence(first.id)  # already gone
    fourth = eng.add_silence(reason="works 4", ends_at=at(2000), now=at(0))
    assert fourth.id not in {first.id, second.id, third.id}
    assert [s.id for s in eng.silences] == [third.id, fourth.id]
    assert eng.silences[0].reason == "works 2"  # the live one was not replaced
    restored = RuleEngine.restore(
        json.loads(json.dumps(eng.snapshot())), parse_rules(RULES), DEVICES, site="site1"
    )
    fifth = restored.add_silence(reason="works 5", ends_at=at(2000), now=at(0))
    assert fifth.id not in {first.id, second.id, third.id, fourth.id}
    assert len(restored.silences) == 3


def test_removed_silence_no_longer_flags_events() -> None:
    eng = engine()
    silence = eng.add_silence(reason="bin replaced", ends_at=at(1000), now=at(0))
    assert eng.remove_silence(silence.id)
    events = run(eng, {0: [reading("bin-1", Metric.FILL_PCT, 95, 0)]}, 20)
    assert events
    assert all(e.suppressed == () for e in events)


def test_silences_of_a_snapshot_written_as_a_bare_list_are_restored() -> None:
    eng = engine()
    eng.add_silence(reason="works", ends_at=at(1000), now=at(0))
    snap = json.loads(json.dumps(eng.snapshot()))
    snap["silences"] = snap["silences"]["items"]  # the older form
    snap["counters"].pop("silences_added", None)
    restored = RuleEngine.restore(snap, parse_rules(RULES), DEVICES, site="site1")
    new = restored.add_silence(reason="more works", ends_at=at(1000), now=at(0))
    assert [s.id for s in restored.silences] == ["s1", new.id]
    assert new.id != "s1"


def test_maintenance_window_from_rule_file_flags_events() -> None:
    text = (
        RULES
        + f"""
maintenance_windows:
  - id: resurfacing
    reason: street resurfacing
    starts: {at(-60).isoformat()}
    ends: {at(3600).isoformat()}
    rules: [hot]
"""
    )
    eng = engine(text)
    assert eng.observe(reading("x", Metric.TEMPERATURE_C, 90, 0), at(0))[0].suppressed == (
        "maintenance",
    )


def test_hot_reload_keeps_unchanged_rules_and_resolves_changed_ones() -> None:
    eng = engine()
    run(
        eng,
        {0: [reading("bin-1", Metric.FILL_PCT, 90, 0), reading("t", Metric.TEMPERATURE_C, 60, 0)]},
        12,
    )
    changed = RULES.replace("above: 50", "above: 55")
    events = eng.replace_rules(parse_rules(changed), at(13))
    assert [(e.rule_id, e.state, e.evidence["reason"]) for e in events] == [
        ("hot", AlarmState.RESOLVED, "rule changed")
    ]
    assert eng.state_of("bin_full", "bin-1") is AlarmState.FIRING
    assert eng.tick(at(14)) == []


def test_snapshot_round_trip_keeps_pending_timer_and_seq() -> None:
    eng = engine()
    run(eng, {0: [reading("bin-1", Metric.FILL_PCT, 90, 0)]}, 11)  # fired at 10 (seq 1)
    eng.observe(reading("bin-1", Metric.FILL_PCT, 40, 12), at(12))
    eng.tick(at(17))  # resolved (seq 2)
    eng.observe(reading("bin-1", Metric.FILL_PCT, 95, 20), at(20))  # pending since 20
    eng.add_silence(reason="test", ends_at=at(10_000), now=at(20), rules=["hot"])
    snap = json.loads(json.dumps(eng.snapshot()))
    restored = RuleEngine.restore(snap, parse_rules(RULES), DEVICES, site="site1")
    assert restored.state_of("bin_full", "bin-1") is AlarmState.PENDING
    assert len(restored.silences) == 1
    assert restored.counters["readings"] == 3
    assert restored.tick(at(29)) == []
    events = restored.tick(at(30))
    firing = [e for e in events if e.state is AlarmState.FIRING]
    assert firing[0].seq == 3
    assert firing[0].starts_at == at(30)


def test_restore_drops_instances_of_changed_rules() -> None:
    eng = engine()
    eng.observe(reading("bin-1", Metric.FILL_PCT, 95, 0), at(0))
    snap = eng.snapshot()
    other: RuleSet = parse_rules(RULES.replace("for: 10s", "for: 20s"))
    restored = RuleEngine.restore(snap, other, DEVICES, site="site1")
    assert restored.state_of("bin_full", "bin-1") is AlarmState.NORMAL
    assert restored.counters["restore_dropped_instances"] == 1


@pytest.mark.parametrize("saved", [[["version", 1]], [1, 2], "text", {"version": 1, "seq": [1]}])
def test_a_snapshot_that_cannot_be_read_is_a_snapshot_error(saved: object) -> None:
    with pytest.raises(SnapshotError):
        RuleEngine.restore(saved, parse_rules(RULES), DEVICES, site="site1")  # type: ignore[arg-type]


def test_an_event_says_what_and_where() -> None:
    rules = (
        "rules:\n  - id: fire\n    description: A panel reports a fire.\n"
        "    match: {metric: fire_alarm, kinds: [fire_panel]}\n    equals: true\n"
    )
    devices = {"panel": DeviceInfo("panel", DeviceKind.FIRE_PANEL, SitePath.parse("d/s/c/g/c1/b2"))}
    eng = RuleEngine(parse_rules(rules), devices, site="site1")
    (event,) = eng.observe(reading("panel/zone-012", Metric.FIRE_ALARM, True, 0), at(0))  # noqa: FBT003
    assert event.description == "A panel reports a fire."
    # a zone of the panel is known through the panel: its kind matched, its place is the panel's
    assert (event.device_id, event.location) == ("panel/zone-012", "d/s/c/g/c1/b2")
    # and the panel counts as heard from: no silence while its zones report
    assert "panel" in eng.snapshot()["last_seen"]
