from pathlib import Path

import pytest

from core.durations import parse_duration
from rules.daily_range import DailyRange
from rules.errors import RuleFileError
from rules.spec import ThresholdRule, load_rule_files, parse_rules

GOOD = """
rules:
  - id: bin_full
    match: {metric: fill_pct, kinds: [bin]}
    above: 85
    for: 10m
    clear: {below: 60}
"""

BAD = """timezone: Mars/Olympus
rules:
  - id: ok_rule
    match: {metric: smoke}
    equals: true
  - id: Bad Id
    match: {metric: smoke}
    equals: true
  - id: no_condition
    match: {metric: fill_pct}
  - id: wrong_duration
    match: {metric: fill_pct}
    above: 3
    for: ten minutes
  - id: boolean_above
    match: {metric: smoke}
    above: 0.5
"""


def test_good_file_loads_with_durations_in_seconds() -> None:
    ruleset = parse_rules(GOOD, "good.yaml")
    rule = ruleset.rule("bin_full")
    assert isinstance(rule, ThresholdRule)
    assert rule.for_ == 600
    assert rule.clear is not None
    assert rule.clear.below == 60


def test_every_error_is_reported_at_once_with_file_and_line() -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(BAD, "bad.yaml")
    errors = caught.value.errors
    assert any(e.startswith("bad.yaml:1:") and "Mars/Olympus" in e for e in errors)
    assert any(e.startswith("bad.yaml:6:") and "rules.1.id" in e for e in errors)
    assert any(
        e.startswith("bad.yaml:9:") and "exactly one of above, below, equals" in e for e in errors
    )
    assert any(e.startswith("bad.yaml:14:") and "not a duration" in e for e in errors)
    assert any(e.startswith("bad.yaml:15:") and "boolean" in e for e in errors)
    assert len(errors) == 5


def test_errors_across_files_are_collected_and_nothing_loads(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    dup = tmp_path / "dup.yaml"
    dup.write_text(GOOD.replace("above: 85", "above: 90\n    inhibited_by: [ghost]"))
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("rules:\n  - id: x\n    match: {metric: smoke\n")
    with pytest.raises(RuleFileError) as caught:
        load_rule_files([good, dup, syntax, tmp_path / "missing.yaml"])
    text = str(caught.value)
    assert f"{dup}:3: rules.0: duplicate rule id 'bin_full' (first at {good}:3)" in text
    assert f"{syntax}:4: YAML syntax" in text
    assert f"{tmp_path / 'missing.yaml'}: cannot read rule file" in text


def test_duplicate_keys_are_errors() -> None:
    with pytest.raises(RuleFileError, match=r"x.yaml:6: duplicate key 'above'"):
        parse_rules(GOOD.replace("for: 10m", "above: 90"), "x.yaml")


def test_cross_field_rules() -> None:
    composite = """
rules:
  - id: burst
    type: composite
    match: {metric: intrusion}
    equals: true
    scope: room
"""
    with pytest.raises(RuleFileError) as caught:
        parse_rules(composite, "c.yaml")
    assert "c.yaml:7: rules.0.scope" in str(caught.value)
    entry = GOOD.replace("for: 10m", "entry_delay: 30s")
    with pytest.raises(RuleFileError, match="entry_delay needs an armed schedule"):
        parse_rules(entry, "e.yaml")


def test_unknown_unit_timezone_given_by_the_site_is_an_error() -> None:
    with pytest.raises(RuleFileError, match="unknown time zone"):
        parse_rules(GOOD, timezone="Nowhere/City")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172800), (45, 45), ("250ms", 0.25)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten", "-5", "5x", True, "1h 30m"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_daily_range_wraps_midnight() -> None:
    from datetime import datetime  # noqa: PLC0415

    armed = DailyRange.parse("22:00-06:00")
    assert armed.contains(datetime(2026, 1, 1, 23, 0))  # noqa: DTZ001
    assert armed.contains(datetime(2026, 1, 1, 5, 59))  # noqa: DTZ001
    assert not armed.contains(datetime(2026, 1, 1, 6, 0))  # noqa: DTZ001
    assert str(armed) == "22:00-06:00"
    start = armed.period_start(datetime(2026, 1, 2, 3, 0))  # noqa: DTZ001
    assert start == datetime(2026, 1, 1, 22, 0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="time of day"):
        DailyRange.parse("22:00-6:61")
