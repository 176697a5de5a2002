from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.scenario import load_scenario, parse_scenario
from simulators.timeline import generate, raw_frames
from simulators.verify import at_time, decode_emission, values_of

SCENARIO = """\
name: offline
seed: 5
start: 2026-01-05T00:00:00+08:00
duration: 6h
site:
  compounds:
    - {id: c1, buildings: [{id: b1, units: [u1]}]}
devices:
  - {id: bin-1, kind: bin, codec: lorawan.milesight.em310_udl, transport: lorawan, location: c1, interval: 10m}
  - {id: smoke-1, kind: smoke, codec: lorawan.milesight.gs524n, transport: lorawan, location: c1/b1/u1, interval: 5m, tick: 10s}
  - {id: fence-1, kind: perimeter, codec: lorawan.milesight.ws301, transport: lorawan, location: c1, interval: 30m, tick: 5s}
  - {id: panel-1, kind: fire_panel, codec: serial.gbt26875.3, transport: serial, location: c1/b1, interval: 10m, tick: 10s}
  - {id: cid-1, kind: alarm_panel, codec: serial.ademco.contact_id, transport: serial, location: c1/b1, interval: 10m, tick: 5s,
     address: {account: "4321", zone: 12}}
timeline:
  - {at: 1h, device: smoke-1, incident: fire, duration: 20m}
  - {at: 1h, device: panel-1, incident: fire, duration: 20m}
  - {at: 2h, device: fence-1, incident: breach, duration: 2m}
  - {at: 2h, device: cid-1, incident: breach, duration: 2m}
"""


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    scenario = parse_scenario(SCENARIO)
    a = generate(scenario)
    b = generate(scenario)
    c = generate(scenario, seed=6)
    assert [e.payload for e in a.emissions] == [e.payload for e in b.emissions]
    assert [e.payload for e in a.emissions] != [e.payload for e in c.emissions]
    assert a.truth == b.truth


def test_every_emission_decodes_with_the_real_codec_and_matches_the_model() -> None:
    scenario = parse_scenario(SCENARIO)
    out = generate(scenario)
    emissions = {e.device_id for e in out.emissions}
    assert emissions == {d.id for d in scenario.devices}
    samples = {(s.device_id, s.t): s for s in out.samples}
    for e in out.emissions:
        result = decode_emission(scenario, e)
        sample = samples[e.device_id, e.t]
        got = values_of(result)
        if e.device_id == "bin-1":
            assert got["distance_mm"] == sample.values["distance_mm"]
            assert got["battery_pct"] == sample.values["battery_pct"]
        elif e.device_id == "smoke-1":
            assert got["smoke"] == sample.values["smoke"]
            assert got["smoke_pct"] == round(float(sample.values["smoke_pct"]))
        elif e.device_id == "fence-1":
            assert got["contact_open"] == sample.values["contact_open"]
        elif e.device_id == "panel-1":
            fire = [r.value for r in result.readings if r.metric.value == "fire_alarm"]
            assert fire == [sample.values["fire_alarm"]]
        elif e.device_id == "cid-1":
            assert result.attributes["account"] == "4321"


def test_the_fire_shows_up_in_the_decoded_stream_and_in_the_truth() -> None:
    scenario = parse_scenario(SCENARIO)
    out = generate(scenario)
    smoke = [
        (e.t, values_of(decode_emission(scenario, e)).get("smoke"))
        for e in out.emissions
        if e.device_id == "smoke-1"
    ]
    first_alarm = min(t for t, v in smoke if v)
    assert 3600 <= first_alarm <= 3600 + 60  # event-driven report, not the 5-minute interval
    assert not any(v for t, v in smoke if t < 3600)
    incidents = {(r.device, r.incident, r.t_s) for r in out.truth if r.source == "timeline"}
    assert ("smoke-1", "fire", 3600.0) in incidents
    assert ("fence-1", "breach", 7200.0) in incidents


def test_contact_id_panel_reports_edges_and_periodic_tests() -> None:
    scenario = parse_scenario(SCENARIO)
    out = generate(scenario)
    decoded = [decode_emission(scenario, e) for e in out.emissions if e.device_id == "cid-1"]
    events = [d for d in decoded if d.attributes["event_code"] != "602"]
    qualifiers = [d.attributes["qualifier"] for d in events]
    assert len(events) >= 2
    assert qualifiers[0] == "new"
    assert qualifiers[-1] == "restore"
    assert {d.attributes["event_code"] for d in events} == {"130", "131"}
    # a report with nothing new is a periodic test: the panel is online
    tests = [d for d in decoded if d.attributes["event_code"] == "602"]
    assert tests
    assert {(r.metric.value, r.value) for d in tests for r in d.readings} == {("online", True)}


def test_chirpstack_events_count_up_and_look_like_chirpstack() -> None:
    scenario = parse_scenario(SCENARIO)
    out = generate(scenario)
    events = [json.loads(e.payload) for e in out.emissions if e.device_id == "bin-1"]
    assert [ev["fCnt"] for ev in events] == list(range(len(events)))
    first = events[0]
    assert first["fPort"] == 85
    assert first["deviceInfo"]["deviceName"] == "bin-1"
    assert len(first["deviceInfo"]["devEui"]) == 16
    assert -130 < first["rxInfo"][0]["rssi"] < -30
    assert first["txInfo"]["modulation"]["lora"]["spreadingFactor"] in range(7, 13)
    topic = next(e.topic for e in out.emissions if e.device_id == "bin-1")
    assert (
        topic
        == f"application/{first['deviceInfo']['applicationId']}/device/{first['deviceInfo']['devEui']}/event/up"
    )


def test_raw_frames_carry_time_and_device() -> None:
    scenario = parse_scenario(SCENARIO)
    out = generate(scenario, duration=1800)
    frames = list(raw_frames(scenario, out))
    assert frames
    assert all(f.device_id in {d.id for d in scenario.devices} for _, f in frames)
    assert [t for t, _ in frames] == sorted(t for t, _ in frames)


def test_bins_fill_by_day_and_are_emptied_at_pickup() -> None:
    text = SCENARIO.replace("duration: 6h", "duration: 3d")
    scenario = parse_scenario(text)
    out = generate(scenario)
    fills = [(s.t, float(s.values["fill_pct"])) for s in out.samples if s.device_id == "bin-1"]
    for day in range(3):
        before = [f for t, f in fills if day * 86400 + 6.5 * 3600 <= t < day * 86400 + 7 * 3600]
        after = [f for t, f in fills if day * 86400 + 7.2 * 3600 <= t < day * 86400 + 7.6 * 3600]
        if day and before and after:
            assert after[0] < before[-1]
    evening = [f for t, f in fills if 86400 + 7.5 * 3600 <= t < 86400 + 21 * 3600]
    assert evening[-1] > evening[0] + 20


@pytest.mark.parametrize(
    "path", sorted(Path("simulators/scenarios").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_example_scenario_decodes_with_the_real_codecs(path: Path) -> None:
    scenario = load_scenario(path)
    out = generate(scenario, duration=min(scenario.duration, 2 * 86_400))
    assert {e.device_id for e in out.emissions} == {d.id for d in scenario.devices}
    assert {r.incident for r in out.truth if r.source == "timeline"} == {
        e.incident
        for e in scenario.timeline
        if e.incident and e.at < min(scenario.duration, 2 * 86_400)
    }
    corrupting = {"bit_flip", "truncate", "garbage", "split_writes"}
    for e in out.emissions:
        if corrupting.isdisjoint(e.tags):
            decode_emission(scenario, e)  # raises DecodeError on a single wrong byte


def test_clock_skew_moves_the_time_tags_devices_put_in_their_frames() -> None:
    text = (
        SCENARIO
        + "  - {at: 0s, fault: clock_skew, devices: [panel-1], params: {offset_s: -3600}}\n"
    )
    scenario = parse_scenario(text)
    out = generate(scenario, duration=3600)
    frames = [e for e in out.emissions if e.device_id == "panel-1"]
    assert frames
    for e in frames:
        readings = decode_emission(scenario, e).readings
        sent = at_time(scenario, e.t)
        assert all(abs((r.ts - sent).total_seconds() + 3600) <= 1 for r in readings)
    plain = generate(parse_scenario(SCENARIO), duration=3600)
    assert [e.t for e in plain.emissions] == [e.t for e in out.emissions]
