"""Threshold rules: a device's last value meets the condition (`above`, `below`, `equals`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rules.compiled import ConditionCompiled, Events, Host, condition_test
from rules.state import Instance, evaluate

if TYPE_CHECKING:
    from rules.models import ThresholdRule
    from rules.spec import LoadedRule
    from rules.windows import SampleWindow


class ThresholdEvaluator(ConditionCompiled):
    """Compares each reading; with `clear`, a separate comparison ends the alarm (hysteresis).

    An active alarm turns NO_DATA when its device stays silent longer than `no_data_factor` of its
    expected interval; `active_hours` limits when readings are judged (state holds outside them).
    """

    kind: ClassVar[str] = "threshold"

    __slots__ = ("no_data_factor",)

    def __init__(self, loaded: LoadedRule, rule: ThresholdRule) -> None:
        super().__init__(loaded, rule)
        if rule.clear is not None:
            self.clear, clear_op, clear_threshold = condition_test(rule.clear)
            self.evidence[f"clear_{clear_op}"] = clear_threshold
        self.active_hours = rule.active_hours
        self.no_data_factor = rule.no_data_factor

    def observe(  # noqa: PLR0917 - the hot path passes what it holds, positionally
        self,
        host: Host,
        device_id: str,
        subject: str,  # noqa: ARG002 - the device itself
        value: float | bool,  # noqa: FBT001
        window: SampleWindow | None,  # noqa: ARG002 - a threshold reads no window
        t: float,
        out: Events,
    ) -> None:
        """Judge a value (inside `active_hours`, if the rule has any).

        An instance is made only once the condition holds.
        """
        if self.active_hours is not None and not self.active_hours.contains(self.local(t)):
            return
        active = self.test(value)
        instances = host.state.instances
        key = (self.id, device_id)
        inst = instances.get(key)
        if inst is None:
            if not active:
                return
            inst = instances[key] = Instance(self.id, device_id, host.location(device_id))
        inst.value = value
        emit = evaluate(inst, self, active, self.clear(value), t)
        if emit is not None:
            out.append(host.emit(inst, self, emit, t))

    def falls_silent(self, host: Host, subject: str, t: float) -> bool:
        """Whether the device has been silent for `no_data_factor` of its expected interval."""
        info = host.info(subject)
        if info is None:
            return False
        return host.state.heard.silent(subject, info.expected_interval_s, self.no_data_factor, t)
