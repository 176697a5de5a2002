"""The rows of the live-alarms page: active alarm instances with their work order, in order.

`live_rows` reads the active instances (firing, fault, no data) the user may see
(`auth.scope.visible`), with their acknowledgement (`alarms.acks`: who acknowledged the current
episode, when, and the comment) and the newest work order attached to each that the user may see
(`work_orders.store.visible_orders`). Acknowledging is the alarm API's `ack` action;
`may_acknowledge` asks the roles that action admits, so the button is shown exactly where the
action would be admitted.

The order of the page (`sort_key`, pure): fire first, then by severity (critical first), then
the newest first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.alarms.acks import ACK_ROLES, acknowledged
from cloud_ingest.auth.models import User
from cloud_ingest.auth.scope import visible
from cloud_ingest.infra.schema import (
    alarm_instances,
    alarm_notes,
    work_order_alarms,
    work_orders,
)
from cloud_ingest.work_orders.store import visible_orders
from core.types import Severity

ACTIVE_STATES: Final = ("firing", "fault", "no_data")
"""Alarm states the page lists."""
ROWS_MAX: Final = 500
"""The page lists at most this many alarms (the most urgent)."""
FIRE_CATEGORY: Final = "fire"
_FIRE_RULE: Final = re.compile(r"(^|[_.:/-])(smoke|fire)([_.:/-]|$)")
_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class Order:
    """The work order of an alarm row, as far as the page shows it."""

    id: int
    number: str
    state: str
    version: int
    category: str


@dataclass(frozen=True, slots=True)
class AlarmRow:
    """One active alarm instance on the page."""

    fingerprint: str
    severity: str
    state: str
    stale: bool
    description: str
    rule_id: str
    location: str
    device_id: str
    gateway_id: str
    starts_at: datetime
    last_event_at: datetime
    order: Order | None = None
    acked_by: str | None = None
    """Who acknowledged the current episode (None: nobody yet)."""
    acked_at: datetime | None = None
    ack_comment: str | None = None

    @property
    def acknowledged(self) -> bool:
        """Whether someone acknowledged the current episode."""
        return self.acked_by is not None

    @property
    def fire(self) -> bool:
        """Whether this is a fire alarm (pinned on top)."""
        category = self.order.category if self.order is not None else ""
        return is_fire(self.rule_id, category)

    @property
    def rank(self) -> int:
        """The severity's rank (higher: more urgent; unknown severities lowest)."""
        try:
            return Severity(self.severity).rank
        except ValueError:
            return -1


def is_fire(rule_id: str, category: str = "") -> bool:
    """Whether an alarm of `rule_id` (its order of `category`) is about fire or smoke."""
    return category == FIRE_CATEGORY or _FIRE_RULE.search(rule_id.lower()) is not None


def sort_key(row: AlarmRow) -> tuple[bool, int, float, str]:
    """Fire first, then the most severe, then the newest (`sorted(rows, key=sort_key)`)."""
    return (not row.fire, -row.rank, -row.starts_at.timestamp(), row.fingerprint)


def may_acknowledge(user: User, row: AlarmRow) -> bool:
    """Whether `user` may acknowledge `row` now, as the alarm API would decide."""
    return user.role in ACK_ROLES and not row.acknowledged


async def live_rows(
    engine: AsyncEngine, user: User, fingerprint: str | None = None
) -> list[AlarmRow]:
    """The active alarms `user` sees (only `fingerprint`'s, if given), in page order."""
    t = alarm_instances.c
    query = select(
        t.fingerprint,
        t.severity,
        t.state,
        t.stale,
        t.description,
        t.rule_id,
        t.location,
        t.device_id,
        t.gateway_id,
        t.starts_at,
        t.last_event_at,
        t.acked_by,
        t.acked_at,
        t.acked_episode,
    ).where(
        visible(user, gateway_id=t.gateway_id, location=t.location),
        t.state.in_(ACTIVE_STATES),
        t.inhibited_by.is_(None),
    )
    if fingerprint is not None:
        query = query.where(t.fingerprint == fingerprint)
    async with engine.connect() as conn:
        found = [dict(row) for row in (await conn.execute(query)).mappings()]
        orders = await _orders(conn, user, [row["fingerprint"] for row in found])
        acked = [row for row in found if acknowledged(row)]
        comments = await _ack_comments(conn, acked)
    rows = []
    for row in found:
        current = acknowledged(row)
        row["acked_by"] = row["acked_by"] if current else None
        row["acked_at"] = row["acked_at"] if current else None
        del row["acked_episode"]
        fp = row["fingerprint"]
        rows.append(AlarmRow(**row, order=orders.get(fp), ack_comment=comments.get(fp)))
    return sorted(rows, key=sort_key)[:ROWS_MAX]


async def _ack_comments(
    conn: AsyncConnection, acked: Sequence[Mapping[str, Any]]
) -> Mapping[str, str]:
    """The comment of the acknowledgement of each acknowledged row's current episode."""
    n = alarm_notes.c
    episodes = {row["fingerprint"]: row["starts_at"] for row in acked}
    fingerprints = sorted(episodes)
    comments: dict[str, str] = {}
    for start in range(0, len(fingerprints), _CHUNK):
        query = (
            select(n.fingerprint, n.episode, n.text)
            .where(n.fingerprint.in_(fingerprints[start : start + _CHUNK]), n.kind == "ack")
            .order_by(n.id)
        )
        rows = (await conn.execute(query)).all()
        comments |= {fp: text for fp, episode, text in rows if episode == episodes[fp] and text}
    return comments


async def _orders(
    conn: AsyncConnection, user: User, fingerprints: Sequence[str]
) -> Mapping[str, Order]:
    """The newest visible order of each fingerprint."""
    a, w = work_order_alarms.c, work_orders.c
    newest: dict[str, dict[str, Any]] = {}
    for start in range(0, len(fingerprints), _CHUNK):
        chunk = fingerprints[start : start + _CHUNK]
        query = (
            select(a.fingerprint, w.id, w.number, w.state, w.version, w.category)
            .select_from(work_order_alarms.join(work_orders, w.id == a.order_id))
            .where(a.fingerprint.in_(chunk), visible_orders(user))
            .order_by(w.id)
        )
        for row in (await conn.execute(query)).mappings():
            newest[row["fingerprint"]] = dict(row)
    return {
        fp: Order(
            id=int(o["id"]),
            number=o["number"],
            state=o["state"],
            version=int(o["version"]),
            category=o["category"],
        )
        for fp, o in newest.items()
    }
