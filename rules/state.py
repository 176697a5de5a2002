"""The edge alarm state machine of one (rule, subject) instance; pure, time in epoch seconds.

```
NORMAL --cond--> PENDING --held >= for--> FIRING/FAULT --clear cond--> RECOVERING --clear held >= clear_for
   ^                |cond false (dropped,                ^   cond true again  |      and keep_firing_for
   |                v  counted, no event)                +--------------------+      elapsed--> NORMAL (RESOLVED)
   +-------------- NORMAL
any active state --device silent > interval x k--> NO_DATA --sample--> re-evaluated
```

Only FIRING, FAULT, NO_DATA and RESOLVED are reported (`Emit`); PENDING and RECOVERING are internal,
kept in snapshots, and a RECOVERING alarm is still reported (and re-sent) as FIRING/FAULT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.types import AlarmState, Scalar, Severity
from rules.compiled import CompiledRule

NORMAL = AlarmState.NORMAL
PENDING = AlarmState.PENDING
RECOVERING = AlarmState.RECOVERING
NO_DATA = AlarmState.NO_DATA
RESOLVED = AlarmState.RESOLVED

Emit = AlarmState | None
"""The state an event must report after a transition, or `None` when nothing is reported."""


@dataclass(slots=True)
class Instance:
    """Alarm state of one rule for one subject (a device id, or a composite scope id)."""

    rule_id: str
    subject: str
    location: str = ""
    state: AlarmState = NORMAL
    pending_since: float | None = None
    starts_at: float | None = None
    last_true: float | None = None
    clear_since: float | None = None
    last_sent: float | None = None
    resolved_at: float | None = None
    paused: bool = False
    """In NO_DATA after having fired: data that still meets the condition resumes firing."""
    severity: Severity | None = None
    value: float | bool | None = None
    extra: dict[str, Scalar] = field(default_factory=dict)

    @property
    def reported(self) -> bool:
        """Whether the cloud currently holds this alarm as open (FIRING, FAULT or NO_DATA)."""
        return self.state not in {NORMAL, PENDING}


def _fire(inst: Instance, rule: CompiledRule, t: float) -> Emit:
    inst.state = rule.active_state
    inst.starts_at = t
    inst.last_true = t
    inst.clear_since = None
    inst.pending_since = None
    inst.resolved_at = None
    inst.severity = rule.severity
    return rule.active_state


def resolve(inst: Instance, t: float) -> AlarmState:
    """Return an instance to NORMAL and report RESOLVED."""
    inst.state = NORMAL
    inst.resolved_at = t
    inst.clear_since = None
    inst.pending_since = None
    inst.paused = False
    return RESOLVED


def _maybe_resolve(inst: Instance, rule: CompiledRule, t: float) -> Emit:
    clear_since = inst.clear_since if inst.clear_since is not None else t
    last_true = inst.last_true if inst.last_true is not None else t
    if t - clear_since >= rule.clear_for_s and t - last_true >= rule.keep_firing_for_s:
        return resolve(inst, t)
    return None


def evaluate(inst: Instance, rule: CompiledRule, active: bool, cleared: bool, t: float) -> Emit:  # noqa: C901, FBT001, PLR0911
    """Advance an instance on a fresh evaluation of its condition (`active`) and clear condition."""
    state = inst.state
    if state is NORMAL or state is NO_DATA:
        if active:
            if state is NO_DATA and inst.paused:
                inst.state, inst.paused = rule.active_state, False
                inst.last_true, inst.clear_since = t, None
                return rule.active_state
            inst.paused = False
            if rule.hold_s(t) <= 0:
                return _fire(inst, rule, t)
            inst.state, inst.pending_since = PENDING, t
            return None
        if state is NO_DATA:
            return resolve(inst, t)
        return None
    if state is PENDING:
        if not active:
            inst.state, inst.pending_since = NORMAL, None
            return None
        assert inst.pending_since is not None  # noqa: S101 - set on entering PENDING
        return _fire(inst, rule, t) if t - inst.pending_since >= rule.hold_s(t) else None
    if state is RECOVERING:
        if active or not cleared:
            inst.state, inst.clear_since = rule.active_state, None
            if active:
                inst.last_true = t
            return None
        return _maybe_resolve(inst, rule, t)
    # FIRING or FAULT
    if active:
        inst.last_true = t
        return None
    if cleared:
        inst.state, inst.clear_since = RECOVERING, t
        return _maybe_resolve(inst, rule, t)
    return None


def on_timer(inst: Instance, rule: CompiledRule, t: float) -> Emit:
    """Advance an instance when time passes without a new evaluation (`for`, `clear_for`, keep)."""
    if inst.state is PENDING:
        assert inst.pending_since is not None  # noqa: S101 - set on entering PENDING
        if t - inst.pending_since >= rule.hold_s(t):
            return _fire(inst, rule, t)
    elif inst.state is RECOVERING:
        return _maybe_resolve(inst, rule, t)
    return None


def go_silent(inst: Instance) -> Emit:
    """The subject stopped reporting: a reported alarm turns NO_DATA, a pending one is dropped."""
    if inst.state is PENDING:
        inst.state, inst.pending_since = NORMAL, None
        return None
    if inst.state is NORMAL or inst.state is NO_DATA:
        return None
    inst.state, inst.paused, inst.clear_since = NO_DATA, True, None
    return NO_DATA
