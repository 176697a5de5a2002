"""Append a change to the live stream, inside the transaction that makes the change.

    async with engine.begin() as conn:
        ...  # the change itself
        await record(conn, kind="alarm", key=fingerprint, company=c, location=loc, data={...})

The row commits or rolls back with the change, so a client never sees an event of a change that
did not happen and never misses one that did. The returned id is the event's SSE id.

On PostgreSQL the transaction also sends `NOTIFY` on `CHANNEL`: PostgreSQL delivers it when (and
only if) the transaction commits, to every server process, whose stream hub then reads the new
rows at once instead of at its next poll (`cloud_ingest.stream.hub`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, Final
from uuid import UUID

from sqlalchemy import func, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.infra.schema import stream_events

KINDS: Final = frozenset({"alarm", "work_order", "gateway"})
"""The kinds of event; a client's `event:` field."""
CHANNEL: Final = "steward_stream"
"""The PostgreSQL notification channel a transaction that records events notifies."""
_NOTIFY: Final = text(f"NOTIFY {CHANNEL}")
_INSERT_RETURNING_ID: Final = insert(stream_events).returning(stream_events.c.id)
_INSERT_NOTIFYING: Final = insert(stream_events).returning(
    stream_events.c.id, func.pg_notify(CHANNEL, "")
)
"""PostgreSQL: the insert and its `NOTIFY` in one statement (one round trip)."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to append with `record_many`."""

    kind: str
    key: str
    company: str
    location: str
    data: Mapping[str, object]


def _plain(value: object) -> object:
    """A time as ISO 8601 text, an enum as its value, a UUID as text (for `json.dumps`)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_data(data: Mapping[str, object]) -> dict[str, Any]:
    """`data` as plain JSON values; `ValueError` naming what cannot be."""
    try:
        plain: dict[str, Any] = json.loads(json.dumps(dict(data), default=_plain, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"stream event data must be JSON-serialisable: {err}") from None
    return plain


def _row(
    kind: str, key: str, company: str, location: str, data: Mapping[str, object]
) -> dict[str, object]:
    if kind not in KINDS:
        raise ValueError(f"unknown stream event kind {kind!r}; expected one of {sorted(KINDS)}")
    return {
        "at": datetime.now(UTC),
        "kind": kind,
        "key": key,
        "company": company,
        "location": location,
        "data": _json_data(data),
    }


async def record(
    conn: AsyncConnection,
    *,
    kind: str,
    key: str,
    company: str,
    location: str,
    data: Mapping[str, object],
) -> int:
    """Append one event to `stream_events` in `conn`'s transaction; return its id.

    `key` names the thing that changed (an alarm's fingerprint, a work order's id), `company`
    and `location` (a site path) decide who sees it, `data` is the payload: JSON values, times
    (as ISO 8601 text), enums and UUIDs; anything else is a `ValueError`.
    Ids increase in insertion order and may have gaps; see `cloud_ingest.stream.hub` for how
    readers cope with ids that commit out of order.
    """
    row = _row(kind, key, company, location, data)
    postgresql = conn.dialect.name == "postgresql"
    result = await conn.execute(_INSERT_NOTIFYING if postgresql else _INSERT_RETURNING_ID, row)
    return int(result.one()[0])


async def record_many(conn: AsyncConnection, events: Sequence[NewEvent]) -> None:
    """Append `events` in order, in one statement, in `conn`'s transaction (`record`, in bulk)."""
    rows = [_row(e.kind, e.key, e.company, e.location, e.data) for e in events]
    if rows:
        await conn.execute(insert(stream_events), rows)
        await _notify(conn)


async def _notify(conn: AsyncConnection) -> None:
    """Tell the stream hubs (at commit) that events were recorded (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_NOTIFY)
