"""Broken and hostile rule files and rule test files: located errors, never a traceback or a hang."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.errors import RuleFileError
from rules.spec import ThresholdRule, load_rule_files, parse_rules
from rules.testing import load_test_file

PACKS = Path(__file__).resolve().parents[2] / "rules" / "packs"


def rule(metric: str, body: str) -> str:
    return f"rules:\n  - id: r1\n    match: {{metric: {metric}}}\n    {body}\n"


def errors_of(text: str) -> tuple[str, ...]:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text, "r.yaml")
    return caught.value.errors


@pytest.mark.parametrize(
    ("metric", "body", "expected"),
    [
        ("fill_pct", "above: 80\n    for: .nan", "r.yaml:5: rules.0.for: not a duration"),
        (
            "fill_pct",
            "above: 80\n    for: 400d",
            "r.yaml:5: rules.0.for: a duration is at most 365d: '400d'",
        ),
        ("fill_pct", "above: .nan", "r.yaml:4: rules.0.above: expected a finite number"),
        ("fill_pct", "below: -.inf", "r.yaml:4: rules.0.below: expected a finite number"),
        ("fill_pct", "above: 1.0e+19", "r.yaml:4: rules.0.above: a threshold lies within"),
        ("fill_pct", "above: true", "r.yaml:4: rules.0.above: expected a number, got bool"),
        (
            "fill_pct",
            "above: 80\n    window: {agg: mean, over: .inf}",
            "r.yaml:5: rules.0.window.over: a duration is at most 365d: inf",
        ),
        (
            "fill_pct",
            "above: 80\n    clear: {below: .nan}",
            "r.yaml:5: rules.0.clear.below: expected a finite number",
        ),
        ("smoke", "equals: 1e19", "r.yaml:4: rules.0.equals: expected a number, got '1e19'"),
        ("smoke", "equals: 1", "r.yaml:2: rules.0: smoke is boolean: equals takes true or false"),
        (
            "smoke",
            "equals: true\n    clear: {equals: 0}",
            "r.yaml:2: rules.0: smoke is boolean: clear.equals takes true or false",
        ),
        ("fill_pct", "equals: true", "r.yaml:2: rules.0: equals compares a number here"),
        ("fill_pct", "above: 80\n    no_data_factor: .inf", "r.yaml:5: rules.0.no_data_factor:"),
        ("fill_pct", "above: 80\n    timezone: Asia", "r.yaml:5: rules.0.timezone: unknown time"),
    ],
)
def test_durations_thresholds_and_equals_are_checked(metric: str, body: str, expected: str) -> None:
    (error,) = errors_of(rule(metric, body))
    assert error.startswith(expected), error


def test_what_an_alarm_event_carries_fits_the_envelope_limits() -> None:
    long_id = "r" + "x" * 300
    text = (
        f"rules:\n  - id: {long_id}\n    match: {{metric: fill_pct}}\n    above: 80\n"
        f"    description: '{'d' * 5000}'\n"
        f"    work_order: {{category: '{'c' * 200}', priority: P3}}\n"
    )
    found = errors_of(text)
    assert any(e.startswith("r.yaml:2: rules.0.id: String should have at most 256") for e in found)
    assert any(
        e.startswith("r.yaml:5: rules.0.description: String should have at most") for e in found
    )
    assert any(e.startswith("r.yaml:6: rules.0.work_order.category: String should") for e in found)


def test_a_boolean_count_window_still_compares_numbers() -> None:
    text = rule("smoke", "equals: 3\n    window: {agg: count_true, over: 10m}")
    loaded = parse_rules(text, "r.yaml").rule("r1")
    assert isinstance(loaded, ThresholdRule)
    assert loaded.equals == 3


def test_a_file_level_zone_the_database_cannot_load_is_an_error() -> None:
    for zone in ("Asia", "A" * 300):
        (error,) = errors_of(f"timezone: {zone}\nrules: []\n")
        assert error.startswith("r.yaml:1: timezone: unknown time zone")


def test_yaml_problems_are_located_and_reported_together() -> None:
    errors = errors_of(rule("smoke", "equals: true\n    equals: false\n    for: !!int x"))
    assert errors == (
        "r.yaml:5: duplicate key 'equals' (first at line 4)",
        "r.yaml:6: !!int 'x' is not valid (invalid literal for int() with base 10: 'x')",
    )


def test_rule_files_that_are_not_regular_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError) as caught:
        load_rule_files(["/dev/zero", tmp_path])
    assert caught.value.errors == (
        "/dev/zero: cannot read rule file: not a regular file",
        f"{tmp_path}: cannot read rule file: is a directory, not a file",
    )


TEST_FILE = f"""rule_files: [{PACKS / "fire.yaml"}]
start: 2026-01-05T00:00:00Z
devices:
  smoke-1: {{kind: smoke}}
tests:
  - name: t
    input_series:
      - {{device: smoke-1, metric: smoke, values: "false true"}}
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("start: ", "timezone: Asia\nstart: ", "t.yaml:2: timezone: unknown time zone 'Asia'"),
        ("  - name: t\n", "  - name: t\n    tick: 0s\n", "t.yaml:7: tests.0.tick: must be longer"),
        ("  - name: t\n", "  - name: t\n    duration: 300d\n", "t.yaml:6: tests.0: runs more than"),
        ('"false true"', '"_x99999999"', "t.yaml:8: series expands to more than"),
        ('"false true"', '"1e999"', "t.yaml:8: series token '1e999' gives a number too large"),
        ("  - name: t\n", "  - name: t\n    duration: .inf\n", "t.yaml:7: tests.0.duration:"),
    ],
)
def test_rule_test_files_cannot_run_away(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = tmp_path / "t.yaml"
    assert old in TEST_FILE
    path.write_text(TEST_FILE.replace(old, new, 1))
    with pytest.raises(RuleFileError) as caught:
        load_test_file(path)
    error = caught.value.errors[0]
    assert error.startswith(f"{tmp_path}/{expected}"), error
