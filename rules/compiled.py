"""Rules turned into plain objects the engine can evaluate fast (no pydantic on the hot path)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Final
from zoneinfo import ZoneInfo

from core.metrics import Metric
from core.site import LEVELS, DeviceInfo
from core.types import AlarmState, Scalar, Severity, WorkOrderHint
from rules.parsing import DailyRange
from rules.spec import Condition, LoadedRule, Rule

Test = Callable[[float | bool], bool]


def _test(condition: Condition) -> tuple[Test, str, Scalar]:
    if condition.above is not None:
        return partial(operator.lt, condition.above), "above", condition.above
    if condition.below is not None:
        return partial(operator.gt, condition.below), "below", condition.below
    target = condition.equals
    assert target is not None  # noqa: S101 - the spec guarantees exactly one comparison
    return partial(operator.eq, target), "equals", target


def _negate(test: Test) -> Test:
    return lambda value: not test(value)


_NEVER: Final[Test] = partial(operator.is_, None)


class CompiledRule:
    """A validated rule with its comparisons bound to functions and its durations in seconds."""

    __slots__ = (
        "active_hours",
        "active_state",
        "armed",
        "clear",
        "clear_for_s",
        "count_devices",
        "entry_delay_s",
        "escalate_after_s",
        "escalate_to",
        "evidence",
        "for_s",
        "hint",
        "id",
        "inhibited_by",
        "keep_firing_for_s",
        "match",
        "metric",
        "min_count",
        "no_data_factor",
        "resend_s",
        "rule",
        "scope_index",
        "scope_level",
        "severity",
        "test",
        "type",
        "tz",
        "version",
        "window",
        "within_s",
    )

    def __init__(self, loaded: LoadedRule) -> None:
        rule: Rule = loaded.rule
        self.rule = rule
        self.id = rule.id
        self.version = rule.version
        self.type = rule.type
        self.match = rule.match
        self.metric: Metric | None = rule.match.metric
        self.evidence: dict[str, Scalar] = {}
        condition = rule.condition
        if condition is None:
            self.test, self.clear = _NEVER, _NEVER
        else:
            self.test, op, threshold = _test(condition)
            self.evidence[op] = threshold
            if rule.clear is not None:
                self.clear, clear_op, clear_threshold = _test(rule.clear)
                self.evidence[f"clear_{clear_op}"] = clear_threshold
            else:
                self.clear = _negate(self.test)
        self.window = rule.window
        if rule.window is not None:
            self.evidence["agg"] = rule.window.agg
            self.evidence["window_s"] = rule.window.over
        self.for_s = rule.for_
        self.clear_for_s = rule.clear_for
        self.keep_firing_for_s = rule.keep_firing_for
        self.resend_s = rule.resend
        self.severity = rule.severity
        self.escalate_after_s = rule.escalate.after if rule.escalate else None
        self.escalate_to: Severity | None = rule.escalate.to if rule.escalate else None
        self.active_state = AlarmState.FAULT if rule.raises == "fault" else AlarmState.FIRING
        self.hint = (
            WorkOrderHint(rule.work_order.category, rule.work_order.priority)
            if rule.work_order
            else None
        )
        self.tz = ZoneInfo(loaded.timezone)
        self.armed: DailyRange | None = rule.armed
        self.entry_delay_s = rule.entry_delay
        self.active_hours: DailyRange | None = rule.active_hours
        self.no_data_factor = rule.no_data_factor
        self.inhibited_by = rule.inhibited_by
        self.scope_level = rule.scope
        self.scope_index = LEVELS.index(rule.scope) if rule.scope else -1
        self.within_s = rule.within or 0.0
        self.count_devices = rule.min_devices is not None
        self.min_count = rule.min_devices or rule.min_events or 0

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

    def scope_of(self, info: DeviceInfo | None) -> str | None:
        """The composite subject of a device (`unit:a/b/c/d/e/f/u1`), or `None` if its path is too short."""
        if info is None or self.scope_level is None or len(info.location.parts) <= self.scope_index:
            return None
        return f"{self.scope_level}:{info.location.truncate(self.scope_level)}"

    def local(self, t: float) -> datetime:
        """The wall-clock time of the rule's time zone at epoch seconds `t`."""
        return datetime.fromtimestamp(t, UTC).astimezone(self.tz)

    def is_armed(self, t: float) -> bool:
        """Whether the rule's armed schedule (if any) is on at `t`."""
        return self.armed is None or self.armed.contains(self.local(t))

    def in_active_hours(self, t: float) -> bool:
        """Whether the rule evaluates at `t` (always, unless it has `active_hours`)."""
        return self.active_hours is None or self.active_hours.contains(self.local(t))

    def window_start(self, t: float) -> float:
        """The earliest sample time a window rule looks at when evaluated at `t`."""
        assert self.window is not None  # noqa: S101 - callers check
        start = t - self.window.over
        if self.active_hours is not None:
            period = self.active_hours.period_start(self.local(t))
            if period is not None:
                start = max(start, period.timestamp())
        return start

    def hold_s(self, t: float) -> float:
        """How long the condition must hold before firing: `for`, plus the entry delay while armed."""
        if self.armed is not None and self.entry_delay_s and self.is_armed(t):
            return self.for_s + self.entry_delay_s
        return self.for_s
