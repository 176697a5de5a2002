"""Which live-stream events a user receives: the rows the API would show them, event by event.

An event is seen where its row is (`auth.scope`: the user's company within their area, an area
officer's area). Work-order events follow `work_orders.store.visible_orders`: a resident receives
only the events of their own requests, and a technician also those of the orders dispatched to
them (another company's, lent through the pool). The same rule as a SQL filter over
`stream_events` (for a client's backlog) and as a test of one event in memory (for the live
fan-out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, or_

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.scope import user_sees, visible
from cloud_ingest.infra.schema import stream_events

WORK_ORDER: Final = "work_order"


def event_scope(user: User) -> ColumnElement[bool]:
    """The rows of `stream_events` `user` receives."""
    t = stream_events.c
    scope = visible(user, company=t.company, location=t.location)
    if user.sees_everything:
        return scope
    if user.role is Role.RESIDENT:
        own = and_(t.kind == WORK_ORDER, t.data["requester"].as_string() == user.name)
        return or_(and_(t.kind != WORK_ORDER, scope), own)
    if user.role is Role.TECHNICIAN:
        assigned = and_(t.kind == WORK_ORDER, t.data["assignee"].as_string() == user.name)
        return or_(scope, assigned)
    return scope


def sees_event(user: User, kind: str, company: str, location: str, data: Mapping[str, Any]) -> bool:
    """Whether `user` receives an event (`event_scope`, for one event in memory)."""
    if user.sees_everything:
        return True
    if kind == WORK_ORDER and user.role is Role.RESIDENT:
        return data.get("requester") == user.name
    if kind == WORK_ORDER and user.role is Role.TECHNICIAN and data.get("assignee") == user.name:
        return True
    return user_sees(user, company, location)
