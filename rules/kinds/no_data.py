"""No-data rules: a matched device has been silent longer than `no_data_factor` of its interval."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rules.compiled import CompiledRule
from rules.state import NO_DATA, Instance
from rules.state import resolve as state_resolve

if TYPE_CHECKING:
    from rules.compiled import Events, Host
    from rules.models import NoDataRule
    from rules.spec import LoadedRule


class NoDataEvaluator(CompiledRule):
    """Raises NO_DATA for each matched device silent too long; reads no readings itself.

    Every tick it sweeps the devices that declare an expected interval; any reading of the device
    (or of a part of it, for a panel) resolves the alarm. The evidence says how long the device had
    been silent.
    """

    kind: ClassVar[str] = "no_data"
    reads_readings: ClassVar[bool] = False
    sweeps: ClassVar[bool] = True

    __slots__ = ("no_data_factor",)

    def __init__(self, loaded: LoadedRule, rule: NoDataRule) -> None:
        super().__init__(loaded)
        self.no_data_factor = rule.no_data_factor

    def sweep(self, host: Host, t: float, out: Events) -> None:
        """Raise NO_DATA for every matched device silent too long that is not already NO_DATA."""
        state = host.state
        heard, instances = state.heard, state.instances
        factor = self.no_data_factor
        for device_id, info in host.devices.items():
            if not heard.silent(device_id, info.expected_interval_s, factor, t):
                continue
            if not self.matches(device_id, info):
                continue
            key = (self.id, device_id)
            inst = instances.get(key)
            if inst is not None and inst.state is NO_DATA:
                continue
            if inst is None:
                inst = instances[key] = Instance(self.id, device_id, str(info.location))
            inst.state, inst.starts_at, inst.severity = NO_DATA, t, self.severity
            inst.resolved_at = None
            inst.value = None
            inst.extra = {"silent_s": heard.silent_for(device_id, t)}
            out.append(host.emit(inst, self, NO_DATA, t))

    def wake(self, host: Host, device_id: str, t: float, out: Events) -> None:
        """The device was heard from: its NO_DATA alarm resolves."""
        inst = host.state.instances.get((self.id, device_id))
        if inst is not None and inst.state is NO_DATA:
            out.append(host.emit(inst, self, state_resolve(inst, t), t))
