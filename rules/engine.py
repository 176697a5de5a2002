"""`RuleEngine`: readings and a 1 s tick in, alarm events out; pure and deterministic.

- Subjects: an alarm instance belongs to a (rule, subject). The subject is the device id, or for a
  composite rule the scope id `<level>:<path>` (e.g. `unit:hp/nj/xh/g03/c1/b2/u1`). The fingerprint is
  `{site}/{subject}/{rule_id}`: the site is the first segment, the rule id (no `/`) the last one.
- Events: FIRING/FAULT on firing (and on severity escalation), NO_DATA when a subject goes silent,
  RESOLVED on the return to NORMAL. FIRING/FAULT/NO_DATA are re-sent every `resend` with
  `valid_until = at + 4 x resend`; RESOLVED is re-sent every `resend` for 5 minutes. `seq` grows by one
  per event of a fingerprint, re-sends included.
- Windows use the evaluation time (`now`), not the device's timestamp, so skewed device clocks do not
  empty them.

Each rule is compiled into the evaluator of its kind (`rules.kinds`); the engine routes readings and
ticks to them, runs the timers every kind shares, and turns state changes into events. Its memory is
an `EngineState` (`rules.stores`), which `rules.snapshot` saves and restores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from core.metrics import Metric, Quality
from core.site import DeviceInfo, bound_device, info_of
from core.types import AlarmEvent, AlarmState, Reading
from rules.compiled import CompiledRule, Events, Host, Observe
from rules.kinds import compile_rule
from rules.silences import Silence
from rules.snapshot import load_snapshot, to_snapshot
from rules.spec import RuleSet
from rules.state import NORMAL, PENDING, RECOVERING, RESOLVED, Instance, go_silent
from rules.state import on_timer as state_on_timer
from rules.state import resolve as state_resolve
from rules.stores import EngineState
from rules.suppression import inhibition_ranks, suppression_flags

RESOLVED_RETENTION_S: Final = 300.0
"""How long a RESOLVED event keeps being re-sent."""

_Plan = tuple[tuple[tuple[Observe, str], ...], float]
"""The rules that read one (device, metric), each as its `observe` and the subject it feeds, and
the window horizon the device's samples of that metric need."""
_EMPTY_PLAN: Final[_Plan] = ((), 0.0)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class _EngineHost:
    """What the evaluators of one engine may use of it (`rules.compiled.Host`)."""

    __slots__ = ("_engine", "state")

    def __init__(self, engine: RuleEngine, state: EngineState) -> None:
        self._engine = engine
        self.state = state

    @property
    def devices(self) -> Mapping[str, DeviceInfo]:
        return self._engine._devices  # noqa: SLF001 - the engine's own adapter

    def info(self, device_id: str) -> DeviceInfo | None:
        return self._engine._info(device_id)  # noqa: SLF001

    def location(self, subject: str) -> str:
        return self._engine._location(subject)  # noqa: SLF001

    def emit(self, inst: Instance, rule: CompiledRule, state: AlarmState, t: float) -> AlarmEvent:
        return self._engine._emit(inst, rule, state, t)  # noqa: SLF001


class RuleEngine:
    """Evaluates a rule set over readings; see the module docstring for the event contract."""

    def __init__(self, rules: RuleSet, devices: Mapping[str, DeviceInfo], *, site: str) -> None:
        if "/" in site or not site:
            raise ValueError(f"site id {site!r} must be non-empty and contain no '/'")
        self.site = site
        self._state = EngineState()
        self.counters = self._state.counters
        self._host: Host = _EngineHost(self, self._state)
        self._ruleset = rules
        self._rules: dict[str, CompiledRule] = {}
        self._observers: dict[str, Observe] = {}
        self._by_metric: dict[Metric, tuple[CompiledRule, ...]] = {}
        self._sweepers: tuple[CompiledRule, ...] = ()
        self._devices: Mapping[str, DeviceInfo] = devices
        self._parts: dict[str, DeviceInfo] = {}
        self._plans: dict[str, dict[Metric, _Plan]] = {}
        self._rank: dict[str, int] = {}
        self._ranked = False
        self._compile(rules)

    # -- configuration -------------------------------------------------------------------------

    def _compile(self, rules: RuleSet) -> None:
        self._ruleset = rules
        self._rules = {loaded.rule.id: compile_rule(loaded) for loaded in rules.rules}
        self._observers = {rule.id: rule.observe for rule in self._rules.values()}
        self._rank = inhibition_ranks(self._rules)
        self._ranked = any(self._rank.values())
        by_metric: dict[Metric, list[CompiledRule]] = {}
        for rule in sorted(self._rules.values(), key=lambda r: self._rank[r.id]):
            if rule.metric is not None and rule.reads_readings:
                by_metric.setdefault(rule.metric, []).append(rule)
        self._by_metric = {metric: tuple(group) for metric, group in by_metric.items()}
        self._sweepers = tuple(r for r in self._rules.values() if r.sweeps)
        self._plans.clear()

    def set_devices(self, devices: Mapping[str, DeviceInfo]) -> None:
        """Replace what the engine knows of devices; alarm state is kept."""
        self._devices = devices
        self._parts.clear()
        self._plans.clear()

    def replace_rules(self, rules: RuleSet, now: datetime) -> list[AlarmEvent]:
        """Hot-reload rules: unchanged rules keep their state; alarms of changed or removed rules resolve."""
        t = now.timestamp()
        old = self._rules
        self._compile(rules)
        out: list[AlarmEvent] = []
        instances = self._state.instances
        for key, inst in list(instances.items()):
            new = self._rules.get(inst.rule_id)
            prior = old[inst.rule_id]
            if new is not None and new.version == prior.version:
                continue
            if inst.reported:
                inst.extra["reason"] = "rule changed" if new is not None else "rule removed"
                out.append(self._emit(inst, prior, state_resolve(inst, t), t))
            del instances[key]
        self._state.hits.forget(
            lambda rule_id: (
                rule_id in self._rules and self._rules[rule_id].version == old[rule_id].version
            )
        )
        return out

    @property
    def rules(self) -> RuleSet:
        """The rule set in force."""
        return self._ruleset

    # -- silences ------------------------------------------------------------------------------

    def add_silence(
        self,
        *,
        reason: str,
        ends_at: datetime,
        now: datetime,
        starts_at: datetime | None = None,
        rules: Iterable[str] = (),
        devices: Iterable[str] = (),
        location: str = "",
        created_by: str = "",
    ) -> Silence:
        """Silence matching alarms until `ends_at` (mandatory, in the future) for `reason` (mandatory)."""
        silence = self._state.silences.add(
            reason=reason,
            ends_at=ends_at,
            now=now,
            starts_at=starts_at,
            rules=tuple(rules),
            devices=tuple(devices),
            location=location,
            created_by=created_by,
        )
        self.counters["silences_added"] += 1
        return silence

    def remove_silence(self, silence_id: str) -> bool:
        """End a silence early; return whether it existed."""
        return self._state.silences.remove(silence_id)

    @property
    def silences(self) -> tuple[Silence, ...]:
        """Silences not yet expired (as of the last tick)."""
        return self._state.silences.all

    # -- evaluation ----------------------------------------------------------------------------

    def _info(self, device_id: str) -> DeviceInfo | None:
        info = self._devices.get(device_id)
        if info is None and "/" in device_id:  # a part of a panel: known through the panel
            info = self._parts.get(device_id)
            if info is None:
                info = info_of(self._devices, device_id)
                if info is not None:
                    self._parts[device_id] = info
        return info

    def _plan(self, device_id: str, metric: Metric) -> _Plan:
        info = self._info(device_id)
        entries: list[tuple[Observe, str]] = []
        horizon = 0.0
        for rule in self._by_metric.get(metric, ()):
            if not rule.matches(device_id, info):
                continue
            subject = rule.subject(device_id, info)
            if subject is None:
                self.counters[f"{rule.kind}_without_scope"] += 1
                continue
            entries.append((self._observers[rule.id], subject))
            horizon = max(horizon, rule.horizon)
        return (tuple(entries), horizon) if entries else _EMPTY_PLAN

    def _location(self, subject: str) -> str:
        info = self._info(subject)
        return str(info.location) if info is not None else ""

    def observe(self, reading: Reading, now: datetime) -> list[AlarmEvent]:
        """Evaluate one reading at `now`; return the events it causes."""
        t = now.timestamp()
        device_id = reading.device_id
        state = self._state
        state.counters["readings"] += 1
        out: list[AlarmEvent] = []
        plans = self._plans.get(device_id)
        if plans is None:
            plans = self._plans[device_id] = {}
        metric = reading.metric
        plan = plans.get(metric)
        if plan is None:
            plan = plans[metric] = self._plan(device_id, metric)
        state.heard.last_seen[device_id] = t
        host = self._host
        for rule in self._sweepers:
            rule.wake(host, device_id, t, out)
        if "/" in device_id:  # a panel's detector or zone reported: the panel is heard from too
            self._heard(bound_device(device_id), t, out)
        entries, horizon = plan
        if not entries:
            return out
        if reading.quality is not Quality.GOOD:
            state.counters[f"readings_skipped_{reading.quality.value}"] += 1
            return out
        value = reading.value
        window = None
        if horizon:
            window = state.windows.window(device_id, metric, horizon)
            if not window.append(t, float(value)):
                state.counters["window_out_of_order"] += 1
        for observe, subject in entries:
            observe(host, device_id, subject, value, window, t, out)
        return out

    def _heard(self, device_id: str, t: float, out: Events) -> None:
        self._state.heard.last_seen[device_id] = t
        for rule in self._sweepers:
            rule.wake(self._host, device_id, t, out)

    # -- time ----------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[AlarmEvent]:
        """Advance timers to `now` (call every second): `for`, clear/keep timers, NO_DATA, re-sends."""
        t = now.timestamp()
        state = self._state
        if state.heard.started is None:
            state.heard.started = t
        out: list[AlarmEvent] = []
        items = list(state.instances.items())
        if self._ranked:
            # Inhibiting rules first: a lift and a tilt of one cover that both fire in this tick
            # are one alarm, the tilt flagged inhibited, whichever was seen first.
            rank = self._rank
            items.sort(key=lambda item: rank.get(item[0][0], 0))
        for key, inst in items:
            rule = self._rules.get(inst.rule_id)
            if rule is None:
                del state.instances[key]
                continue
            self._tick_instance(key, inst, rule, t, out)
        for rule in self._sweepers:
            rule.sweep(self._host, t, out)
        state.silences.expire(t)
        return out

    def _tick_instance(
        self,
        key: tuple[str, str],
        inst: Instance,
        rule: CompiledRule,
        t: float,
        out: list[AlarmEvent],
    ) -> None:
        state = inst.state
        if state is PENDING or state is RECOVERING or state is rule.active_state:
            rule.on_tick(self._host, inst, t, out)
        self._send(inst, rule, state_on_timer(inst, rule, t), t, out)
        state = inst.state
        if state is rule.active_state or state is RECOVERING or state is PENDING:
            if rule.falls_silent(self._host, inst.subject, t):
                self._send(inst, rule, go_silent(inst), t, out)
            elif rule.escalate_to is not None and state is not PENDING:
                self._escalate(inst, rule, t, out)
        state = inst.state
        if state is NORMAL:
            if inst.resolved_at is None or t - inst.resolved_at > RESOLVED_RETENTION_S:
                del self._state.instances[key]
            elif inst.last_sent is not None and t - inst.last_sent >= rule.resend_s:
                out.append(self._emit(inst, rule, RESOLVED, t))
        elif (
            state is not PENDING
            and inst.last_sent is not None
            and t - inst.last_sent >= rule.resend_s
        ):
            shown = rule.active_state if state is RECOVERING else state
            out.append(self._emit(inst, rule, shown, t))

    def _send(
        self, inst: Instance, rule: CompiledRule, state: AlarmState | None, t: float, out: Events
    ) -> None:
        if state is not None:
            out.append(self._emit(inst, rule, state, t))

    def _escalate(self, inst: Instance, rule: CompiledRule, t: float, out: Events) -> None:
        to, after = rule.escalate_to, rule.escalate_after_s
        if to is None or after is None or inst.starts_at is None or inst.severity is None:
            return
        if inst.severity.rank < to.rank and t - inst.starts_at >= after:
            inst.severity = to
            out.append(self._emit(inst, rule, rule.active_state, t))

    # -- events --------------------------------------------------------------------------------

    def _emit(self, inst: Instance, rule: CompiledRule, state: AlarmState, t: float) -> AlarmEvent:
        fingerprint = f"{self.site}/{inst.subject}/{rule.id}"
        seq_of = self._state.seq
        seq = seq_of.get(fingerprint, 0) + 1
        seq_of[fingerprint] = seq
        inst.last_sent = t
        self.counters[f"events_{state.value}"] += 1
        evidence = dict(rule.evidence)
        if inst.value is not None:
            evidence["value"] = inst.value
        evidence.update(inst.extra)
        reported = state is not RESOLVED
        return AlarmEvent(
            fingerprint=fingerprint,
            seq=seq,
            state=state,
            severity=inst.severity or rule.severity,
            starts_at=_dt(inst.starts_at if inst.starts_at is not None else t),
            at=_dt(t),
            rule_id=rule.id,
            device_id=inst.subject,
            location=inst.location,
            description=rule.description,
            valid_until=_dt(t + 4 * rule.resend_s) if reported else None,
            value=inst.value,
            evidence=evidence,
            suppressed=suppression_flags(
                inst,
                rule,
                t,
                info=self._info(inst.subject),
                state=self._state,
                rules=self._rules,
                maintenance=self._ruleset.maintenance_windows,
            ),
            work_order=rule.hint,
            rule_version=rule.version,
        )

    # -- inspection and persistence ------------------------------------------------------------

    def state_of(self, rule_id: str, subject: str) -> AlarmState:
        """The current state of an alarm instance (NORMAL when there is none)."""
        inst = self._state.instances.get((rule_id, subject))
        return inst.state if inst is not None else NORMAL

    def active_instances(self) -> list[Instance]:
        """Every instance that is not NORMAL (pending, firing, recovering, no data, fault)."""
        return [i for i in self._state.instances.values() if i.state is not NORMAL]

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, as JSON-ready values (`rules.snapshot`)."""
        return to_snapshot(self._state, self.site, self._versions())

    @classmethod
    def restore(
        cls,
        snapshot: Mapping[str, Any],
        rules: RuleSet,
        devices: Mapping[str, DeviceInfo],
        *,
        site: str,
    ) -> RuleEngine:
        """Build an engine from a snapshot; instances of rules that changed since are dropped."""
        engine = cls(rules, devices, site=site)
        load_snapshot(engine._state, snapshot, engine._versions())
        return engine

    def _versions(self) -> dict[str, str]:
        return {rule_id: rule.version for rule_id, rule in self._rules.items()}
