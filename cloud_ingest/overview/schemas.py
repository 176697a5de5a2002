"""The overview API's models: a node, its children's and grids' roll-ups, and today's figures."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cloud_ingest.overview.rollup import NO_ALARM, Rollup, ordered_states, total
from cloud_ingest.paging import IsoTime


class AlarmCounts(BaseModel):
    """Open alarm instances (firing, fault or no data, not inhibited) by severity, worst first."""

    critical: int = 0
    warning: int = 0
    info: int = 0
    total: int = 0


class DeviceCounts(BaseModel):
    """Devices by their worst open alarm (`none`: no open alarm), worst first."""

    critical: int = 0
    warning: int = 0
    info: int = 0
    none: int = 0
    offline: int = 0
    """Devices behind an offline gateway (also counted by their worst alarm)."""
    total: int = 0


class GatewayCounts(BaseModel):
    """Gateways sited here by status."""

    online: int = 0
    offline: int = 0
    unknown: int = 0
    total: int = 0


class OrderCounts(BaseModel):
    """Open work orders: by state (in the order of the loop), past due and escalated."""

    by_state: dict[str, int]
    open: int = 0
    breached: int = 0
    """Open orders whose current stage is past its `due_at` (SLA breaches)."""
    escalated: int = 0
    """Open orders escalated at least once (`escalation_level` above 0)."""


class Figures(BaseModel):
    """The roll-up of one place."""

    alarms: AlarmCounts
    devices: DeviceCounts
    gateways: GatewayCounts
    orders: OrderCounts

    @classmethod
    def of(cls, rollup: Rollup | None) -> Figures:
        """The figures of `rollup` (none: all zero)."""
        r = rollup or Rollup()
        return cls(
            alarms=AlarmCounts(**r.alarms, total=total(r.alarms.values())),
            devices=DeviceCounts(
                critical=r.devices["critical"],
                warning=r.devices["warning"],
                info=r.devices["info"],
                none=r.devices[NO_ALARM],
                offline=r.devices_offline,
                total=total(r.devices.values()),
            ),
            gateways=GatewayCounts(**r.gateways, total=total(r.gateways.values())),
            orders=OrderCounts(
                by_state=ordered_states(r.orders),
                open=total(r.orders.values()),
                breached=r.breached,
                escalated=r.escalated,
            ),
        )


class Place(BaseModel):
    """A site of the tree and its figures."""

    path: str
    name: str
    level: str | None
    """district ... unit; `null` for the root above the districts."""
    company: str
    plan: dict[str, Any] | None = None
    """Its shape on its parent's plan, as the registry stores it."""
    figures: Figures


class Today(BaseModel):
    """Today's figures (the local day of the work orders' time zone) within the node."""

    day: str
    """The local date, `2026-12-07`."""
    start: IsoTime
    end: IsoTime
    alarms_raised: int
    """Alarm instances whose current episode started today."""
    orders_opened: int
    orders_closed: int
    orders_closed_on_time: int
    """Orders closed today that never breached an SLA stage (no breach recorded for them)."""
    on_time_rate: float | None
    """`orders_closed_on_time / orders_closed`; `null` when none was closed."""


class Overview(BaseModel):
    """One node of the tree: its figures, its children's, its grids' and today's."""

    at: IsoTime
    node: Place
    here: Figures
    """What lies at the node itself and below no child (a compound's manholes and bins)."""
    children: list[Place]
    grids: list[Place] | None
    """Every grid below the node, when the node is above grid level; else `null`."""
    today: Today
