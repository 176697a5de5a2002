"""What every compiled rule has, and what the engine may call on one (no pydantic on the hot path).

A rule file's rule is compiled once into an object of its kind (`rules.kinds`): comparisons bound to
functions, durations in seconds, and the kind's own evaluation. The engine calls only the hooks
declared here, so it never asks which kind a rule is:

- `subject(device_id, info)`: the alarm subject a device's readings feed (the device itself, or a
  composite rule's scope), or `None` when the device cannot feed the rule;
- `observe(...)`: one reading of the rule's metric (for rules with `reads_readings`);
- `on_tick(...)`: re-evaluation of a pending or active instance when time passes;
- `falls_silent(...)`: whether an active instance's subject has gone silent (it then turns NO_DATA);
- `sweep(...)` / `wake(...)`: for rules with `sweeps`, every tick and on every reading of a device.

`Host` is what a compiled rule may use of the engine that runs it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Final, Protocol
from zoneinfo import ZoneInfo

from core.metrics import Metric
from core.site import DeviceInfo
from core.types import AlarmEvent, AlarmState, Scalar, Severity, WorkOrderHint

if TYPE_CHECKING:
    from rules.daily_range import DailyRange
    from rules.fields import Condition, Match
    from rules.models import ConditionRule, RuleKind
    from rules.spec import LoadedRule
    from rules.state import Instance
    from rules.stores import EngineState
    from rules.windows import SampleWindow

Test = Callable[[float | bool], bool]
Events = list[AlarmEvent]
"""Where evaluation appends the events it causes."""


class Host(Protocol):
    """What a compiled rule may use of the engine that evaluates it."""

    @property
    def state(self) -> EngineState:
        """The engine's alarm instances, windows, composite hits and last-heard times."""
        ...

    @property
    def devices(self) -> Mapping[str, DeviceInfo]:
        """Every device the gateway knows."""
        ...

    def info(self, device_id: str) -> DeviceInfo | None:
        """What the gateway knows of a device (a panel's part is known through its panel)."""
        ...

    def location(self, subject: str) -> str:
        """The place of a subject, for a new alarm instance."""
        ...

    def emit(self, inst: Instance, rule: CompiledRule, state: AlarmState, t: float) -> AlarmEvent:
        """The event reporting `state` for an instance (sequence number, suppression flags)."""
        ...


class Observe(Protocol):
    """A compiled rule's `observe`, bound: what an engine's plan calls for each reading."""

    def __call__(  # noqa: PLR0917 - the hot path passes what it holds, positionally
        self,
        host: Host,
        device_id: str,
        subject: str,
        value: float | bool,  # noqa: FBT001
        window: SampleWindow | None,
        t: float,
        out: Events,
    ) -> None:
        """Evaluate one reading."""
        ...


def condition_test(condition: Condition) -> tuple[Test, str, Scalar]:
    """The comparison as a function, its key (`above`, `below`, `equals`) and its threshold."""
    if condition.above is not None:
        return partial(operator.lt, condition.above), "above", condition.above
    if condition.below is not None:
        return partial(operator.gt, condition.below), "below", condition.below
    target = condition.equals
    assert target is not None  # noqa: S101 - the spec guarantees exactly one comparison
    return partial(operator.eq, target), "equals", target


def negate(test: Test) -> Test:
    """The opposite comparison."""
    return lambda value: not test(value)


NEVER: Final[Test] = partial(operator.is_, None)
"""A comparison no reading meets."""


class CompiledRule:
    """The part of a compiled rule the state machine, events and suppression read, for every kind.

    Subclasses (one per kind, in `rules.kinds`) set the condition and override the hooks.
    """

    kind: ClassVar[str] = ""
    """The kind of evaluation, for counters and messages."""
    reads_readings: ClassVar[bool] = True
    """Whether readings of the matched metric are given to `observe`."""
    sweeps: ClassVar[bool] = False
    """Whether `sweep` runs every tick and `wake` on every reading."""

    __slots__ = (
        "active_hours",
        "active_state",
        "armed",
        "clear",
        "clear_for_s",
        "description",
        "entry_delay_s",
        "escalate_after_s",
        "escalate_to",
        "evidence",
        "for_s",
        "hint",
        "horizon",
        "id",
        "inhibited_by",
        "keep_firing_for_s",
        "match",
        "metric",
        "resend_s",
        "rule",
        "severity",
        "test",
        "tz",
        "version",
    )

    def __init__(self, loaded: LoadedRule) -> None:
        rule: RuleKind = loaded.rule
        self.rule = rule
        self.id = rule.id
        self.version = rule.version
        self.description = rule.description
        self.match: Match = rule.match
        self.metric: Metric | None = rule.match.metric
        self.evidence: dict[str, Scalar] = {}
        self.test: Test = NEVER
        self.clear: Test = NEVER
        self.for_s = 0.0
        self.clear_for_s = 0.0
        self.keep_firing_for_s = 0.0
        self.entry_delay_s = 0.0
        self.escalate_after_s: float | None = None
        self.escalate_to: Severity | None = None
        self.active_state = AlarmState.FIRING
        self.active_hours: DailyRange | None = None
        self.horizon = 0.0  # how far back the rule reads a device's samples (0: it reads none)
        self.resend_s = rule.resend
        self.severity = rule.severity
        self.hint = (
            WorkOrderHint(rule.work_order.category, rule.work_order.priority)
            if rule.work_order
            else None
        )
        self.tz = ZoneInfo(loaded.timezone)
        self.armed: DailyRange | None = rule.armed
        self.inhibited_by = rule.inhibited_by

    # -- the hooks the engine calls ---------------------------------------------------------------

    def subject(self, device_id: str, info: DeviceInfo | None) -> str | None:  # noqa: ARG002 - for overrides
        """The alarm subject a device's readings feed: the device itself, unless a kind says otherwise."""
        return device_id

    def observe(  # noqa: PLR0917 - the hot path passes what it holds, positionally
        self,
        host: Host,
        device_id: str,
        subject: str,
        value: float | bool,  # noqa: FBT001
        window: SampleWindow | None,
        t: float,
        out: Events,
    ) -> None:
        """Evaluate one good reading of the rule's metric at `t` (`window`: the device's samples)."""
        raise NotImplementedError(self.kind)

    def on_tick(self, host: Host, inst: Instance, t: float, out: Events) -> None:
        """Re-evaluate a pending or active instance when time passes (nothing, unless a kind says so)."""

    def falls_silent(self, host: Host, subject: str, t: float) -> bool:  # noqa: ARG002 - for overrides
        """Whether an active instance's subject has gone silent (never, unless a kind says so)."""
        return False

    def sweep(self, host: Host, t: float, out: Events) -> None:
        """Every tick, for rules with `sweeps`."""

    def wake(self, host: Host, device_id: str, t: float, out: Events) -> None:
        """On every reading of a device, for rules with `sweeps`."""

    # -- shared by every kind ---------------------------------------------------------------------

    def matches(self, device_id: str, info: DeviceInfo | None) -> bool:
        """Whether the rule applies to a device (unknown devices match only rules without kind/labels/location)."""
        match = self.match
        if match.devices and device_id not in match.devices:
            return False
        if info is None:
            return not match.needs_device_info
        if match.kinds and info.kind not in match.kinds:
            return False
        if match.location.parts and not info.location.within(match.location):
            return False
        return all(info.labels.get(k) == v for k, v in match.labels.items())

    def local(self, t: float) -> datetime:
        """The wall-clock time of the rule's time zone at epoch seconds `t`."""
        return datetime.fromtimestamp(t, UTC).astimezone(self.tz)

    def is_armed(self, t: float) -> bool:
        """Whether the rule's armed schedule (if any) is on at `t`."""
        return self.armed is None or self.armed.contains(self.local(t))

    def in_active_hours(self, t: float) -> bool:
        """Whether the rule evaluates at `t` (always, unless it has `active_hours`)."""
        return self.active_hours is None or self.active_hours.contains(self.local(t))

    def hold_s(self, t: float) -> float:
        """How long the condition must hold before firing: `for`, plus the entry delay while armed."""
        if self.armed is not None and self.entry_delay_s and self.is_armed(t):
            return self.for_s + self.entry_delay_s
        return self.for_s


class ConditionCompiled(CompiledRule):
    """A compiled rule that fires on a comparison held for `for` (threshold, window, composite)."""

    __slots__ = ()

    def __init__(self, loaded: LoadedRule, rule: ConditionRule) -> None:
        super().__init__(loaded)
        self.test, op, threshold = condition_test(rule.condition)
        self.evidence[op] = threshold
        self.clear = negate(self.test)
        self.for_s = rule.for_
        self.clear_for_s = rule.clear_for
        self.keep_firing_for_s = rule.keep_firing_for
        self.entry_delay_s = rule.entry_delay
        if rule.escalate is not None:
            self.escalate_after_s = rule.escalate.after
            self.escalate_to = rule.escalate.to
        self.active_state = AlarmState.FAULT if rule.raises == "fault" else AlarmState.FIRING
