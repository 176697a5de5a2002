"""Alarm-instance changes as live-stream events, recorded in the transaction that made them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.infra.schema import alarm_instances, gateways
from cloud_ingest.ingest.work_orders import AlarmInstanceChange
from cloud_ingest.stream.outbox import NewEvent, record_many

_CHUNK: Final = 500


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


async def record_alarm_changes(
    conn: AsyncConnection, changes: Sequence[AlarmInstanceChange]
) -> None:
    """Append one `alarm` event per change (fingerprint as key), company taken from its gateway.

    The data holds the instance's state, severity and description and where it is; an instance
    whose gateway is not registered has the empty company (only administrators see it).
    """
    if not changes:
        return
    fingerprints = sorted({c.fingerprint for c in changes})
    t, g = alarm_instances.c, gateways.c
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(fingerprints), _CHUNK):
        chunk = fingerprints[start : start + _CHUNK]
        query = (
            select(t.fingerprint, t.description, g.company)
            .select_from(alarm_instances.outerjoin(gateways, g.id == t.gateway_id))
            .where(t.fingerprint.in_(chunk))
        )
        for row in await conn.execute(query):
            found[row.fingerprint] = (row.description, row.company or "")
    events = []
    for c in changes:
        description, company = found.get(c.fingerprint, ("", ""))
        data: dict[str, object] = {
            "fingerprint": c.fingerprint,
            "gateway_id": c.gateway_id,
            "device_id": c.device_id,
            "rule_id": c.rule_id,
            "location": c.location,
            "state": c.state,
            "severity": c.severity,
            "description": description,
            "last_seq": c.last_seq,
            "last_event_at": _iso(c.last_event_at),
            "valid_until": _iso(c.valid_until),
            "stale": c.stale,
            "work_order": None if c.work_order is None else dict(c.work_order),
        }
        events.append(NewEvent("alarm", c.fingerprint, company, c.location, data))
    await record_many(conn, events)
