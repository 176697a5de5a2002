"""Tell the world about a work-order change, inside the transaction that makes it.

Every change is one live-stream event (`cloud_ingest.stream.outbox.record`, kind `work_order`);
the changes people act on also become notifications (`cloud_ingest.notify.outbox.enqueue`,
topic `work_order.<action>`: `work_order.open`, `work_order.dispatch`, `work_order.escalate`, ...).
Both only insert rows, so they commit or roll back with the change.

An escalation (a person's `escalate`, 上报, or the SLA scheduler's `breach`) is told to the level
the order rose to: its notification's location is that level's site path (`escalation_target`:
the order's location cut at the community, the street, ...), so subscriptions for that area and
wider ones receive it, those of narrower areas (the grid it left) do not. The order's own location
is in the data (`location`, with `level` and `target`). A breach is at least a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.infra.schema import (
    notification_channels,
    notification_deliveries,
    notification_subscriptions,
)
from cloud_ingest.notify.matching import roles_of, severity_rank, subscription_matches
from cloud_ingest.notify.outbox import PENDING, enqueue, payload_of
from cloud_ingest.stream.outbox import NewEvent, record, record_many
from cloud_ingest.work_orders.escalation import ESCALATION_LEVELS, escalation_target
from cloud_ingest.work_orders.lifecycle import BREACH_ACTION, OPEN_ACTION, Action

NOTIFIED: Final = frozenset(
    {
        OPEN_ACTION,
        Action.DISPATCH.value,
        Action.REJECT.value,
        Action.SUBMIT.value,
        Action.VERIFY.value,
        Action.REWORK.value,
        Action.REOPEN.value,
        Action.CANCEL.value,
        Action.RATE.value,
        Action.ESCALATE.value,
        BREACH_ACTION,
        "auto_verify",
    }
)
"""Actions that notify subscribers (alarm evidence, comments and routine steps only stream)."""

_SEVERITY: Final = {"P1": "critical", "P2": "warning"}
"""A notification's severity by the order's priority (info below P2)."""
_ADDRESSED: Final = {
    OPEN_ACTION: ("operator", "supervisor"),
    Action.DISPATCH.value: ("technician",),
    Action.REJECT.value: ("operator", "supervisor"),
    Action.SUBMIT.value: ("operator", "supervisor"),
    Action.REWORK.value: ("operator", "supervisor", "technician"),
    Action.ESCALATE.value: ("supervisor",),
    BREACH_ACTION: ("supervisor",),
}
"""The roles a notification is addressed to (none named: everyone subscribed)."""
ESCALATIONS: Final = frozenset({Action.ESCALATE.value, BREACH_ACTION})
"""Actions told to the area of the level the order rose to."""


def escalation_area(order: Mapping[str, Any]) -> tuple[str, str]:
    """The name of the order's escalation level and that level's site path.

    A location that is no site path (malformed) is the area itself.
    """
    level = ESCALATION_LEVELS[min(int(order["escalation_level"]), len(ESCALATION_LEVELS) - 1)]
    location = str(order["location"])
    try:
        return level, escalation_target(location, level)
    except ValueError:
        return level, location


def summary(order: Mapping[str, Any]) -> dict[str, object]:
    """The fields of an order every stream event and notification carries."""
    return {
        "id": order["id"],
        "number": order["number"],
        "state": order["state"],
        "version": order["version"],
        "source": order["source"],
        "category": order["category"],
        "priority": order["priority"],
        "title": order["title"],
        "assignee": order["assignee"],
        "requester": order["requester"],
        "escalation_level": order["escalation_level"],
    }


async def publish(
    conn: AsyncConnection,
    order: Mapping[str, Any],
    *,
    action: str,
    from_state: str | None,
    actor: str,
    reason: str | None = None,
) -> None:
    """Record the change of `order` (its row after `action`) for the stream and notifications."""
    data = _stream_data(order, action, from_state, actor, reason)
    await record(
        conn,
        kind="work_order",
        key=str(order["id"]),
        company=str(order["company"]),
        location=str(order["location"]),
        data=data,
    )
    notice = notification(order, action=action, from_state=from_state, actor=actor, reason=reason)
    if notice is not None:
        await enqueue(conn, **notice)


def _stream_data(
    order: Mapping[str, Any], action: str, from_state: str | None, actor: str, reason: str | None
) -> dict[str, object]:
    data: dict[str, object] = {
        **summary(order),
        "action": action,
        "from_state": from_state,
        "actor": actor,
    }
    if reason:
        data["reason"] = reason
    return data


def notification(
    order: Mapping[str, Any],
    *,
    action: str,
    from_state: str | None,
    actor: str,
    reason: str | None = None,
) -> dict[str, Any] | None:
    """The `enqueue` arguments of the change of `order` (None: `action` notifies nobody)."""
    if action not in NOTIFIED:
        return None
    data = _stream_data(order, action, from_state, actor, reason)
    company, location = str(order["company"]), str(order["location"])
    roles = _ADDRESSED.get(action)
    if roles is not None:
        data["roles"] = list(roles)
    title = f"{order['number']} {action}: {order['title']}"
    body = f"{order['number']} ({order['category']}, {order['priority']}) at {location}: "
    body += f"{from_state or 'new'} -> {order['state']} by {actor}"
    severity = _SEVERITY.get(str(order["priority"]), "info")
    told = location
    if action in ESCALATIONS:
        level, told = escalation_area(order)
        data.update(location=location, level=level, target=told)
        title = f"{order['number']} escalated to the {level} ({told}): {order['title']}"
        body += f"; escalated to the {level} level ({told})"
        if action == BREACH_ACTION and severity == "info":
            severity = "warning"
    if reason:
        body += f"; reason: {reason}"
    return {
        "topic": f"work_order.{action}",
        "severity": severity,
        "company": company,
        "location": told,
        "title": title,
        "body": body,
        "data": data,
    }


@dataclass(frozen=True, slots=True)
class Publication:
    """One change to publish with `publish_many`: the order's row after `action`, and who."""

    order: Mapping[str, Any]
    action: str
    from_state: str | None
    actor: str
    reason: str | None = None


async def publish_many(conn: AsyncConnection, changes: Sequence[Publication]) -> None:
    """`publish` each of `changes`, in order, in a few statements.

    The stream events go in one statement, the notifications with one read of the subscriptions
    and one insert (`enqueue_all`).
    """
    events = []
    notices = []
    for change in changes:
        order = change.order
        data = _stream_data(order, change.action, change.from_state, change.actor, change.reason)
        company, location = str(order["company"]), str(order["location"])
        events.append(NewEvent("work_order", str(order["id"]), company, location, data))
        notice = notification(
            order,
            action=change.action,
            from_state=change.from_state,
            actor=change.actor,
            reason=change.reason,
        )
        if notice is not None:
            notices.append(notice)
    await record_many(conn, events)
    await enqueue_all(conn, notices)


async def enqueue_all(conn: AsyncConnection, notices: Sequence[Mapping[str, Any]]) -> int:
    """`notify.outbox.enqueue` of each of `notices` (its arguments), in order; how many rows.

    The same choice as `enqueue` (per notice, the first matching enabled subscription of each
    enabled channel of its company or of every company), with the subscriptions read once.
    """
    if not notices:
        return 0
    for notice in notices:
        severity_rank(str(notice["severity"]))
    now = datetime.now(UTC)
    s, c = notification_subscriptions.c, notification_channels.c
    companies = sorted({str(n["company"]) for n in notices} | {""})
    rows = (
        await conn.execute(
            select(s.id, s.channel_id, s.topic, s.min_severity, s.company, s.area, s.role)
            .join(notification_channels, c.id == s.channel_id)
            .where(s.enabled, c.enabled, s.company.in_(companies))
            .order_by(s.id)
        )
    ).all()
    deliveries: list[dict[str, object]] = []
    for notice in notices:
        company, location = str(notice["company"]), str(notice["location"])
        roles = roles_of(notice["data"])
        chosen: dict[int, int] = {}
        for sub_id, channel_id, sub_topic, min_severity, sub_company, area, role in rows:
            if channel_id in chosen or sub_company not in {company, ""}:
                continue
            if subscription_matches(
                sub_topic=sub_topic,
                sub_min_severity=min_severity,
                sub_company=sub_company,
                sub_area=area,
                sub_role=role,
                topic=notice["topic"],
                severity=notice["severity"],
                company=company,
                location=location,
                roles=roles,
            ):
                chosen[channel_id] = sub_id
        if not chosen:
            continue
        payload = payload_of(**notice, created_at=now)
        deliveries.extend(
            {
                "subscription_id": sub_id,
                "channel_id": channel_id,
                "company": company,
                "location": location,
                "topic": notice["topic"],
                "severity": notice["severity"],
                "payload": payload,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for channel_id, sub_id in chosen.items()
        )
    if deliveries:
        await conn.execute(insert(notification_deliveries), deliveries)
    return len(deliveries)
