"""The notification outbox: record deliveries inside the caller's transaction, send nothing.

    async with engine.begin() as conn:
        ...  # change a work order
        await enqueue(conn, topic="work_order.opened", severity="critical", company="acme",
                      location="d1/s1/c1", title="...", body="...", data={"id": 7})

The rows become visible to the delivery worker when the caller commits, and vanish with a rollback,
so a notification is sent exactly for the changes that happened. Inserting is all this does, so any
number of server processes may enqueue at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Final
from uuid import UUID

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.infra.schema import (
    notification_channels,
    notification_deliveries,
    notification_subscriptions,
)
from cloud_ingest.notify.matching import roles_of, severity_rank, subscription_matches

PENDING: Final = "pending"
SENT: Final = "sent"
FAILED: Final = "failed"
DEAD: Final = "dead"
STATUSES: Final = (PENDING, SENT, FAILED, DEAD)
"""A delivery is pending (never tried), sent, failed (to be retried) or dead (given up)."""


def _jsonable(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def payload_of(
    *,
    topic: str,
    severity: str,
    company: str,
    location: str,
    title: str,
    body: str,
    data: Mapping[str, object],
    created_at: datetime,
) -> dict[str, object]:
    """The JSON document every channel renders (times as ISO 8601, other values as text)."""
    document = {
        "topic": topic,
        "severity": severity,
        "company": company,
        "location": location,
        "title": title,
        "body": body,
        "data": dict(data),
        "created_at": created_at,
    }
    loaded: dict[str, object] = json.loads(json.dumps(document, default=_jsonable))
    return loaded


async def enqueue(
    conn: AsyncConnection,
    *,
    topic: str,
    severity: str,
    company: str,
    location: str,
    title: str,
    body: str,
    data: Mapping[str, object],
) -> int:
    """Record a delivery for every subscription the event matches; return how many.

    Runs in the caller's transaction on `conn`. A channel receives one delivery per event even if
    several of its subscriptions match. Only enabled channels and subscriptions count. An unknown
    `severity` is a `ValueError` (info, warning, critical).
    """
    severity_rank(severity)
    now = datetime.now(UTC)
    rows = await conn.execute(
        select(
            notification_subscriptions.c.id,
            notification_subscriptions.c.channel_id,
            notification_subscriptions.c.topic,
            notification_subscriptions.c.min_severity,
            notification_subscriptions.c.company,
            notification_subscriptions.c.area,
            notification_subscriptions.c.role,
        )
        .join(
            notification_channels,
            notification_channels.c.id == notification_subscriptions.c.channel_id,
        )
        .where(
            notification_subscriptions.c.enabled,
            notification_channels.c.enabled,
            or_(
                notification_subscriptions.c.company == company,
                notification_subscriptions.c.company == "",
            ),
        )
        .order_by(notification_subscriptions.c.id)
    )
    roles = roles_of(data)
    chosen: dict[int, int] = {}
    for sub_id, channel_id, sub_topic, min_severity, sub_company, area, role in rows:
        if channel_id in chosen:
            continue
        if subscription_matches(
            sub_topic=sub_topic,
            sub_min_severity=min_severity,
            sub_company=sub_company,
            sub_area=area,
            sub_role=role,
            topic=topic,
            severity=severity,
            company=company,
            location=location,
            roles=roles,
        ):
            chosen[channel_id] = sub_id
    if not chosen:
        return 0
    payload = payload_of(
        topic=topic,
        severity=severity,
        company=company,
        location=location,
        title=title,
        body=body,
        data=data,
        created_at=now,
    )
    await conn.execute(
        insert(notification_deliveries),
        [
            {
                "subscription_id": sub_id,
                "channel_id": channel_id,
                "company": company,
                "location": location,
                "topic": topic,
                "severity": severity,
                "payload": payload,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for channel_id, sub_id in chosen.items()
        ],
    )
    return len(chosen)
