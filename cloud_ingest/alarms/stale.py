"""Stale alarm instances: active, but not re-sent before their `valid_until` (plus a grace).

A gateway re-sends a FIRING event every `resend` with `valid_until = now + 4 x resend`; when no
re-send came by `valid_until + grace`, the cloud no longer knows whether the alarm still holds.
`mark_stale` flags such instances (`stale = true`) with one idempotent UPDATE: run twice, or by
N processes at once, it flags each instance once. The next event folded into the instance clears
the flag (`cloud_ingest/ingest/service.py`). An instance without `valid_until` never goes stale.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.alarms.outages import ACTIVE_STATES, CHANGE_COLUMNS, change_of
from cloud_ingest.infra.schema import alarm_instances
from cloud_ingest.ingest.work_orders import AlarmInstanceChange


async def mark_stale(
    conn: AsyncConnection, now: datetime, grace: timedelta
) -> list[AlarmInstanceChange]:
    """Flag the active instances whose `valid_until` is more than `grace` before `now`.

    Returns the instances this call flagged (none that were stale already), in the caller's
    transaction.
    """
    t = alarm_instances.c
    stmt = (
        update(alarm_instances)
        .where(
            t.stale.is_(False),
            t.state.in_(ACTIVE_STATES),
            t.valid_until.is_not(None),
            t.valid_until < now - grace,
        )
        .values(stale=True, updated_at=now)
        .returning(*CHANGE_COLUMNS)
    )
    return [change_of(row) for row in await conn.execute(stmt)]
