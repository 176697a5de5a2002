"""Escalation by organisational level: grid → community → street → district.

A work order belongs to a level of the site hierarchy (a site path is the "/"-joined segments
district/street/community/grid/compound/building/unit, `core.site.LEVELS`); it starts at the grid.
When a stage is breached the order goes up one level and that level is told: the people whose area
is the location path cut at that level (`escalation_target`). At the district the chain ends; a
further breach is reported at the district again (`EscalationStep.exhausted`).

After an escalation the stage's clock starts again at the new level: the next breach check for the
same stage counts its limit from the escalation time (`escalation_due`), so one overdue order
climbs one level per limit rather than jumping to the top at once.

Several server processes may run the scheduler. Each escalation has an idempotency key
(`breach_key`: order, stage, the level escalated from); whoever stores escalations must put a
UNIQUE constraint on it and insert the escalation in the same transaction as the order's change,
so that of two processes seeing the same breach only one commits (the other's insert conflicts
and it does nothing). Everything here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cloud_ingest.work_orders.sla import SlaPolicy, Stage
from core.site import LEVELS, SitePath

__all__ = [
    "ESCALATION_LEVELS",
    "START_LEVEL",
    "EscalationStep",
    "breach_key",
    "escalate_on_breach",
    "escalation_due",
    "escalation_target",
    "next_level",
]

ESCALATION_LEVELS: Final = ("grid", "community", "street", "district")
"""The levels an order climbs, from the one it starts at to the last."""
START_LEVEL: Final = ESCALATION_LEVELS[0]


def _check_level(level: str) -> str:
    if level not in LEVELS:
        msg = f"unknown level {level!r}; one of {', '.join(LEVELS)}"
        raise ValueError(msg)
    return level


def next_level(current_level: str) -> str | None:
    """The escalation level above `current_level`, or `None` at the district.

    A level below the grid (compound, building, unit) escalates to the grid first.

    Raises `ValueError` for a name that is not a site level.
    """
    depth = LEVELS.index(_check_level(current_level))
    above = [level for level in ESCALATION_LEVELS if LEVELS.index(level) < depth]
    return above[0] if above else None


def escalation_target(location_path: str, level: str) -> str:
    """The site path prefix that `level` covers for an order at `location_path`.

    `escalation_target("d/s/c/g03/c1", "community") == "d/s/c"`. A path that stops above `level`
    is returned whole (the nearest site that exists).

    Raises `ValueError` for an unknown level or a malformed path.
    """
    return str(SitePath.parse(location_path).truncate(_check_level(level)))


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """What to do about one breach of one stage of an order at one level."""

    stage: Stage
    from_level: str
    to_level: str
    """The level to notify: one above `from_level`, or `from_level` itself when `exhausted`."""
    exhausted: bool
    """The order is already at the top level: notify it again, the level does not change."""

    @property
    def reason(self) -> str:
        """A short text for the order's event log and the notification."""
        if self.exhausted:
            return f"{self.stage.value} overdue at the {self.from_level} level (the last level)"
        return f"{self.stage.value} overdue: escalated from {self.from_level} to {self.to_level}"

    def target(self, location_path: str) -> str:
        """The site path prefix of `to_level` for an order at `location_path`."""
        return escalation_target(location_path, self.to_level)

    def key(self, order_id: int | str) -> str:
        """This step's idempotency key for `order_id` (see `breach_key`)."""
        return breach_key(order_id, self.stage, self.from_level)


def escalate_on_breach(order_level: str, breached_stage: Stage | str) -> EscalationStep:
    """The step to take when `breached_stage` of an order at `order_level` is overdue.

    Raises `ValueError` for an unknown level or stage.
    """
    stage = Stage(breached_stage)
    up = next_level(order_level)
    if up is None:
        return EscalationStep(stage, order_level, order_level, exhausted=True)
    return EscalationStep(stage, order_level, up, exhausted=False)


def breach_key(order_id: int | str, stage: Stage | str, level: str) -> str:
    """The idempotency key of escalating `order_id` for `stage` from `level`: `id:stage:level`.

    Stored under a UNIQUE constraint it makes the escalation happen once however many processes
    see the breach. The order id must not contain ":".
    """
    text = str(order_id)
    if not text or ":" in text:
        msg = f"an order id for a breach key must be non-empty without ':': {text!r}"
        raise ValueError(msg)
    return f"{text}:{Stage(stage).value}:{_check_level(level)}"


def escalation_due(
    policy: SlaPolicy,
    stage: Stage | str,
    category: str,
    stage_started_at: datetime,
    *,
    escalated_at: datetime | None = None,
    priority: str | None = None,
    deadline: datetime | None = None,
) -> datetime:
    """When an unfinished stage next calls for an escalation.

    Before any escalation of this stage (`escalated_at` is `None`) that is the stage's due time
    (an outside `deadline` included). After one, the stage's limit counts again from the latest
    escalation of this stage, on the category's calendar; an outside deadline no longer applies
    (it has passed), so an overdue order climbs one level per limit.
    """
    if escalated_at is None:
        return policy.due(stage, category, stage_started_at, priority=priority, deadline=deadline)
    return policy.due(stage, category, max(stage_started_at, escalated_at), priority=priority)
