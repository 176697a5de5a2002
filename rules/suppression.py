"""Suppression: the flags of an event, and the order that lets an inhibiting rule act first.

The flags are `silence`, `maintenance`, `disarmed` and `inhibited`. A flag never changes an alarm's
state; it tells the cloud to hold back notifications and work orders (`docs/rules.md`, Events).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.site import DeviceInfo, SitePath
from rules.silences import in_maintenance
from rules.state import NO_DATA, RECOVERING, Instance

if TYPE_CHECKING:
    from rules.compiled import CompiledRule
    from rules.spec import MaintenanceWindow
    from rules.stores import EngineState


def suppression_flags(
    inst: Instance,
    rule: CompiledRule,
    t: float,
    *,
    info: DeviceInfo | None,
    state: EngineState,
    rules: Mapping[str, CompiledRule],
    maintenance: tuple[MaintenanceWindow, ...],
) -> tuple[str, ...]:
    """The flags of an event of `inst` at `t`; `info` is what the gateway knows of its subject.

    `inhibited`: a rule in `inhibited_by` has an active alarm for the same device, or for the
    device's scope when that rule is composite.
    """
    flags: list[str] = []
    if info is not None:
        location: SitePath | None = info.location
    else:
        location = SitePath.parse(inst.location) if inst.location else None
    if state.silences.covers(rule.id, inst.subject, location, t):
        flags.append("silence")
    if in_maintenance(maintenance, rule.id, inst.subject, location, t):
        flags.append("maintenance")
    if not rule.is_armed(t):
        flags.append("disarmed")
    for parent_id in rule.inhibited_by:
        parent = rules.get(parent_id)
        if parent is None:
            continue
        subject = parent.subject(inst.subject, info)
        other = state.instances.get((parent_id, subject)) if subject else None
        if other is not None and other.state in {parent.active_state, RECOVERING, NO_DATA}:
            flags.append("inhibited")
            break
    return tuple(flags)


def inhibition_ranks(rules: Mapping[str, CompiledRule]) -> dict[str, int]:
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
