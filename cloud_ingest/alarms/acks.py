"""People acknowledging and commenting on alarm instances (`POST /api/v1/alarms/{fp}/actions`).

Acknowledging says "someone is on it": it records who and when on the instance and stops it
counting as unacknowledged in the control room; it does not change the alarm's state (clear ≠
ack: a resolved alarm may still be unacknowledged, and an acknowledged one keeps firing until its
sensor clears). An acknowledgement belongs to one episode of the instance, the `starts_at` it had
then: when the alarm fires again after it resolved, the new episode is unacknowledged. A second
acknowledgement of the same episode is refused (`AlreadyAcknowledgedError`, `409` naming who did
it and when), so two operators never both think they took it.

Every acknowledgement and comment is a note in `alarm_notes` (append-only: actor, role, time,
text) and a live-stream `alarm` event, written in the transaction that makes the change; the
instance row is locked for it on PostgreSQL, so of two concurrent acknowledgements one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.scope import visible
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import alarm_instances, alarm_notes, gateways
from cloud_ingest.stream.outbox import record

ACK_ROLES: Final = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN})
"""Who acknowledges and comments: the control room (area officers too: a grid's control room)."""
COMMENT_MAX: Final = 2048
NOTES_MAX: Final = 200
"""The detail of an alarm lists at most this many notes (the newest)."""


class AlarmAction(StrEnum):
    """What a person does to an alarm instance."""

    ACK = "ack"
    COMMENT = "comment"


class AlarmNotFoundError(LookupError):
    """No such instance in the user's scope."""


class AlreadyAcknowledgedError(Exception):
    """This episode of the instance was acknowledged already."""

    def __init__(self, by: str, at: datetime) -> None:
        """Name who acknowledged it and when."""
        self.by = by
        self.at = at
        super().__init__(f"already acknowledged by {by} at {at.isoformat()}")


class InvalidNoteError(ValueError):
    """A comment is missing, blank or too long."""


@dataclass(frozen=True, slots=True)
class Note:
    """One acknowledgement or comment."""

    kind: str
    actor: str
    role: str
    at: datetime
    text: str
    episode: datetime


def acknowledged(row: Any) -> bool:  # noqa: ANN401 - a row mapping of alarm_instances
    """Whether the instance's current episode is acknowledged."""
    episode = row["acked_episode"]
    return episode is not None and episode == row["starts_at"]


def _comment(action: AlarmAction, text: str | None) -> str:
    comment = (text or "").strip()
    if len(comment) > COMMENT_MAX:
        raise InvalidNoteError(f"'comment' is longer than {COMMENT_MAX} characters")
    if action is AlarmAction.COMMENT and not comment:
        raise InvalidNoteError("'comment' requires a non-blank comment")
    return comment


async def _lock(conn: AsyncConnection, user: User, fingerprint: str) -> dict[str, Any]:
    t, g = alarm_instances.c, gateways.c
    query = (
        select(alarm_instances, g.company)
        .select_from(alarm_instances.outerjoin(gateways, g.id == t.gateway_id))
        .where(
            t.fingerprint == fingerprint,
            visible(user, gateway_id=t.gateway_id, location=t.location),
        )
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=alarm_instances)
    row = (await conn.execute(query)).mappings().one_or_none()
    if row is None:
        raise AlarmNotFoundError(f"no alarm {fingerprint!r}")
    return dict(row)


async def act(  # noqa: PLR0917 - the action, who takes it and when
    engine: AsyncEngine,
    user: User,
    fingerprint: str,
    action: AlarmAction,
    comment: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Acknowledge or comment on the instance; return its row after the change.

    Raises `AlarmNotFoundError`, `AlreadyAcknowledgedError` and `InvalidNoteError`.
    """
    text = _comment(action, comment)
    async with engine.connect() as connection:
        conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
        async with conn.begin():
            row = await _lock(conn, user, fingerprint)
            if action is AlarmAction.ACK:
                if acknowledged(row):
                    raise AlreadyAcknowledgedError(row["acked_by"], row["acked_at"])
                changes = {
                    "acked_at": now,
                    "acked_by": user.name,
                    "acked_episode": row["starts_at"],
                }
                await conn.execute(
                    update(alarm_instances)
                    .where(alarm_instances.c.fingerprint == fingerprint)
                    .values(**changes)
                )
                row.update(changes)
            await conn.execute(
                insert(alarm_notes).values(
                    fingerprint=fingerprint,
                    episode=row["starts_at"],
                    kind=action.value,
                    actor=user.name,
                    role=user.role.value,
                    at=now,
                    text=text,
                )
            )
            await record(
                conn,
                kind="alarm",
                key=fingerprint,
                company=row["company"] or "",
                location=row["location"],
                data=_stream_data(row, action, user, text, now),
            )
    return row


def _stream_data(
    row: dict[str, Any], action: AlarmAction, user: User, text: str, now: datetime
) -> dict[str, object]:
    """The alarm's usual stream fields, and what the person did."""
    return {
        "fingerprint": row["fingerprint"],
        "gateway_id": row["gateway_id"],
        "device_id": row["device_id"],
        "rule_id": row["rule_id"],
        "location": row["location"],
        "state": row["state"],
        "severity": row["severity"],
        "description": row["description"],
        "last_seq": row["last_seq"],
        "last_event_at": row["last_event_at"],
        "valid_until": row["valid_until"],
        "stale": row["stale"],
        "work_order": row["work_order"],
        "acknowledged": acknowledged(row),
        "acked_by": row["acked_by"] if acknowledged(row) else None,
        "acked_at": row["acked_at"] if acknowledged(row) else None,
        "note": {"kind": action.value, "actor": user.name, "at": now, "text": text},
    }


async def notes_of(conn: AsyncConnection, fingerprint: str) -> list[Note]:
    """The newest `NOTES_MAX` notes on the instance, oldest first."""
    n = alarm_notes.c
    rows = await conn.execute(
        select(n.kind, n.actor, n.role, n.at, n.text, n.episode)
        .where(n.fingerprint == fingerprint)
        .order_by(n.id.desc())
        .limit(NOTES_MAX)
    )
    return [Note(*r) for r in reversed(rows.all())]
