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
    stale: bool = False
    """Active, but its `valid_until` (plus a grace) passed without a re-send."""
    inhibited_by: str | None = None
    """The fingerprint of the alarm that inhibits it (never set on a change handed on: an
    inhibited instance opens no work)."""


class WorkOrderService(Protocol):
    """Receives the alarm instances that changed, after their batch committed.

    Called once per committed batch (or alarm sweep) that changed at least one instance, with
    each changed instance once. An inhibited instance is never handed on; one that went stale
    comes with `stale` set (its `last_seq` unchanged). It is called after the commit, so a
    failure here cannot undo the batch; an implementation must be idempotent per
    (fingerprint, last_seq, stale) and keep its own durability.
    """

    async def alarm_instances_changed(self, changes: Sequence[AlarmInstanceChange]) -> None:
        """Act on `changes` (open, update or annotate work orders)."""
        ...


class NoWorkOrders:
    """The default `WorkOrderService`: does nothing."""

    async def alarm_instances_changed(self, changes: Sequence[AlarmInstanceChange]) -> None:
        """Ignore `changes`."""
