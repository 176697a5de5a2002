from __future__ import annotations

from pathlib import Path

import pytest

from core.issues import Issue
from simulators.faults import Drop
from simulators.scenario import ScenarioError, build_fault, load_scenario, parse_scenario

SCENARIOS = sorted(Path("simulators/scenarios").glob("*.yaml"))

GOOD = """\
name: t
start: 2026-01-05T00:00:00+08:00
duration: 1h
site:
  path: d/s/c/g
  compounds:
    - id: c1
      buildings:
        - {id: b1, units: [u1]}
devices:
  - {id: bin-1, kind: bin, codec: lorawan.milesight.em310_udl, transport: lorawan, location: c1/b1}
timeline:
  - {at: 10m, device: bin-1, incident: overflow, duration: 5m}
  - {at: 0s, fault: drop, devices: [bin-1], params: {p: 0.5}}
"""


def test_example_scenarios_are_valid() -> None:
    assert len(SCENARIOS) >= 7
    for path in SCENARIOS:
        scenario = load_scenario(path)
        assert scenario.devices


def test_a_good_scenario_parses_with_durations_and_faults() -> None:
    s = parse_scenario(GOOD)
    assert s.duration == 3600
    assert s.timeline[0].at == 600
    assert s.timeline[0].end == 900
    assert str(s.location(s.devices[0])) == "d/s/c/g/c1/b1"
    fault = build_fault(s.timeline[1])
    assert isinstance(fault, Drop)
    assert fault.p == 0.5
    assert fault.scope.devices == ("bin-1",)


@pytest.mark.parametrize(
    ("old", "new", "line", "text"),
    [
        ("duration: 1h", "duration: soon", 3, "duration"),
        ("location: c1/b1}", "location: c9}", 11, "not in the site tree"),
        ("transport: lorawan", "transport: zigbee2mqtt", 11, "does not belong"),
        ("device: bin-1, incident", "device: bin-9, incident", 13, "unknown device 'bin-9'"),
        ("fault: drop", "fault: gremlins", 14, "unknown fault"),
        ("params: {p: 0.5}", "params: {q: 0.5}", 14, "fault drop"),
        ("{at: 10m,", "{at: 2h,", 13, "after the scenario ends"),
        ("kind: bin, codec", "kind: bin, colour: red, codec", 11, "colour"),
        ("milesight.em310_udl", "milesight.em999", 11, "no codec 'lorawan.milesight.em999'"),
        ("kind: bin,", "kind: toaster,", 11, "no behaviour model for device kind 'toaster'"),
        ("location: c1/b1}", "location: c1/b1, params: {lid: 3}}", 11, "model parameters"),
    ],
)
def test_errors_name_file_and_line(old: str, new: str, line: int, text: str) -> None:
    assert old in GOOD
    with pytest.raises(ScenarioError) as info:
        parse_scenario(GOOD.replace(old, new), "site.yaml")
    messages = [str(i) for i in info.value.issues]
    assert any(m.startswith(f"site.yaml:{line}:") and text in m for m in messages), messages


def test_yaml_syntax_errors_carry_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("  compounds:", "  compounds: [\n"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}:")


def test_every_problem_is_reported_at_once() -> None:
    bad = GOOD.replace("duration: 1h", "duration: soon").replace("fault: drop", "fault: x")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(bad)
    assert len(info.value.issues) >= 2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), ("45s", 45.0), ("30m", 1800.0), ("2h", 7200.0), ("7d", 604800.0), ("1h30m", 5400)],
)
def test_durations(text: object, seconds: float) -> None:
    doc = GOOD.replace("location: c1/b1}", f"location: c1/b1, interval: {text}}}")
    assert parse_scenario(doc).devices[0].interval == seconds


@pytest.mark.parametrize(
    ("old", "new", "line", "text"),
    [
        ("start: 2026-01-05T00:00:00+08:00", "start: 2026-13-05", 2, "month must be in 1..12"),
        ("name: t", "name: !!timestamp x", 1, "!!timestamp 'x' is not valid"),
        ("name: t", "name: t\nseed: -1", 2, "seed: Input should be greater than or equal to 0"),
        ("duration: 1h", "duration: .inf", 3, "duration: a duration is at most 366d"),
        ("duration: 1h", "duration: .nan", 3, "duration: not a duration"),
        ("location: c1/b1}", "location: c1/b1, interval: true}", 11, "interval: not a duration"),
        ("location: c1/b1}", "location: c1/b1, params: {depth_mm: .nan}}", 11, "finite number"),
        ("{p: 0.5}", "{p: .inf}", 14, "finite number"),
        ("name: t", "name: t\nname: u", 2, "duplicate key 'name' (first at line 1)"),
        ("name: t", "name: &n [*n]", 1, "refers to itself"),
        ("name: t", "name: t\x00", 1, "non-printable character U+0000 (NUL)"),
    ],
)
def test_hostile_values_are_located_errors(old: str, new: str, line: int, text: str) -> None:
    assert old in GOOD
    with pytest.raises(ScenarioError) as info:
        parse_scenario(GOOD.replace(old, new), "site.yaml")
    messages = [str(i) for i in info.value.issues]
    assert any(m.startswith(f"site.yaml:{line}:") and text in m for m in messages), messages


def test_an_empty_or_unreadable_scenario_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"^site.yaml:1: the file is empty"):
        parse_scenario("", "site.yaml")
    with pytest.raises(ScenarioError, match="not a regular file"):
        load_scenario("/dev/zero")
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "line", "text"),
    [
        ("duration: 1h", "duraton: 1h", 3, "duraton: unknown key; did you mean duration?"),
        ("  path: d/s/c/g", "  pth: d/s/c/g", 5, "site.pth: unknown key; did you mean path?"),
        (
            "location: c1/b1}",
            "location: c1/b1, intervl: 5m}",
            11,
            "devices.0.intervl: unknown key; did you mean interval?",
        ),
        (
            "{at: 10m,",
            "{at: 10m, detect_whithin: 5m,",
            13,
            "timeline.0.detect_whithin: unknown key; did you mean detect_within?",
        ),
        ("name: t", "name: t\nzzz: 1", 2, "zzz: unknown key; known: "),
    ],
)
def test_an_unknown_key_suggests_the_nearest_known_one(
    old: str, new: str, line: int, text: str
) -> None:
    assert old in GOOD
    with pytest.raises(ScenarioError) as info:
        parse_scenario(GOOD.replace(old, new), "site.yaml")
    messages = [str(i) for i in info.value.issues]
    assert any(m.startswith(f"site.yaml:{line}: {text}") for m in messages), messages


def test_scenario_problems_are_the_shared_issue_type() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(GOOD.replace("duration: 1h", "duration: soon"), "site.yaml")
    assert info.value.issues == (
        Issue("site.yaml", 3, "duration: not a duration: 'soon' (use e.g. 45s, 20m, 1h30m, 2d)"),
    )
