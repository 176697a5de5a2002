"""The kinds of rule, one pydantic model each, told apart by the `type` key of a rule file.

| `type` | model | fires when |
|---|---|---|
| `threshold` (the default) | `ThresholdRule` | a device's value (or, with `window`, an aggregate of its recent values) meets the condition |
| `composite` | `CompositeRule` | enough devices (or triggers) of one scope met the condition within `within` |
| `no_data` | `NoDataRule` | a device stays silent longer than `no_data_factor` of its expected interval |

Each model declares only the keys its kind has, so a key of another kind is refused by name
(`scope: not valid for a threshold rule`), and checks its own cross-key rules. `Rule` is the union the
loader validates a rule file's entries against.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, ClassVar, Final, Literal, Self

from pydantic import AllowInfNan, Discriminator, Field, Strict, Tag, model_validator
from pydantic_core import to_json

from core.metrics import CATALOG, MetricKind
from core.types import ENVELOPE_LIMITS, Severity
from rules.fields import (
    ID_PATTERN,
    Condition,
    Count,
    DailyRangeField,
    Duration,
    EqualsValue,
    Escalation,
    Match,
    ScopeLevel,
    StrictModel,
    Threshold,
    Window,
    WorkOrder,
    ZoneName,
)

NoDataFactor = Annotated[
    float, Strict(), AllowInfNan(allow_inf_nan=False), Field(gt=1.0, le=1000.0)
]
"""Silence longer than the expected interval times this means NO_DATA."""

_VERSION_LAYOUT: Final[tuple[tuple[str, object], ...]] = (
    ("id", None),
    ("description", ""),
    ("type", "threshold"),
    ("match", None),
    ("above", None),
    ("below", None),
    ("equals", None),
    ("clear", None),
    ("window", None),
    ("for_", 0.0),
    ("clear_for", 0.0),
    ("keep_firing_for", 0.0),
    ("severity", "warning"),
    ("escalate", None),
    ("raises", "firing"),
    ("work_order", None),
    ("armed", None),
    ("entry_delay", 0.0),
    ("active_hours", None),
    ("timezone", None),
    ("no_data_factor", 3.0),
    ("resend", 60.0),
    ("inhibited_by", []),
    ("scope", None),
    ("within", None),
    ("min_devices", None),
    ("min_events", None),
)
"""Every key of the rule language, in the order the version hash covers them, with the value that
stands for "not given". The hash depends on a rule's content only, not on which model holds it."""


class RuleBase(StrictModel):
    """The keys every kind of rule has: who it is, what it watches, and how its events look."""

    kind: ClassVar[str]
    """The `type` of the rule in a rule file."""

    id: str = Field(pattern=ID_PATTERN, max_length=ENVELOPE_LIMITS.rule_id)
    description: str = Field(default="", max_length=ENVELOPE_LIMITS.description)
    match: Match
    severity: Severity = Severity.WARNING
    work_order: WorkOrder | None = None
    armed: DailyRangeField | None = None
    timezone: ZoneName | None = None
    resend: Duration = 60.0
    inhibited_by: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        """A short hash of the rule's content; changes whenever the rule does."""
        dumped = self.model_dump(mode="json")
        canonical = {key: dumped.get(key, absent) for key, absent in _VERSION_LAYOUT}
        return hashlib.sha256(to_json(canonical)).hexdigest()[:12]

    @classmethod
    def rule_keys(cls) -> frozenset[str]:
        """The keys a rule of this kind may have in a rule file."""
        return frozenset(f.alias or name for name, f in cls.model_fields.items())

    def problems(self) -> list[str]:
        """What is wrong across keys (each key alone is valid); empty when nothing is."""
        return ["resend must be positive"] if self.resend <= 0 else []

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ConditionRule(RuleBase):
    """A rule that fires on a comparison held long enough (`for`): threshold and composite rules."""

    above: Threshold | None = None
    below: Threshold | None = None
    equals: EqualsValue | None = None
    for_: Duration = Field(default=0.0, alias="for")
    clear_for: Duration = 0.0
    keep_firing_for: Duration = 0.0
    escalate: Escalation | None = None
    raises: Literal["firing", "fault"] = "firing"
    entry_delay: Duration = 0.0

    @property
    def condition(self) -> Condition:
        """The firing condition."""
        return Condition(above=self.above, below=self.below, equals=self.equals)

    @property
    def compares_aggregate(self) -> bool:
        """Whether the condition compares an aggregate (a number) rather than the raw value."""
        return False

    @property
    def boolean(self) -> bool:
        """Whether the matched metric is a boolean one."""
        metric = self.match.metric
        return metric is not None and CATALOG[metric].kind is MetricKind.BOOLEAN

    def equals_values(self) -> tuple[tuple[str, bool | float | None], ...]:
        """Every `equals` of the rule, with the key it sits under."""
        return (("equals", self.equals),)

    def problems(self) -> list[str]:
        """Metric and condition present, comparisons like with like, schedules and escalation."""
        problems: list[str] = []
        if self.match.metric is None:
            problems.append("match.metric is required")
        given = [v for v in (self.above, self.below, self.equals) if v is not None]
        if len(given) != 1:
            problems.append("give exactly one of above, below, equals")
        metric = self.match.metric
        flags = self.boolean and not self.compares_aggregate
        if flags and (self.above is not None or self.below is not None):
            problems.append(f"{metric} is boolean: use equals: true/false (or a count_true window)")
        if metric is not None:
            problems.extend(self._equals_problems(flags=flags))
        problems.extend(self.kind_problems())
        if self.entry_delay and self.armed is None:
            problems.append("entry_delay needs an armed schedule")
        if self.escalate is not None and self.escalate.to.rank <= self.severity.rank:
            problems.append("escalate.to must be more severe than severity")
        problems.extend(super().problems())
        return problems

    def kind_problems(self) -> list[str]:
        """The checks of one kind only."""
        return []

    def _equals_problems(self, *, flags: bool) -> list[str]:
        """`equals` compares like with like: a boolean metric's raw value (`flags`), or a number."""
        problems = []
        for where, value in self.equals_values():
            if value is None:
                continue
            if flags and not isinstance(value, bool):
                problems.append(f"{self.match.metric} is boolean: {where} takes true or false")
            elif not flags and isinstance(value, bool):
                problems.append(f"{where} compares a number here: give a number, not {value}")
        return problems


class ThresholdRule(ConditionRule):
    """Fires when a device's value, or an aggregate over a window of its values, meets the condition."""

    kind: ClassVar[str] = "threshold"

    type: Literal["threshold"] = "threshold"
    clear: Condition | None = None
    window: Window | None = None
    active_hours: DailyRangeField | None = None
    no_data_factor: NoDataFactor = 3.0

    @property
    def compares_aggregate(self) -> bool:
        """A window's aggregate is a number, whatever the metric."""
        return self.window is not None

    def equals_values(self) -> tuple[tuple[str, bool | float | None], ...]:
        """`equals`, and `clear.equals` when there is a clear condition."""
        clear = self.clear.equals if self.clear is not None else None
        return (("equals", self.equals), ("clear.equals", clear))

    def kind_problems(self) -> list[str]:
        """A window's aggregate must suit the metric."""
        if self.window is None:
            return []
        if self.window.agg == "count_true" and not self.boolean:
            return ["window agg count_true needs a boolean metric"]
        if self.window.agg != "count_true" and self.boolean:
            return [f"window agg {self.window.agg} needs a numeric metric"]
        return []


class CompositeRule(ConditionRule):
    """Fires when enough devices or triggers of one scope meet the condition within `within`.

    `min_devices` counts distinct devices; `min_events` counts triggers (rising edges per device).
    """

    kind: ClassVar[str] = "composite"

    type: Literal["composite"]
    scope: ScopeLevel
    within: Duration
    min_devices: Count | None = None
    min_events: Count | None = None

    def kind_problems(self) -> list[str]:
        """Exactly one of the two counts."""
        if (self.min_devices is None) == (self.min_events is None):
            return ["a composite rule needs exactly one of min_devices, min_events"]
        return []


class NoDataRule(RuleBase):
    """Raises NO_DATA for a matched device silent longer than `no_data_factor` x its interval."""

    kind: ClassVar[str] = "no_data"

    type: Literal["no_data"]
    no_data_factor: NoDataFactor = 3.0


RuleKind = ThresholdRule | CompositeRule | NoDataRule
"""Any rule, as a type."""

RULE_KINDS: Final[Mapping[str, type[RuleKind]]] = {
    model.kind: model for model in (ThresholdRule, CompositeRule, NoDataRule)
}
"""The model of each `type`, in the order the documentation lists them."""


def _kind_of(value: object) -> str | None:
    """The `type` of a rule entry (`threshold` when absent); `None` for what is not a rule mapping."""
    if isinstance(value, dict):
        kind = value.get("type", ThresholdRule.kind)
        return kind if isinstance(kind, str) else None
    if isinstance(value, ThresholdRule | CompositeRule | NoDataRule):
        return value.kind
    return None


Rule = Annotated[
    Annotated[ThresholdRule, Tag(ThresholdRule.kind)]
    | Annotated[CompositeRule, Tag(CompositeRule.kind)]
    | Annotated[NoDataRule, Tag(NoDataRule.kind)],
    Discriminator(_kind_of),
]
"""One entry of a rule file's `rules`, validated as the model its `type` names."""


def unknown_key_message(kind: str, key: str) -> str:
    """Why `key` is refused on a rule of `kind`, naming the kinds that do have it."""
    owners = [name for name, model in RULE_KINDS.items() if key in model.rule_keys()]
    if owners:
        return f"not valid for a {kind} rule (a key of {' and '.join(owners)} rules)"
    return f"not valid for a {kind} rule"


def unknown_type_message(value: object) -> str:
    """Why a rule's `type` is refused, listing the valid ones."""
    shown = (
        repr(value) if isinstance(value, str | int | float | bool | None) else type(value).__name__
    )
    if len(shown) > 40:  # noqa: PLR2004
        shown = shown[:40] + "..."
    return f"unknown rule type {shown}; valid types: {', '.join(RULE_KINDS)}"
