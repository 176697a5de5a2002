"""One evaluator per kind of rule; `compile_rule` picks it from the rule's model, once.

| model | evaluator | module |
|---|---|---|
| `ThresholdRule` | `ThresholdEvaluator` | `rules.kinds.threshold` |
| `ThresholdRule` with `window` | `WindowEvaluator` | `rules.kinds.window` |
| `CompositeRule` | `CompositeEvaluator` | `rules.kinds.composite` |
| `NoDataRule` | `NoDataEvaluator` | `rules.kinds.no_data` |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from rules.kinds.composite import CompositeEvaluator
from rules.kinds.no_data import NoDataEvaluator
from rules.kinds.threshold import ThresholdEvaluator
from rules.kinds.window import WindowEvaluator
from rules.models import CompositeRule, NoDataRule, ThresholdRule

if TYPE_CHECKING:
    from rules.compiled import CompiledRule
    from rules.spec import LoadedRule


def compile_rule(loaded: LoadedRule) -> CompiledRule:
    """The evaluator of a validated rule."""
    rule = loaded.rule
    if isinstance(rule, ThresholdRule):
        if rule.window is not None:
            return WindowEvaluator(loaded, rule, rule.window)
        return ThresholdEvaluator(loaded, rule)
    if isinstance(rule, CompositeRule):
        return CompositeEvaluator(loaded, rule)
    if isinstance(rule, NoDataRule):
        return NoDataEvaluator(loaded, rule)
    assert_never(rule)


__all__ = [
    "CompositeEvaluator",
    "NoDataEvaluator",
    "ThresholdEvaluator",
    "WindowEvaluator",
    "compile_rule",
]
