"""Composite rules: enough devices (or triggers) of one scope meet the condition within `within`."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, ClassVar

from core.site import LEVELS
from rules.compiled import ConditionCompiled
from rules.state import PENDING, Instance, evaluate

if TYPE_CHECKING:
    from core.site import DeviceInfo
    from rules.compiled import Events, Host
    from rules.models import CompositeRule
    from rules.spec import LoadedRule
    from rules.windows import SampleWindow


class CompositeEvaluator(ConditionCompiled):
    """The subject is the scope (`unit:<path>`) of the devices' location at the rule's `scope` level.

    A device whose condition holds is a hit; with `min_devices` the rule counts the distinct devices
    among the hits of the last `within`, with `min_events` the hits themselves, each a rising edge
    of one device's condition. The alarm's evidence names the count and the devices.
    """

    kind: ClassVar[str] = "composite"

    __slots__ = ("count_devices", "min_count", "scope_index", "scope_level", "within_s")

    def __init__(self, loaded: LoadedRule, rule: CompositeRule) -> None:
        super().__init__(loaded, rule)
        self.scope_level = rule.scope
        self.scope_index = LEVELS.index(rule.scope)
        self.within_s = rule.within
        self.count_devices = rule.min_devices is not None
        self.min_count = rule.min_devices or rule.min_events or 0

    def subject(self, device_id: str, info: DeviceInfo | None) -> str | None:  # noqa: ARG002 - the scope
        """The scope id of the device (`unit:a/b/c/d/e/f/u1`), or `None` if its path is too short."""
        if info is None or len(info.location.parts) <= self.scope_index:
            return None
        return f"{self.scope_level}:{info.location.truncate(self.scope_level)}"

    def observe(  # noqa: PLR0917 - the hot path passes what it holds, positionally
        self,
        host: Host,
        device_id: str,
        subject: str,
        value: float | bool,  # noqa: FBT001
        window: SampleWindow | None,  # noqa: ARG002 - a composite reads no window
        t: float,
        out: Events,
    ) -> None:
        """Log a hit of the device in its scope, then count the scope's hits."""
        log = host.state.hits
        key = (self.id, subject)
        hits = log.hits.get(key)
        active = self.test(value)
        if not self.count_devices:  # min_events counts triggers: rising edges per device
            edge_key = (self.id, device_id)
            was_active = log.edges.get(edge_key, False)
            log.edges[edge_key] = active
            active = active and not was_active
        if active:
            if hits is None:
                hits = log.hits[key] = deque()
            hits.append((t, device_id))
        if hits is not None:
            self._count(host, subject, hits, t, out)

    def on_tick(self, host: Host, inst: Instance, t: float, out: Events) -> None:
        """Recount the scope's hits: old ones leave the `within` window."""
        hits = host.state.hits.hits.setdefault((self.id, inst.subject), deque())
        self._count(host, inst.subject, hits, t, out)

    def _count(
        self, host: Host, scope: str, hits: deque[tuple[float, str]], t: float, out: Events
    ) -> None:
        key = (self.id, scope)
        horizon = t - self.within_s
        while hits and hits[0][0] < horizon:
            hits.popleft()
        devices = sorted({device for _, device in hits})
        count = len(devices) if self.count_devices else len(hits)
        active = count >= self.min_count
        instances = host.state.instances
        inst = instances.get(key)
        if inst is None:
            if not active:
                if not hits:
                    del host.state.hits.hits[key]
                return
            inst = instances[key] = Instance(self.id, scope, scope.partition(":")[2])
        if active or inst.state is PENDING:
            inst.value = count
            inst.extra = {"count": count, "devices": ",".join(devices)}
        emit = evaluate(inst, self, active, not active, t)
        if emit is not None:
            out.append(host.emit(inst, self, emit, t))
