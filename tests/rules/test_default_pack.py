from pathlib import Path

import pytest

from rules.packs import DEFAULT_PACKS, PACKS_DIR, default_pack, pack_path
from rules.spec import load_rule_files
from rules.testing import TestOutcome, run_test_file

PACKS = PACKS_DIR
TEST_FILES = sorted((PACKS / "tests").glob("*.yaml"))


def _outcomes() -> list[TestOutcome]:
    return [outcome for path in TEST_FILES for outcome in run_test_file(path)]


OUTCOMES = _outcomes()


def test_default_pack_loads_and_every_rule_explains_itself() -> None:
    ruleset = load_rule_files(default_pack(), timezone="Asia/Shanghai")
    ids = {loaded.rule.id for loaded in ruleset.rules}
    assert {"smoke_alarm", "fire_alarm_reported", "manhole_tilt", "bin_full_forecast"} <= ids
    assert all(loaded.rule.description for loaded in ruleset.rules)
    text = "".join(path.read_text() for path in default_pack())
    assert text.count("# Why:") == len(ruleset.rules)
    assert all(entry.reason for entry in ruleset.not_alarmed)


@pytest.mark.parametrize("name", DEFAULT_PACKS)
def test_each_pack_file_loads_alone(name: str) -> None:
    """A site may name only the packs of the devices it has (`pack:fire, pack:health`)."""
    assert load_rule_files([pack_path(name)]).rules


def test_every_pack_rule_is_exercised_by_a_test_file() -> None:
    ruleset = load_rule_files(default_pack())
    tested = "".join(path.read_text() for path in TEST_FILES)
    untested = [r.rule.id for r in ruleset.rules if f"rule: {r.rule.id}," not in tested]
    assert untested == []


@pytest.mark.parametrize(
    "outcome", OUTCOMES, ids=[f"{Path(o.file).stem}: {o.name}" for o in OUTCOMES]
)
def test_pack_scenario(outcome: TestOutcome) -> None:
    assert outcome.passed, "\n".join(outcome.diff)
