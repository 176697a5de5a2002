"""Each kind of rule is its own model with only its own keys, and compiles to its own evaluator."""

from __future__ import annotations

import pytest

from core.issues import Issue
from rules.errors import RuleFileError
from rules.kinds import (
    CompositeEvaluator,
    NoDataEvaluator,
    ThresholdEvaluator,
    WindowEvaluator,
    compile_rule,
)
from rules.packs import default_pack
from rules.spec import (
    CompositeRule,
    NoDataRule,
    ThresholdRule,
    load_rule_files,
    parse_rules,
)

THRESHOLD = "  - id: r1\n    match: {metric: fill_pct}\n    above: 80\n"
COMPOSITE = (
    "  - id: c1\n    type: composite\n    match: {metric: smoke}\n    equals: true\n"
    "    scope: unit\n    within: 60s\n    min_devices: 2\n"
)
NO_DATA = "  - id: n1\n    type: no_data\n    match: {kinds: [bin]}\n"


def errors_of(body: str) -> tuple[str, ...]:
    with pytest.raises(RuleFileError) as caught:
        parse_rules("rules:\n" + body, "k.yaml")
    return caught.value.errors


def test_each_type_loads_as_its_own_model() -> None:
    ruleset = parse_rules("rules:\n" + THRESHOLD + COMPOSITE + NO_DATA)
    assert [type(loaded.rule) for loaded in ruleset.rules] == [
        ThresholdRule,
        CompositeRule,
        NoDataRule,
    ]
    assert parse_rules("rules:\n" + THRESHOLD.replace("r1", "r2") + "    type: threshold\n").rule(
        "r2"
    ) == parse_rules("rules:\n" + THRESHOLD.replace("r1", "r2")).rule("r2")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            THRESHOLD + "    scope: unit\n",
            "k.yaml:5: rules.0.scope: not valid for a threshold rule (a key of composite rules)",
        ),
        (
            NO_DATA + "    for: 10m\n",
            (
                "k.yaml:5: rules.0.for: not valid for a no_data rule "
                "(a key of threshold and composite rules)"
            ),
        ),
        (
            NO_DATA + "    above: 3\n",
            (
                "k.yaml:5: rules.0.above: not valid for a no_data rule "
                "(a key of threshold and composite rules)"
            ),
        ),
        (
            COMPOSITE + "    clear: {equals: false}\n",
            "k.yaml:9: rules.0.clear: not valid for a composite rule (a key of threshold rules)",
        ),
        (
            COMPOSITE + "    no_data_factor: 4\n",
            (
                "k.yaml:9: rules.0.no_data_factor: not valid for a composite rule "
                "(a key of threshold and no_data rules)"
            ),
        ),
        (THRESHOLD + "    abvoe: 80\n", "k.yaml:5: rules.0.abvoe: not valid for a threshold rule"),
    ],
)
def test_a_key_of_another_kind_is_refused_by_name(body: str, expected: str) -> None:
    assert errors_of(body) == (expected,)


def test_a_wrong_type_lists_the_valid_types_at_its_line() -> None:
    (error,) = errors_of(THRESHOLD + "    type: thresold\n")
    assert error == (
        "k.yaml:5: rules.0.type: unknown rule type 'thresold'; "
        "valid types: threshold, composite, no_data"
    )
    (error,) = errors_of(THRESHOLD + "    type: [composite]\n")
    assert error.startswith("k.yaml:5: rules.0.type: unknown rule type list; valid types: ")


def test_a_rule_that_is_not_a_mapping_says_so() -> None:
    assert errors_of("  - just text\n") == (
        "k.yaml:2: rules.0: a rule is a mapping of keys (id, match, ...), not str",
    )


def test_a_key_a_kind_needs_is_named_with_the_kind() -> None:
    body = COMPOSITE.replace("    within: 60s\n", "")
    assert errors_of(body) == ("k.yaml:2: rules.0.within: required for a composite rule",)
    assert errors_of(COMPOSITE.replace("    min_devices: 2\n", "")) == (
        "k.yaml:2: rules.0: a composite rule needs exactly one of min_devices, min_events",
    )


def test_rule_file_errors_carry_issues_with_file_line_and_message() -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules("rules:\n" + THRESHOLD + "    scope: unit\n", "k.yaml")
    assert caught.value.issues == (
        Issue(
            "k.yaml", 5, "rules.0.scope: not valid for a threshold rule (a key of composite rules)"
        ),
    )
    assert caught.value.errors == tuple(
        f"{i.file}:{i.line}: {i.message}" for i in caught.value.issues
    )


def test_rule_versions_hash_the_content_not_the_model() -> None:
    """Versions gateways already hold in their snapshots stay valid across releases."""
    text = """
rules:
  - id: everything
    description: all keys
    match: {metric: intrusion, kinds: [perimeter], devices: [a, b], labels: {zone: n}, location: d/s}
    equals: true
    clear: {equals: false}
    for: 10s
    clear_for: 5s
    keep_firing_for: 1m
    severity: warning
    escalate: {after: 5m, to: critical}
    raises: fault
    work_order: {category: security, priority: high}
    armed: "22:00-06:00"
    entry_delay: 30s
    active_hours: "21:00-07:00"
    timezone: Asia/Shanghai
    no_data_factor: 4
    resend: 2m
    inhibited_by: [burst]
  - id: burst
    type: composite
    match: {metric: intrusion}
    equals: true
    scope: compound
    within: 5m
    min_events: 3
  - id: quiet
    type: no_data
    match: {kinds: [bin]}
    no_data_factor: 2.5
  - id: win
    match: {metric: fill_pct}
    window: {agg: forecast_hours, over: 12h, target: 100, min_samples: 4, min_span: 2h, reset_drop: 30}
    below: 6
"""
    versions = {loaded.rule.id: loaded.rule.version for loaded in parse_rules(text).rules}
    assert versions == {
        "everything": "a55dfb4dd10f",
        "burst": "24e677789aa7",
        "quiet": "72a701a91c94",
        "win": "4f5431bbf5a6",
    }


def test_every_rule_of_the_default_pack_compiles_to_the_evaluator_of_its_kind() -> None:
    ruleset = load_rule_files(default_pack(), timezone="Asia/Shanghai")
    kinds = {loaded.rule.id: type(compile_rule(loaded)) for loaded in ruleset.rules}
    assert kinds["bin_fill_high"] is ThresholdEvaluator
    assert kinds["bin_full_forecast"] is WindowEvaluator
    assert kinds["meter_night_flow_leak"] is WindowEvaluator
    assert kinds["smoke_confirmed_fire"] is CompositeEvaluator
    assert kinds["perimeter_burst"] is CompositeEvaluator
    assert kinds["device_no_data"] is NoDataEvaluator
    assert {k.kind for k in kinds.values()} == {"threshold", "window", "composite", "no_data"}
