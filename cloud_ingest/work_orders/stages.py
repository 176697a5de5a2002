"""Which SLA stage runs in each work-order state, and which SLA entry and priority an order uses.

Shared by the service (which sets `due_at`), the breach scheduler and the KPIs (which replay the
event log), so the three always time an order the same way. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cloud_ingest.work_orders.lifecycle import State
from cloud_ingest.work_orders.sla import Stage

HOTLINE_SOURCE: Final = "hotline_12345"
"""A 12345 complaint runs on the hotline's SLA entry, whatever its category."""

STAGE_OF: Final[Mapping[State, Stage]] = {
    State.NEW: Stage.ACCEPTANCE,
    State.ACCEPTED: Stage.DISPATCH,
    State.REWORK: Stage.DISPATCH,
    State.REOPENED: Stage.DISPATCH,
    State.DISPATCHED: Stage.ARRIVAL,
    State.IN_PROGRESS: Stage.HANDLING,
    State.AWAITING_VERIFICATION: Stage.VERIFICATION,
}
"""The SLA stage that runs while an order is in a state (none: the clock does not run)."""

_SLA_PRIORITY: Final = {"P1": "urgent", "P2": "high", "P3": "normal", "P4": "low"}


def sla_category(source: str, category: str) -> str:
    """The SLA table's entry for an order: every 12345 complaint uses `hotline_12345`."""
    return HOTLINE_SOURCE if source == HOTLINE_SOURCE else category


def sla_priority(priority: str) -> str | None:
    """The SLA table's priority of an order's `P1`..`P4` (None: the category's limits)."""
    return _SLA_PRIORITY.get(priority)
