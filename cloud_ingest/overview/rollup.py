"""Folding grouped counts into roll-ups per child site and per grid (pure, no I/O).

The database answers a few `GROUP BY location` queries (`overview.service`): open alarms by
severity, devices by their worst open alarm and their gateway's status, gateways by status, open
work orders by state with their SLA breaches and escalations. Each row names a full location path;
here the rows are summed under a key taken from that path: the child of the node it lies in
(`child_key`), its grid (`grid_key`), or one key for the whole node. There are as many grouped
rows as distinct locations (about as many as sites), whatever the number of alarms and devices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from cloud_ingest.work_orders.lifecycle import OPEN_STATES, State

SEVERITIES: Final = ("critical", "warning", "info")
"""Alarm severities, worst first (`core.types.Severity`); an unknown severity counts as `info`."""
SEVERITY_ALIASES: Final = {"major": "warning"}
"""Other names of a severity, as some alarm panels say it."""
SEVERITY_RANK: Final = {"critical": 3, "warning": 2, "info": 1}
"""A device's worst open alarm as a number (0: none), as the database orders them."""
NO_ALARM: Final = "none"
"""A device without an open alarm."""
GATEWAY_STATUSES: Final = ("online", "offline", "unknown")
"""A gateway's status; anything else counts as `unknown`."""
ORDER_STATES: Final = tuple(s.value for s in State if s in OPEN_STATES)
"""The open work-order states, in the order of the loop."""
GRID_DEPTH: Final = 4
"""The number of segments of a grid's path (district/street/community/grid)."""


def severity_of(text: str) -> str:
    """`text` as a known severity (`major` is `warning`); anything else is `info`."""
    name = SEVERITY_ALIASES.get(text, text)
    return name if name in SEVERITY_RANK else "info"


def severity_of_rank(rank: int | None) -> str:
    """The severity of a worst-alarm rank (`SEVERITY_RANK`); `none` for 0 or no rank."""
    for name, value in SEVERITY_RANK.items():
        if rank == value:
            return name
    return NO_ALARM


@dataclass(frozen=True, slots=True)
class AlarmCount:
    """Open alarm instances at `location` of one severity."""

    location: str
    severity: str
    count: int


@dataclass(frozen=True, slots=True)
class DeviceCount:
    """Devices at `location` behind a gateway of `gateway_status` with one worst open alarm.

    `worst` is its `SEVERITY_RANK` (None: no open alarm).
    """

    location: str
    worst: int | None
    gateway_status: str
    count: int


@dataclass(frozen=True, slots=True)
class GatewayCount:
    """Gateways sited at `site` of one status."""

    site: str
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class OrderCount:
    """Open work orders at `location` in `state`: how many, past due, escalated."""

    location: str
    state: str
    count: int
    breached: int
    escalated: int


@dataclass(frozen=True, slots=True)
class Counts:
    """Every grouped row of one node."""

    alarms: tuple[AlarmCount, ...] = ()
    devices: tuple[DeviceCount, ...] = ()
    gateways: tuple[GatewayCount, ...] = ()
    orders: tuple[OrderCount, ...] = ()


@dataclass(slots=True)
class Rollup:
    """The sums of one key.

    Alarms by severity, devices by worst alarm, gateways by status, open orders by state, and the
    open orders past due (`breached`) and escalated.
    """

    alarms: Counter[str] = field(default_factory=Counter)
    devices: Counter[str] = field(default_factory=Counter)
    devices_offline: int = 0
    """Devices behind an offline gateway (also counted by their worst alarm)."""
    gateways: Counter[str] = field(default_factory=Counter)
    orders: Counter[str] = field(default_factory=Counter)
    breached: int = 0
    escalated: int = 0


Key = Callable[[str], str | None]
"""The key a location is summed under; `None`: not summed."""


def roll_up(counts: Counts, key: Key) -> dict[str, Rollup]:
    """The roll-up of each key that some row of `counts` falls under."""
    into = _Into(key)
    for alarm in counts.alarms:
        if (r := into.at(alarm.location)) is not None:
            r.alarms[severity_of(alarm.severity)] += alarm.count
    for device in counts.devices:
        if (r := into.at(device.location)) is not None:
            _add_devices(r, device)
    for gateway in counts.gateways:
        if (r := into.at(gateway.site)) is not None:
            status = gateway.status if gateway.status in GATEWAY_STATUSES else "unknown"
            r.gateways[status] += gateway.count
    for order in counts.orders:
        if (r := into.at(order.location)) is not None:
            _add_orders(r, order)
    return into.out


class _Into:
    """The roll-ups by key, and the one of each location seen (its key is worked out once)."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.out: dict[str, Rollup] = {}
        self.seen: dict[str, Rollup | None] = {}

    def at(self, location: str) -> Rollup | None:
        """The roll-up `location` adds to; `None` when its key is `None`."""
        if location in self.seen:
            return self.seen[location]
        name = self.key(location)
        found = None if name is None else self.out.setdefault(name, Rollup())
        self.seen[location] = found
        return found


def _add_devices(into: Rollup, row: DeviceCount) -> None:
    into.devices[severity_of_rank(row.worst)] += row.count
    if row.gateway_status == "offline":
        into.devices_offline += row.count


def _add_orders(into: Rollup, row: OrderCount) -> None:
    into.orders[row.state] += row.count
    into.breached += row.breached
    into.escalated += row.escalated


def depth(path: str) -> int:
    """The number of segments of `path` (0 for the root, `""`)."""
    return path.count("/") + 1 if path else 0


def child_key(node: str) -> Key:
    """The key of a location below `node`: the path of `node`'s child it lies in.

    A location equal to `node` (or outside it) has no child: `None`.
    """
    prefix = f"{node}/" if node else ""
    size = depth(node) + 1

    def key(location: str) -> str | None:
        if not location.startswith(prefix) or location == node:
            return None
        return "/".join(location.split("/")[:size])

    return key


def here_key(node: str) -> Key:
    """The one key `""` for a location equal to `node` itself (rows not below any child)."""
    return lambda location: "" if location == node else None


def grid_key(location: str) -> str | None:
    """The grid a location lies in (its first `GRID_DEPTH` segments); `None` above grid level."""
    segments = location.split("/") if location else []
    return "/".join(segments[:GRID_DEPTH]) if len(segments) >= GRID_DEPTH else None


def whole(location: str) -> str | None:  # noqa: ARG001 - every location counts
    """The one key `""` for every location: the node's total."""
    return ""


def ordered_states(counter: Mapping[str, int]) -> dict[str, int]:
    """Open-order counts by state in loop order (every open state, zeros included).

    Any other state follows them.
    """
    known = {state: int(counter.get(state, 0)) for state in ORDER_STATES}
    extra = {state: int(n) for state, n in sorted(counter.items()) if state not in known}
    return known | extra


def total(values: Iterable[int]) -> int:
    """The sum of `values` as an `int`."""
    return int(sum(values))
