"""What the ingest hands on after a commit: the alarm instances a batch changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AlarmInstanceChange:
    """An alarm instance as a committed batch left it (its event with the highest `seq`)."""

    fingerprint: str
    gateway_id: str
    device_id: str
    rule_id: str
    location: str
    state: str
    severity: str
    last_seq: int
    last_event_at: datetime
    valid_until: datetime | None
    work_order: Mapping[str, object] | None
    """The rule's work-order hint (`category`, `priority`), if it asks for one."""


class WorkOrderService(Protocol):
    """Receives the alarm instances that changed, after their batch committed.

    Called once per committed batch that changed at least one instance, with each changed
    instance once. It is called after the commit, so a failure here cannot undo the batch; an
    implementation must be idempotent per (fingerprint, last_seq) and keep its own durability.
    """

    async def alarm_instances_changed(self, changes: Sequence[AlarmInstanceChange]) -> None:
        """Act on `changes` (open, update or annotate work orders)."""
        ...


class NoWorkOrders:
    """The default `WorkOrderService`: does nothing."""

    async def alarm_instances_changed(self, changes: Sequence[AlarmInstanceChange]) -> None:
        """Ignore `changes`."""
