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
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from core.metrics import Metric, Quality
from core.site import DeviceInfo, SitePath, bound_device, info_of
from core.types import AlarmEvent, AlarmState, Reading
from rules.compiled import CompiledRule
from rules.errors import SnapshotError
from rules.silences import Silence, SilenceBook, in_maintenance
from rules.snapshot import SNAPSHOT_VERSION, check_version, instance_from_json, instance_to_json
from rules.spec import RuleSet
from rules.state import (
    NO_DATA,
    NORMAL,
    PENDING,
    RECOVERING,
    RESOLVED,
    Instance,
    evaluate,
    go_silent,
)
from rules.state import on_timer as state_on_timer
from rules.state import resolve as state_resolve

if TYPE_CHECKING:
    from rules.windows import SampleWindow

RESOLVED_RETENTION_S: Final = 300.0
"""How long a RESOLVED event keeps being re-sent."""

_Plan = tuple[tuple[tuple[CompiledRule, str | None], ...], float]
"""The rules (with composite scope ids) that apply to one (device, metric), and the window horizon."""
_EMPTY_PLAN: Final[_Plan] = ((), 0.0)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class RuleEngine:
    """Evaluates a rule set over readings; see the module docstring for the event contract."""

    def __init__(self, rules: RuleSet, devices: Mapping[str, DeviceInfo], *, site: str) -> None:
        if "/" in site or not site:
            raise ValueError(f"site id {site!r} must be non-empty and contain no '/'")
        self.site = site
        self.counters: Counter[str] = Counter()
        self._ruleset = rules
        self._rules: dict[str, CompiledRule] = {}
        self._by_metric: dict[Metric, tuple[CompiledRule, ...]] = {}
        self._no_data_rules: tuple[CompiledRule, ...] = ()
        self._devices: Mapping[str, DeviceInfo] = devices
        self._parts: dict[str, DeviceInfo] = {}
        self._plans: dict[str, dict[Metric, _Plan]] = {}
        self._windows: dict[str, dict[Metric, SampleWindow]] = {}
        self._instances: dict[tuple[str, str], Instance] = {}
        self._hits: dict[tuple[str, str], deque[tuple[float, str]]] = {}
        self._last_seen: dict[str, float] = {}
        self._edges: dict[tuple[str, str], bool] = {}
        self._seq: dict[str, int] = {}
        self._silences = SilenceBook()
        self._started: float | None = None
        self._rank: dict[str, int] = {}
        self._ranked = False
        self._compile(rules)

    # -- configuration -------------------------------------------------------------------------

    def _compile(self, rules: RuleSet) -> None:
        self._ruleset = rules
        self._rules = {loaded.rule.id: CompiledRule(loaded) for loaded in rules.rules}
        self._rank = _inhibition_ranks(self._rules)
        self._ranked = any(self._rank.values())
        by_metric: dict[Metric, list[CompiledRule]] = {}
        for rule in sorted(self._rules.values(), key=lambda r: self._rank[r.id]):
            if rule.metric is not None and rule.type != "no_data":
                by_metric.setdefault(rule.metric, []).append(rule)
        self._by_metric = {metric: tuple(group) for metric, group in by_metric.items()}
        self._no_data_rules = tuple(r for r in self._rules.values() if r.type == "no_data")
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
        for key, inst in list(self._instances.items()):
            new = self._rules.get(inst.rule_id)
            prior = old[inst.rule_id]
            if new is not None and new.version == prior.version:
                continue
            if inst.reported:
                inst.extra["reason"] = "rule changed" if new is not None else "rule removed"
                out.append(self._emit(inst, prior, state_resolve(inst, t), t))
            del self._instances[key]
        for key in [
            k
            for k in self._hits
            if k[0] not in self._rules or self._rules[k[0]].version != old[k[0]].version
        ]:
            del self._hits[key]
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
        silence = self._silences.add(
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
        return self._silences.remove(silence_id)

    @property
    def silences(self) -> tuple[Silence, ...]:
        """Silences not yet expired (as of the last tick)."""
        return self._silences.all

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
        entries: list[tuple[CompiledRule, str | None]] = []
        horizon = 0.0
        for rule in self._by_metric.get(metric, ()):
            if not rule.matches(device_id, info):
                continue
            scope = None
            if rule.type == "composite":
                scope = rule.scope_of(info)
                if scope is None:
                    self.counters["composite_without_scope"] += 1
                    continue
            entries.append((rule, scope))
            if rule.window is not None:
                horizon = max(horizon, rule.window.over)
        return (tuple(entries), horizon) if entries else _EMPTY_PLAN

    def _location(self, subject: str) -> str:
        info = self._info(subject)
        return str(info.location) if info is not None else ""

    def observe(self, reading: Reading, now: datetime) -> list[AlarmEvent]:  # noqa: C901, PLR0912 - the hot path stays inline
        """Evaluate one reading at `now`; return the events it causes."""
        t = now.timestamp()
        device_id = reading.device_id
        self.counters["readings"] += 1
        out: list[AlarmEvent] = []
        plans = self._plans.get(device_id)
        if plans is None:
            plans = self._plans[device_id] = {}
        metric = reading.metric
        plan = plans.get(metric)
        if plan is None:
            plan = plans[metric] = self._plan(device_id, metric)
        self._last_seen[device_id] = t
        self._wake_no_data(device_id, t, out)
        if "/" in device_id:
            self._panel_heard(device_id, t, out)
        entries, horizon = plan
        if not entries:
            return out
        if reading.quality is not Quality.GOOD:
            self.counters[f"readings_skipped_{reading.quality.value}"] += 1
            return out
        value = reading.value
        window = None
        if horizon:
            window = self._window(device_id, metric, horizon)
            if not window.append(t, float(value)):
                self.counters["window_out_of_order"] += 1
        for rule, scope in entries:
            if scope is not None:
                self._observe_composite(rule, scope, device_id, value=value, t=t, out=out)
                continue
            if rule.window is not None:
                if window is None or not rule.in_active_hours(t):
                    continue
                measured = self._window_value(rule, window, t)
                if measured is None:
                    continue
            elif rule.active_hours is not None and not rule.in_active_hours(t):
                continue
            else:
                measured = value
            active = rule.test(measured)
            key = (rule.id, device_id)
            inst = self._instances.get(key)
            if inst is None:
                if not active:
                    continue
                inst = self._instances[key] = Instance(
                    rule.id, device_id, self._location(device_id)
                )
            inst.value = measured
            emit = evaluate(inst, rule, active, rule.clear(measured), t)
            if emit is not None:
                out.append(self._emit(inst, rule, emit, t))
        return out

    def _window(self, device_id: str, metric: Metric, horizon: float) -> SampleWindow:
        # numpy (through rules.windows) loads only once a window rule sees a sample.
        from rules.windows import SampleWindow  # noqa: PLC0415

        per_device = self._windows.get(device_id)
        if per_device is None:
            per_device = self._windows[device_id] = {}
        window = per_device.get(metric)
        if window is None:
            window = per_device[metric] = SampleWindow(horizon)
        window.horizon_s = horizon
        return window

    def _window_value(self, rule: CompiledRule, window: SampleWindow, t: float) -> float | None:
        spec = rule.window
        assert spec is not None  # noqa: S101 - only window rules get here
        ts, values = window.span(rule.window_start(t))
        if len(values) < spec.min_samples or (spec.min_span and ts[-1] - ts[0] < spec.min_span):
            return None
        from rules.windows import aggregate  # noqa: PLC0415 - see _window

        return aggregate(
            spec.agg,
            ts,
            values,
            target=spec.target,
            reset_drop=spec.reset_drop,
            min_samples=spec.min_samples,
        )

    def _observe_composite(
        self,
        rule: CompiledRule,
        scope: str,
        device_id: str,
        *,
        value: float | bool,
        t: float,
        out: list[AlarmEvent],
    ) -> None:
        key = (rule.id, scope)
        hits = self._hits.get(key)
        active = rule.test(value)
        if not rule.count_devices:  # min_events counts triggers: rising edges per device
            edge_key = (rule.id, device_id)
            was_active = self._edges.get(edge_key, False)
            self._edges[edge_key] = active
            active = active and not was_active
        if active:
            if hits is None:
                hits = self._hits[key] = deque()
            hits.append((t, device_id))
        if hits is not None:
            self._evaluate_composite(rule, scope, hits, t, out)

    def _evaluate_composite(
        self,
        rule: CompiledRule,
        scope: str,
        hits: deque[tuple[float, str]],
        t: float,
        out: list[AlarmEvent],
    ) -> None:
        key = (rule.id, scope)
        horizon = t - rule.within_s
        while hits and hits[0][0] < horizon:
            hits.popleft()
        devices = sorted({device for _, device in hits})
        count = len(devices) if rule.count_devices else len(hits)
        active = count >= rule.min_count
        inst = self._instances.get(key)
        if inst is None:
            if not active:
                if not hits:
                    del self._hits[key]
                return
            inst = self._instances[key] = Instance(rule.id, scope, scope.partition(":")[2])
        if active or inst.state is PENDING:
            inst.value = count
            inst.extra = {"count": count, "devices": ",".join(devices)}
        emit = evaluate(inst, rule, active, not active, t)
        if emit is not None:
            out.append(self._emit(inst, rule, emit, t))

    def _panel_heard(self, part_id: str, t: float, out: list[AlarmEvent]) -> None:
        """A panel's detector or zone reported: the panel is heard from too."""
        panel = bound_device(part_id)
        self._last_seen[panel] = t
        self._wake_no_data(panel, t, out)

    def _wake_no_data(self, device_id: str, t: float, out: list[AlarmEvent]) -> None:
        for rule in self._no_data_rules:
            inst = self._instances.get((rule.id, device_id))
            if inst is not None and inst.state is NO_DATA:
                out.append(self._emit(inst, rule, state_resolve(inst, t), t))

    # -- time ----------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[AlarmEvent]:
        """Advance timers to `now` (call every second): `for`, clear/keep timers, NO_DATA, re-sends."""
        t = now.timestamp()
        if self._started is None:
            self._started = t
        out: list[AlarmEvent] = []
        items = list(self._instances.items())
        if self._ranked:
            # Inhibiting rules first: a lift and a tilt of one cover that both fire in this tick
            # are one alarm, the tilt flagged inhibited, whichever was seen first.
            rank = self._rank
            items.sort(key=lambda item: rank.get(item[0][0], 0))
        for key, inst in items:
            rule = self._rules.get(inst.rule_id)
            if rule is None:
                del self._instances[key]
                continue
            self._tick_instance(key, inst, rule, t, out)
        self._check_no_data(t, out)
        self._silences.expire(t)
        return out

    def _tick_instance(  # noqa: C901, PLR0912 - one place for every timer
        self,
        key: tuple[str, str],
        inst: Instance,
        rule: CompiledRule,
        t: float,
        out: list[AlarmEvent],
    ) -> None:
        state = inst.state
        evaluating = state is PENDING or state is RECOVERING or state is rule.active_state
        if evaluating and rule.type == "composite":
            hits = self._hits.setdefault(key, deque())
            self._evaluate_composite(rule, inst.subject, hits, t, out)
        elif evaluating and rule.window is not None and rule.in_active_hours(t):
            window = self._windows.get(inst.subject, {}).get(rule.metric) if rule.metric else None
            measured = self._window_value(rule, window, t) if window is not None else None
            if measured is not None:
                inst.value = measured
                emit = evaluate(inst, rule, rule.test(measured), rule.clear(measured), t)
                if emit is not None:
                    out.append(self._emit(inst, rule, emit, t))
        emit = state_on_timer(inst, rule, t)
        if emit is not None:
            out.append(self._emit(inst, rule, emit, t))
        state = inst.state
        if state is rule.active_state or state is RECOVERING or state is PENDING:
            if rule.type == "threshold" and self._silent(inst.subject, rule, t):
                emit = go_silent(inst)
                if emit is not None:
                    out.append(self._emit(inst, rule, emit, t))
            elif rule.escalate_to is not None and state is not PENDING:
                self._escalate(inst, rule, t, out)
        state = inst.state
        if state is NORMAL:
            if inst.resolved_at is None or t - inst.resolved_at > RESOLVED_RETENTION_S:
                del self._instances[key]
            elif inst.last_sent is not None and t - inst.last_sent >= rule.resend_s:
                out.append(self._emit(inst, rule, RESOLVED, t))
        elif (
            state is not PENDING
            and inst.last_sent is not None
            and t - inst.last_sent >= rule.resend_s
        ):
            shown = rule.active_state if state is RECOVERING else state
            out.append(self._emit(inst, rule, shown, t))

    def _escalate(
        self, inst: Instance, rule: CompiledRule, t: float, out: list[AlarmEvent]
    ) -> None:
        to, after = rule.escalate_to, rule.escalate_after_s
        if to is None or after is None or inst.starts_at is None or inst.severity is None:
            return
        if inst.severity.rank < to.rank and t - inst.starts_at >= after:
            inst.severity = to
            shown = rule.active_state
            out.append(self._emit(inst, rule, shown, t))

    def _silent(self, device_id: str, rule: CompiledRule, t: float) -> bool:
        info = self._info(device_id)
        if info is None or not info.expected_interval_s:
            return False
        last = self._last_seen.get(device_id, self._started if self._started is not None else t)
        return t - last > info.expected_interval_s * rule.no_data_factor

    def _check_no_data(self, t: float, out: list[AlarmEvent]) -> None:
        for rule in self._no_data_rules:
            for device_id, info in self._devices.items():
                if not info.expected_interval_s or not self._silent(device_id, rule, t):
                    continue
                if not rule.matches(device_id, info):
                    continue
                key = (rule.id, device_id)
                inst = self._instances.get(key)
                if inst is not None and inst.state is NO_DATA:
                    continue
                if inst is None:
                    inst = self._instances[key] = Instance(rule.id, device_id, str(info.location))
                inst.state, inst.starts_at, inst.severity = NO_DATA, t, rule.severity
                inst.resolved_at = None
                inst.value = None
                last = self._last_seen.get(device_id)
                inst.extra = {"silent_s": round(t - last, 3) if last is not None else -1.0}
                out.append(self._emit(inst, rule, NO_DATA, t))

    # -- events --------------------------------------------------------------------------------

    def _suppressed(self, inst: Instance, rule: CompiledRule, t: float) -> tuple[str, ...]:
        flags: list[str] = []
        info = self._info(inst.subject)
        location = (
            info.location
            if info is not None
            else (SitePath.parse(inst.location) if inst.location else None)
        )
        if self._silences.covers(rule.id, inst.subject, location, t):
            flags.append("silence")
        if in_maintenance(self._ruleset.maintenance_windows, rule.id, inst.subject, location, t):
            flags.append("maintenance")
        if not rule.is_armed(t):
            flags.append("disarmed")
        for parent_id in rule.inhibited_by:
            parent = self._rules.get(parent_id)
            if parent is None:
                continue
            subject = parent.scope_of(info) if parent.type == "composite" else inst.subject
            other = self._instances.get((parent_id, subject)) if subject else None
            if other is not None and other.state in {parent.active_state, RECOVERING, NO_DATA}:
                flags.append("inhibited")
                break
        return tuple(flags)

    def _emit(self, inst: Instance, rule: CompiledRule, state: AlarmState, t: float) -> AlarmEvent:
        fingerprint = f"{self.site}/{inst.subject}/{rule.id}"
        seq = self._seq.get(fingerprint, 0) + 1
        self._seq[fingerprint] = seq
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
            description=rule.rule.description,
            valid_until=_dt(t + 4 * rule.resend_s) if reported else None,
            value=inst.value,
            evidence=evidence,
            suppressed=self._suppressed(inst, rule, t),
            work_order=rule.hint,
            rule_version=rule.version,
        )

    # -- inspection and persistence ------------------------------------------------------------

    def state_of(self, rule_id: str, subject: str) -> AlarmState:
        """The current state of an alarm instance (NORMAL when there is none)."""
        inst = self._instances.get((rule_id, subject))
        return inst.state if inst is not None else NORMAL

    def active_instances(self) -> list[Instance]:
        """Every instance that is not NORMAL (pending, firing, recovering, no data, fault)."""
        return [i for i in self._instances.values() if i.state is not NORMAL]

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, as JSON-ready values."""
        return {
            "version": SNAPSHOT_VERSION,
            "site": self.site,
            "started": self._started,
            "seq": dict(self._seq),
            "counters": dict(self.counters),
            "last_seen": dict(self._last_seen),
            "instances": [
                instance_to_json(inst, self._rules[inst.rule_id].version)
                for inst in self._instances.values()
                if inst.rule_id in self._rules
            ],
            "hits": [
                {"rule": rule_id, "scope": scope, "hits": [[t, d] for t, d in hits]}
                for (rule_id, scope), hits in self._hits.items()
            ],
            "windows": [
                {
                    "device": device,
                    "metric": metric.value,
                    "horizon": w.horizon_s,
                    "samples": w.dump(),
                }
                for device, per_metric in self._windows.items()
                for metric, w in per_metric.items()
            ],
            "silences": self._silences.to_json(),
            "edges": [[rule_id, device, state] for (rule_id, device), state in self._edges.items()],
        }

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
        data = dict(snapshot)
        check_version(data)
        engine = cls(rules, devices, site=site)
        try:
            engine._started = data.get("started")
            engine._seq = {str(k): int(v) for k, v in data.get("seq", {}).items()}
            engine.counters.update({str(k): int(v) for k, v in data.get("counters", {}).items()})
            engine._last_seen = {str(k): float(v) for k, v in data.get("last_seen", {}).items()}
            for item in data.get("instances", []):
                rule = engine._rules.get(item.get("rule_id", ""))
                if rule is None or rule.version != item.get("rule_version"):
                    engine.counters["restore_dropped_instances"] += 1
                    continue
                inst = instance_from_json(item)
                engine._instances[(inst.rule_id, inst.subject)] = inst
            for item in data.get("hits", []):
                if item["rule"] in engine._rules:
                    engine._hits[(item["rule"], item["scope"])] = deque(
                        (float(t), str(d)) for t, d in item["hits"]
                    )
            for item in data.get("windows", []):
                window = engine._window(
                    str(item["device"]), Metric(item["metric"]), float(item["horizon"])
                )
                for ts, value in zip(*item["samples"], strict=True):
                    window.append(float(ts), float(value))
            for rule_id, device, state in data.get("edges", []):
                engine._edges[(str(rule_id), str(device))] = bool(state)
            engine._silences.load_json(data.get("silences"))
        except SnapshotError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            raise SnapshotError(f"bad snapshot: {err}") from err
        return engine


def _inhibition_ranks(rules: Mapping[str, CompiledRule]) -> dict[str, int]:
    """Per rule, how many inhibiting rules stand above it (0 for a rule nothing inhibits).

    Evaluating rules in this order makes an inhibiting alarm active before the alarms it
    inhibits are judged, when both change at the same instant. A cycle is cut where it closes.
    """
    ranks: dict[str, int] = {}

    def rank(rule_id: str, path: frozenset[str]) -> int:
        if rule_id in ranks:
            return ranks[rule_id]
        rule = rules.get(rule_id)
        parents = [p for p in (rule.inhibited_by if rule else ()) if p in rules and p not in path]
        value = 1 + max((rank(p, path | {rule_id}) for p in parents), default=-1)
        ranks[rule_id] = value
        return value

    for rule_id in rules:
        rank(rule_id, frozenset())
    return ranks
