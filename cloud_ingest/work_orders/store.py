"""The work-order tables, row by row: numbers, orders, events, attached alarms, and who sees what.

Every function runs on the caller's connection, inside the caller's transaction. An order changes
only through `append_event`, which writes the event with the next `seq` and bumps the order's
`version` in the same statement pair, so `version` always equals the number of events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.scope import visible, within
from cloud_ingest.infra.schema import (
    sites,
    work_order_alarms,
    work_order_events,
    work_order_numbers,
    work_orders,
)
from cloud_ingest.work_orders.lifecycle import OPEN_ACTION, OrderFacts, State

NUMBER_PREFIX: Final = "WO"
SYSTEM_ACTOR: Final = "system"
"""The actor of events the service records by itself (alarms, auto-verification)."""


class OrderNotFoundError(LookupError):
    """No order with this id is visible to the user."""


class VersionConflictError(Exception):
    """The order changed since the version the caller expected."""

    def __init__(self, expected: int, current: int, state: State) -> None:
        """Name the `expected` and `current` versions and the current `state`."""
        self.expected = expected
        self.current = current
        self.state = state
        super().__init__(f"the order is at version {current}, not {expected}: reload and retry")


def visible_orders(user: User) -> ColumnElement[bool]:
    """The rows of `work_orders` `user` may see (`auth.scope.visible`; a resident: their own).

    A technician also sees the orders dispatched to them, another company's included (lent to it
    through the shared pool).
    """
    if user.role is Role.RESIDENT and not user.sees_everything:
        return work_orders.c.requester == user.name
    scope = visible(user, company=work_orders.c.company, location=work_orders.c.location)
    if user.role is Role.TECHNICIAN:
        return scope | (work_orders.c.assignee == user.name)
    return scope


async def next_number(conn: AsyncConnection, now: datetime, tz: ZoneInfo) -> str:
    """The next order number of `now`'s local day: `WO-20261207-0001` (atomic per day)."""
    (number,) = await next_numbers(conn, now, tz, 1)
    return number


async def next_numbers(conn: AsyncConnection, now: datetime, tz: ZoneInfo, count: int) -> list[str]:
    """The next `count` order numbers of `now`'s local day, in order, in one statement."""
    if count < 1:
        return []
    day = now.astimezone(tz).strftime("%Y%m%d")
    table = work_order_numbers
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .values(day=day, last=count)
        .on_conflict_do_update(index_elements=[table.c.day], set_={"last": table.c.last + count})
        .returning(table.c.last)
    )
    last = int((await conn.execute(statement)).scalar_one())
    return [f"{NUMBER_PREFIX}-{day}-{n:04d}" for n in range(last - count + 1, last + 1)]


async def company_of_location(conn: AsyncConnection, location: str) -> str:
    """The company of the nearest site at or above `location` (empty if none is registered)."""
    parts = location.strip("/").split("/")
    paths = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
    row = (
        await conn.execute(
            select(sites.c.company)
            .where(sites.c.path.in_(paths), sites.c.company != "")
            .order_by(func.length(sites.c.path).desc())
            .limit(1)
        )
    ).first()
    return "" if row is None else str(row[0])


async def insert_order(
    conn: AsyncConnection,
    values: Mapping[str, Any],
    *,
    actor: str,
    role: str,
    at: datetime,
    evidence: Mapping[str, object],
    data: Mapping[str, object],
    reason: str | None = None,
    dedupe: str | None = None,
) -> dict[str, Any]:
    """Insert a NEW order with `values` and its `open` event (seq 1); return the order's row."""
    row = {**values, "state": State.NEW.value, "version": 1, "created_at": at, "updated_at": at}
    inserted = (
        (await conn.execute(insert(work_orders).values(**row).returning(*work_orders.c)))
        .mappings()
        .one()
    )
    order_id = int(inserted["id"])
    await conn.execute(
        insert(work_order_events).values(
            order_id=order_id,
            seq=1,
            action=OPEN_ACTION,
            from_state=None,
            to_state=State.NEW.value,
            actor=actor,
            role=role,
            at=at,
            reason=reason,
            evidence=dict(evidence),
            data=dict(data),
            dedupe=dedupe,
        )
    )
    return dict(inserted)


async def lock_order(
    conn: AsyncConnection, order_id: int, scope: ColumnElement[bool] | None = None
) -> dict[str, Any]:
    """The order's row, locked for this transaction; `OrderNotFoundError` if absent or out of scope.

    PostgreSQL locks the row (`FOR UPDATE`); SQLite's write transaction already excludes writers.
    """
    query = select(work_orders).where(work_orders.c.id == order_id)
    if scope is not None:
        query = query.where(scope)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise OrderNotFoundError(f"no work order {order_id}")
    return dict(row)


async def insert_orders(
    conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Insert orders (rows of the same columns) in one statement; their stored rows, in order.

    The caller writes each order's events (`insert_events`); `version` must count them.
    """
    if not rows:
        return []
    statement = insert(work_orders).returning(*work_orders.c, sort_by_parameter_order=True)
    result = await conn.execute(statement, [dict(r) for r in rows])
    return [dict(r) for r in result.mappings()]


_ORDER_MOVES: Final = (
    "state",
    "version",
    "updated_at",
    "last_alarm_at",
    "priority",
    "verifier",
    "closed_at",
    "due_at",
)
"""The columns of an order the alarm intake changes (`update_orders`)."""


async def update_orders(
    conn: AsyncConnection, orders: Sequence[tuple[Mapping[str, Any], int]]
) -> None:
    """Write the alarm intake's columns of locked orders: `(row, version read)` pairs.

    Each update also checks the version read under the lock; a writer that got in between
    (which the lock rules out) makes the events' `(order_id, seq)` insert fail.
    """
    if not orders:
        return
    values: dict[str, Any] = {name: bindparam(f"new_{name}") for name in _ORDER_MOVES}
    statement = (
        update(work_orders)
        .where(
            work_orders.c.id == bindparam("order_id"),
            work_orders.c.version == bindparam("read_version"),
        )
        .values(values)
    )
    params = [
        {
            "order_id": row["id"],
            "read_version": version,
            **{f"new_{name}": row[name] for name in _ORDER_MOVES},
        }
        for row, version in orders
    ]
    await conn.execute(statement, params)


async def insert_events(conn: AsyncConnection, events: Sequence[Mapping[str, object]]) -> None:
    """Append events (`work_order_events` rows of the same columns) in one statement."""
    if events:
        await conn.execute(_INSERT_EVENT, [dict(e) for e in events])


async def insert_links(conn: AsyncConnection, links: Sequence[Mapping[str, object]]) -> None:
    """Attach alarms to orders (`work_order_alarms` rows) in one statement."""
    if links:
        await conn.execute(insert(work_order_alarms), [dict(link) for link in links])


async def update_links(conn: AsyncConnection, links: Sequence[Mapping[str, object]]) -> None:
    """Move attached alarms on (`last_seq`, `state`, `updated_at` by order and fingerprint)."""
    if not links:
        return
    table = work_order_alarms
    statement = (
        update(table)
        .where(
            table.c.order_id == bindparam("link_order_id"),
            table.c.fingerprint == bindparam("link_fingerprint"),
        )
        .values(
            last_seq=bindparam("new_last_seq"),
            state=bindparam("new_state"),
            updated_at=bindparam("new_updated_at"),
        )
    )
    params = [
        {
            "link_order_id": link["order_id"],
            "link_fingerprint": link["fingerprint"],
            "new_last_seq": link["last_seq"],
            "new_state": link["state"],
            "new_updated_at": link["updated_at"],
        }
        for link in links
    ]
    await conn.execute(statement, params)


def facts_of(order: Mapping[str, Any]) -> OrderFacts:
    """What the lifecycle needs of an order row."""
    return OrderFacts(
        state=State(order["state"]),
        assignee=order["assignee"],
        handler=order["handler"],
        requester=order["requester"],
        escalation_level=int(order["escalation_level"]),
    )


async def append_event(
    conn: AsyncConnection,
    order: Mapping[str, Any],
    *,
    action: str,
    to_state: State,
    actor: str,
    role: str,
    at: datetime,
    reason: str | None = None,
    evidence: Mapping[str, object] | None = None,
    data: Mapping[str, object] | None = None,
    changes: Mapping[str, object] | None = None,
    dedupe: str | None = None,
) -> dict[str, Any]:
    """Append the next event to the locked `order` and apply `changes`; return the updated row.

    The update checks the version read under the lock (`VersionConflictError` if another writer
    got in between, which the lock rules out), so `seq` stays gap-free and equal to `version`.
    """
    version = int(order["version"])
    values = {**(changes or {}), "state": to_state.value, "version": version + 1, "updated_at": at}
    result = await conn.execute(
        update(work_orders)
        .where(work_orders.c.id == order["id"], work_orders.c.version == version)
        .values(**values)
    )
    if result.rowcount != 1:
        current = await conn.execute(
            select(work_orders.c.version, work_orders.c.state).where(
                work_orders.c.id == order["id"]
            )
        )
        now_version, now_state = current.one()
        raise VersionConflictError(version, int(now_version), State(now_state))
    await conn.execute(
        _INSERT_EVENT,
        {
            "order_id": order["id"],
            "seq": version + 1,
            "action": action,
            "from_state": order["state"],
            "to_state": to_state.value,
            "actor": actor,
            "role": role,
            "at": at,
            "reason": reason,
            "evidence": dict(evidence or {}),
            "data": dict(data or {}),
            "dedupe": dedupe,
        },
    )
    return {**order, **values}


_INSERT_EVENT: Final = insert(work_order_events)
"""One event's insert, built once (the parameters are given with each execution)."""


async def events_of(conn: AsyncConnection, order_id: int) -> list[dict[str, Any]]:
    """The order's events, oldest first."""
    rows = await conn.execute(
        select(work_order_events)
        .where(work_order_events.c.order_id == order_id)
        .order_by(work_order_events.c.seq)
    )
    return [dict(r) for r in rows.mappings()]


async def alarms_of(conn: AsyncConnection, order_id: int) -> list[dict[str, Any]]:
    """The alarm instances attached to the order."""
    rows = await conn.execute(
        select(work_order_alarms)
        .where(work_order_alarms.c.order_id == order_id)
        .order_by(work_order_alarms.c.fingerprint)
    )
    return [dict(r) for r in rows.mappings()]


async def list_orders(
    conn: AsyncConnection,
    scope: ColumnElement[bool],
    *,
    limit: int,
    after: int | None = None,
    states: Sequence[str] = (),
    category: str | None = None,
    company: str | None = None,
    location: str | None = None,
    sources: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Up to `limit` visible orders, newest first, after the order id `after` (keyset)."""
    query = select(work_orders).where(scope)
    if after is not None:
        query = query.where(work_orders.c.id < after)
    if states:
        query = query.where(work_orders.c.state.in_(list(states)))
    if category:
        query = query.where(work_orders.c.category == category)
    if company is not None:
        query = query.where(work_orders.c.company == company)
    if location:
        query = query.where(within(work_orders.c.location, location))
    if sources:
        query = query.where(work_orders.c.source.in_(list(sources)))
    rows = await conn.execute(query.order_by(work_orders.c.id.desc()).limit(limit))
    return [dict(r) for r in rows.mappings()]
