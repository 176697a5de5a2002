"""The alarm API: instances, one instance with its events and notes, and acknowledging one.

`GET /api/v1/alarms` (newest first, keyset pages), `GET /api/v1/alarms/{fingerprint}` and `POST
/api/v1/alarms/{fingerprint}/actions` (acknowledge, comment: `cloud_ingest.alarms.acks`). Lists
carry summary columns only; the detail adds the work order reference, the events in `seq` order
and people's notes. Rows are those of the user's company and area (`cloud_ingest.auth.scope`);
an instance outside them is `404`, as an unknown one.
"""

from __future__ import annotations

from dataclasses import asdict
from http import HTTPStatus
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import RowMapping, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.alarms import acks
from cloud_ingest.alarms.schemas import (
    AlarmActionIn,
    AlarmDetail,
    AlarmEventOut,
    AlarmNoteOut,
    AlarmSummary,
)
from cloud_ingest.auth.models import Role
from cloud_ingest.auth.permissions import CurrentUser, database, require
from cloud_ingest.auth.scope import visible, within
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.infra.schema import alarm_events, alarm_instances
from cloud_ingest.paging import (
    DEFAULT_LIMIT,
    After,
    Limit,
    Page,
    decode_cursor,
    decode_time,
    encode_cursor,
)
from cloud_ingest.problems import problem
from cloud_ingest.rows import one_or_404
from core.types import AlarmState, Severity

router: Final = APIRouter(prefix="/alarms", tags=["alarms"])
READERS: Final = tuple(Role)
"""Every role reads the alarms of its scope."""

_SUMMARY: Final = [
    c for c in alarm_instances.c if c.name in AlarmSummary.model_fields or c.name == "acked_episode"
]
_EVENT: Final = [c for c in alarm_events.c if c.name in AlarmEventOut.model_fields]

Engine = Annotated[AsyncEngine, Depends(database)]


@router.get(
    "",
    dependencies=[require(*READERS)],
    summary="Alarm instances, newest first (by last event)",
    response_model=Page[AlarmSummary],
)
async def list_alarms(
    *,
    engine: Engine,
    user: CurrentUser,
    state: Annotated[AlarmState | None, Query(description="current state")] = None,
    severity: Annotated[Severity | None, Query(description="current severity")] = None,
    stale: Annotated[
        bool | None, Query(description="only stale (true) or only fresh (false) instances")
    ] = None,
    location: Annotated[
        str | None, Query(max_length=1024, description="a site path: this place and below")
    ] = None,
    acknowledged: Annotated[
        bool | None,
        Query(description="only acknowledged (true) or only unacknowledged (false) episodes"),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[AlarmSummary]:
    """Alarm instances of the user's scope, filtered, newest `last_event_at` first."""
    t = alarm_instances.c
    query = select(*_SUMMARY).where(visible(user, gateway_id=t.gateway_id, location=t.location))
    if state is not None:
        query = query.where(t.state == state.value)
    if severity is not None:
        query = query.where(t.severity == severity.value)
    if stale is not None:
        query = query.where(t.stale.is_(stale))
    if location is not None:
        query = query.where(within(t.location, location))
    if acknowledged is not None:
        acked = t.acked_episode == t.starts_at
        query = query.where(acked if acknowledged else or_(t.acked_episode.is_(None), ~acked))
    if after is not None:
        at_text, fingerprint = decode_cursor(after, str, str)
        at = decode_time(at_text)
        query = query.where(
            or_(
                t.last_event_at < at,
                and_(t.last_event_at == at, t.fingerprint < str(fingerprint)),
            )
        )
    query = query.order_by(t.last_event_at.desc(), t.fingerprint.desc()).limit(limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    items = [AlarmSummary.model_validate(_summary(row)) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    cursor = (
        None if last is None else encode_cursor(last.last_event_at.isoformat(), last.fingerprint)
    )
    return Page[AlarmSummary](items=items, next=cursor)


@router.get(
    "/{fingerprint:path}",
    dependencies=[require(*READERS)],
    summary="One alarm instance with its events",
    response_model=AlarmDetail,
    responses={404: {"description": "No such alarm instance in the user's scope"}},
)
async def get_alarm(engine: Engine, user: CurrentUser, fingerprint: str) -> AlarmDetail:
    """The instance of `fingerprint` (it may contain `/`) and its events in `seq` order."""
    t = alarm_instances.c
    query = select(*_SUMMARY, t.work_order).where(
        t.fingerprint == fingerprint,
        visible(user, gateway_id=t.gateway_id, location=t.location),
    )
    events = (
        select(*_EVENT)
        .where(alarm_events.c.fingerprint == fingerprint)
        .order_by(alarm_events.c.seq)
    )
    async with engine.connect() as conn:
        row = await one_or_404(conn, query, f"no alarm {fingerprint!r}")
        event_rows = (await conn.execute(events)).mappings().all()
        notes = await acks.notes_of(conn, fingerprint)
    return AlarmDetail.model_validate(
        {
            **_summary(row),
            "work_order": row["work_order"],
            "events": [AlarmEventOut.model_validate(dict(e)) for e in event_rows],
            "notes": [AlarmNoteOut.model_validate(asdict(n)) for n in notes],
        }
    )


@router.post(
    "/{fingerprint:path}/actions",
    dependencies=[require(*sorted(acks.ACK_ROLES), area_officers=True)],
    summary="Acknowledge an alarm instance (with a comment) or comment on it",
    response_model=AlarmDetail,
    responses={
        404: {"description": "No such alarm instance in the user's scope"},
        409: {"description": "This episode was acknowledged already (by whom and when)"},
        422: {"description": "A comment is missing or too long"},
    },
)
async def act_on_alarm(
    engine: Engine, user: CurrentUser, fingerprint: str, body: AlarmActionIn, request: Request
) -> AlarmDetail | JSONResponse:
    """Acknowledge the current episode, or add a comment; the alarm's state does not change."""
    clock: Clock = getattr(request.app.state, "clock", None) or SystemClock()
    try:
        await acks.act(
            engine, user, fingerprint, acks.AlarmAction(body.action), body.comment, clock.now()
        )
    except acks.AlarmNotFoundError as err:
        raise HTTPException(404, str(err)) from None
    except acks.AlreadyAcknowledgedError as err:
        return problem(
            HTTPStatus.CONFLICT,
            str(err),
            instance=request.url.path,
            acked_by=err.by,
            acked_at=err.at.isoformat(),
        )
    except acks.InvalidNoteError as err:
        raise HTTPException(422, str(err)) from None
    return await get_alarm(engine, user, fingerprint)


def _summary(row: RowMapping) -> dict[str, Any]:
    """A row's summary fields, the acknowledgement only while its episode is current."""
    fields = {k: v for k, v in row.items() if k in AlarmSummary.model_fields}
    fields["acknowledged"] = acks.acknowledged(row)
    if not fields["acknowledged"]:
        fields["acked_by"] = fields["acked_at"] = None
    return fields
