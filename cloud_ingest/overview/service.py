"""The overview's queries: a node's roll-ups and today's figures, and the data of a site's plan.

Every query is scoped by the caller (`auth.scope.visible`, `work_orders.store.visible_orders`,
`registry.sites.site_visible`) and limited to the node (`auth.scope.within`). The roll-ups take
four `GROUP BY location` queries (open alarms by severity; devices by their worst open alarm and
their gateway's status; gateways by status; open orders by state with their breaches and
escalations), folded in memory under each child and grid by `overview.rollup`; today's figures
two more. No query runs per child or per grid. A device's worst open alarm comes from joining the
devices to their open alarms (`_devices_with_alarms`), whose cost follows the node's devices.

An *open* alarm is what the live alarm list shows: an instance firing, in fault or without data
(`work_orders.triage.ACTIVE_STATES`) that no other alarm inhibits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Subquery, and_, case, exists, func, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.auth.models import User
from cloud_ingest.auth.scope import normal_path, path_within, visible, within
from cloud_ingest.infra.schema import (
    alarm_instances,
    devices,
    gateways,
    sites,
    work_order_escalations,
    work_orders,
)
from cloud_ingest.overview import rollup
from cloud_ingest.overview.plan_svg import PlanDevice, PlanInput, PlanSite
from cloud_ingest.overview.rollup import (
    GRID_DEPTH,
    AlarmCount,
    Counts,
    DeviceCount,
    GatewayCount,
    OrderCount,
    depth,
)
from cloud_ingest.overview.schemas import Figures, Overview, Place, Today
from cloud_ingest.registry.checks import level_of
from cloud_ingest.registry.sites import site_visible
from cloud_ingest.work_orders.lifecycle import OPEN_STATES
from cloud_ingest.work_orders.store import visible_orders
from cloud_ingest.work_orders.triage import ACTIVE_STATES

OPEN_ALARM_STATES: Final = tuple(sorted(ACTIVE_STATES))
_OPEN_ORDER_STATES: Final = tuple(sorted(s.value for s in OPEN_STATES))
_SITE_COLUMNS: Final = (sites.c.path, sites.c.name, sites.c.level, sites.c.company, sites.c.plan)


class NodeNotFoundError(LookupError):
    """The node is unknown or out of the caller's sight (answered as `404`)."""


@dataclass(frozen=True, slots=True)
class Node:
    """The node an overview or a plan is of: its site row, or the root (`path` empty)."""

    path: str
    name: str
    level: str | None
    company: str
    plan: dict[str, Any] | None


def _open_alarm() -> ColumnElement[bool]:
    t = alarm_instances.c
    return and_(t.state.in_(OPEN_ALARM_STATES), t.inhibited_by.is_(None))


def _devices_with_alarms(user: User, node: str) -> Subquery:
    """One row per device `user` sees within `node`, with its worst open alarm.

    The row holds the device's columns, its gateway's `status`, the rank of its worst open alarm
    (`worst`, NULL: none) and how many it has (`alarms`).

    Devices are joined to their open alarms and grouped, rather than to an aggregate of every
    open alarm: when the planner misjudges how many devices a node holds and loops over them, each
    loop is an index lookup on `alarm_instances.device_id`, not a new aggregate of the alarms.
    """
    a, d, g = alarm_instances.c, devices.c, gateways.c
    rank = case((a.fingerprint.is_(None), None), else_=_alarm_rank())
    joined = devices.join(gateways, g.id == d.gateway_id).outerjoin(
        alarm_instances, and_(a.device_id == d.id, _open_alarm())
    )
    columns = (d.id, d.kind, d.location, d.plan_x, d.plan_y, g.status)
    return (
        select(*columns, func.max(rank).label("worst"), func.count(a.fingerprint).label("alarms"))
        .select_from(joined)
        .where(
            visible(user, gateway_id=d.gateway_id, location=d.location),
            within(d.location, node),
        )
        .group_by(*columns)
        .subquery("per_device")
    )


def _alarm_rank() -> ColumnElement[int]:
    """The severity of an alarm as a number (`rollup.SEVERITY_RANK`; `rollup.severity_of`)."""
    severity = alarm_instances.c.severity
    names = {**{name: name for name in rollup.SEVERITY_RANK}, **rollup.SEVERITY_ALIASES}
    whens = [(severity == name, rollup.SEVERITY_RANK[known]) for name, known in names.items()]
    return case(*whens, else_=rollup.SEVERITY_RANK["info"])


async def find_node(conn: AsyncConnection, user: User, path: str | None) -> Node:
    """The node `path` for `user` (none: their area, or the root without one); `NodeNotFoundError`.

    A node must lie within the user's area (the sites above it are named, not overviewed) and be a
    site the user sees; their own area is a node even without a site of that path.
    """
    area = normal_path(user.area)
    key = area if path is None else normal_path(path)
    if not path_within(key, area):
        raise NodeNotFoundError(key)
    if not key:
        return Node("", "", None, "", None)
    row = (
        (await conn.execute(select(*_SITE_COLUMNS).where(sites.c.path == key, site_visible(user))))
        .mappings()
        .one_or_none()
    )
    if row is not None:
        return Node(key, row["name"], row["level"], row["company"], _plan(row["plan"]))
    if key == area:
        return Node(key, key.rsplit("/", 1)[-1], level_of(key), user.company, None)
    raise NodeNotFoundError(key)


def _plan(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


async def load_counts(conn: AsyncConnection, user: User, node: str, now: datetime) -> Counts:
    """The grouped rows of everything `user` sees at and below `node`, at `now`."""
    a, g, w = alarm_instances.c, gateways.c, work_orders.c
    alarm_rows = await conn.execute(
        select(a.location, a.severity, func.count())
        .where(
            _open_alarm(),
            visible(user, gateway_id=a.gateway_id, location=a.location),
            within(a.location, node),
        )
        .group_by(a.location, a.severity)
    )
    alarms = tuple(AlarmCount(str(r[0]), str(r[1]), int(r[2])) for r in alarm_rows)
    p = _devices_with_alarms(user, node).c
    device_rows = await conn.execute(
        select(p.location, p.worst, p.status, func.count()).group_by(p.location, p.worst, p.status)
    )
    device_counts = tuple(
        DeviceCount(str(r[0]), None if r[1] is None else int(r[1]), str(r[2]), int(r[3]))
        for r in device_rows
    )
    gateway_rows = await conn.execute(
        select(g.site, g.status, func.count())
        .where(visible(user, gateway_id=g.id), within(g.site, node))
        .group_by(g.site, g.status)
    )
    gateway_counts = tuple(GatewayCount(str(r[0]), str(r[1]), int(r[2])) for r in gateway_rows)
    breached = func.sum(case((w.due_at < now, 1), else_=0))
    escalated = func.sum(case((w.escalation_level > 0, 1), else_=0))
    order_rows = await conn.execute(
        select(w.location, w.state, func.count(), breached, escalated)
        .where(
            w.state.in_(_OPEN_ORDER_STATES),
            visible_orders(user),
            within(w.location, node),
        )
        .group_by(w.location, w.state)
    )
    orders = tuple(
        OrderCount(str(r[0]), str(r[1]), int(r[2]), int(r[3] or 0), int(r[4] or 0))
        for r in order_rows
    )
    return Counts(alarms, device_counts, gateway_counts, orders)


def local_day(now: datetime, zone: ZoneInfo) -> tuple[str, datetime, datetime]:
    """The local date of `now` in `zone` and its `[start, end)` (tz-aware, DST-safe)."""
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return day.isoformat(), start, end


async def load_today(
    conn: AsyncConnection, user: User, node: str, day: tuple[str, datetime, datetime]
) -> Today:
    """Today's figures within `node`: alarms raised, orders opened, closed and closed on time.

    `day` is the local day of `local_day`; an alarm raised that day is an instance whose current
    episode started in it.
    """
    name, start, end = day
    a, w = alarm_instances.c, work_orders.c
    raised = await conn.scalar(
        select(func.count()).where(
            a.starts_at >= start,
            a.starts_at < end,
            visible(user, gateway_id=a.gateway_id, location=a.location),
            within(a.location, node),
        )
    )
    opened_today = and_(w.created_at >= start, w.created_at < end)
    closed_today = and_(w.closed_at >= start, w.closed_at < end)
    breach = exists(
        select(work_order_escalations.c.id).where(work_order_escalations.c.order_id == w.id)
    )
    row = (
        await conn.execute(
            select(
                func.sum(case((opened_today, 1), else_=0)),
                func.sum(case((closed_today, 1), else_=0)),
                func.sum(case((and_(closed_today, ~breach), 1), else_=0)),
            ).where(
                or_(opened_today, closed_today),
                visible_orders(user),
                within(w.location, node),
            )
        )
    ).one()
    opened, closed, on_time = (int(value or 0) for value in row)
    return Today(
        day=name,
        start=start,
        end=end,
        alarms_raised=int(raised or 0),
        orders_opened=opened,
        orders_closed=closed,
        orders_closed_on_time=on_time,
        on_time_rate=on_time / closed if closed else None,
    )


async def _sites_below(
    conn: AsyncConnection, user: User, condition: ColumnElement[bool]
) -> list[RowMapping]:
    query = select(*_SITE_COLUMNS).where(condition, site_visible(user)).order_by(sites.c.path)
    return list((await conn.execute(query)).mappings())


def _places(known: list[RowMapping], rollups: dict[str, rollup.Rollup], size: int) -> list[Place]:
    """A place for each known site and for each rolled-up key without a site, in path order."""
    places = {
        row["path"]: Place(
            path=row["path"],
            name=row["name"],
            level=row["level"],
            company=row["company"],
            plan=_plan(row["plan"]),
            figures=Figures.of(rollups.get(row["path"])),
        )
        for row in known
    }
    for path, found in rollups.items():
        if path not in places and depth(path) == size:
            places[path] = Place(
                path=path,
                name=path.rsplit("/", 1)[-1],
                level=level_of(path),
                company="",
                figures=Figures.of(found),
            )
    return [places[path] for path in sorted(places)]


async def overview(
    engine: AsyncEngine, user: User, path: str | None, *, now: datetime, zone: ZoneInfo
) -> Overview:
    """The overview of the node `path` (none: the user's area) for `user`; `NodeNotFoundError`."""
    async with engine.connect() as conn:
        node = await find_node(conn, user, path)
        counts = await load_counts(conn, user, node.path, now)
        today = await load_today(conn, user, node.path, local_day(now, zone))
        parent = sites.c.parent == node.path if node.path else sites.c.parent.is_(None)
        children = await _sites_below(conn, user, parent)
        above_grids = depth(node.path) < GRID_DEPTH
        grid_rows = (
            await _sites_below(
                conn, user, and_(sites.c.level == "grid", within(sites.c.path, node.path))
            )
            if above_grids
            else []
        )
    size = depth(node.path) + 1
    grids = (
        _places(grid_rows, rollup.roll_up(counts, rollup.grid_key), GRID_DEPTH)
        if above_grids
        else None
    )
    return Overview(
        at=now,
        node=Place(
            path=node.path,
            name=node.name,
            level=node.level,
            company=node.company,
            plan=node.plan,
            figures=Figures.of(rollup.roll_up(counts, rollup.whole).get("")),
        ),
        here=Figures.of(rollup.roll_up(counts, rollup.here_key(node.path)).get("")),
        children=_places(children, rollup.roll_up(counts, rollup.child_key(node.path)), size),
        grids=grids,
        today=today,
    )


async def plan_input(engine: AsyncEngine, user: User, path: str) -> PlanInput:
    """What the plan of the site `path` shows `user`; `NodeNotFoundError`.

    Its children's shapes and, on a compound's plan, its devices placed on it with their worst
    open alarm.
    """
    async with engine.connect() as conn:
        node = await find_node(conn, user, path)
        if not node.path:
            raise NodeNotFoundError(path)
        children = await _sites_below(conn, user, sites.c.parent == node.path)
        placed: list[PlanDevice] = []
        if node.level == "compound":
            p = _devices_with_alarms(user, node.path).c
            rows = await conn.execute(
                select(p.id, p.kind, p.location, p.plan_x, p.plan_y, p.status, p.worst, p.alarms)
                .where(p.plan_x.is_not(None), p.plan_y.is_not(None))
                .order_by(p.id)
            )
            placed = [
                PlanDevice(
                    id=r.id,
                    kind=r.kind,
                    location=r.location,
                    x=float(r.plan_x),
                    y=float(r.plan_y),
                    severity=rollup.severity_of_rank(r.worst),
                    open_alarms=int(r.alarms or 0),
                    offline=r.status == "offline",
                )
                for r in rows
            ]
    return PlanInput(
        site=PlanSite(node.path, node.name, node.level or "", node.plan),
        children=tuple(
            PlanSite(c["path"], c["name"], c["level"], _plan(c["plan"])) for c in children
        ),
        devices=tuple(placed),
    )
