"""The resident's phone view `/console/requests`: report a repair, follow it, rate the work.

A resident (报事报修) describes the problem, picks a category and may add a photo: the page's
script uploads the photo to `POST /api/v1/photos` and files `POST /api/v1/requests` with
`source: resident` and the photo's hash. The page lists the resident's own requests
(`store.visible_orders`: a resident sees only what they asked for), newest first, each with its
progress and, once the work is closed, a form to rate it (1 to 5 stars and a comment: the `rate`
action of `POST /api/v1/work-orders/{id}/actions`).

The page follows the live stream: a `work_order` event of one of the requests on the page
fetches the list again, so the progress moves on without a reload.

The progress is told the way a resident should hear it (`timeline`, pure): one step per change of
state, with its time, but not the staff's names, their internal notes or the steps that go back
inside the company (a technician handing a task back, a hold asked for and decided). What the
resident is told besides the state: the result the work was handed in with, the reason of a
cancellation, and their own rating.

| route | who | what |
| --- | --- | --- |
| `GET /console/requests` | resident | the page |
| `GET /console/requests/list` | resident | the list of my requests as HTML |
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.console.i18n import browser_texts
from cloud_ingest.console.pages import PREFIX, Engine, PageRoute, page_context, render
from cloud_ingest.console.tasks import STREAM_PATH, category_text
from cloud_ingest.infra.config import Settings
from cloud_ingest.infra.schema import work_order_events, work_orders
from cloud_ingest.work_orders.lifecycle import RATING_MAX, RATING_MIN, Action, State
from cloud_ingest.work_orders.service import REQUEST_SOURCES
from cloud_ingest.work_orders.store import visible_orders

PATH: Final = f"{PREFIX}/requests"
ROLES: Final = (Role.RESIDENT,)
CATEGORIES: Final = ("resident_repair", "water", "drainage", "sanitation", "security")
"""What a resident may choose (each has its SLA in `work_orders/sla_defaults.yaml`)."""
REQUESTS_MAX: Final = 50
TEXT_MAX: Final = 4096
COMMENT_MAX: Final = 4096
RATEABLE: Final = State.CLOSED
_INTERNAL_ACTIONS: Final = frozenset(
    {
        Action.REJECT.value,
        Action.CONFIRM.value,
        Action.APPROVE_HOLD.value,
        Action.DENY_HOLD.value,
        Action.RESUME.value,
        Action.HOLD.value,
        Action.ESCALATE.value,
        Action.COMMENT.value,
    }
)
"""Steps a resident is not told: they go back and forth inside the company."""
_BROWSER_TEXTS: Final = ("resident.js.",)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a request's progress as the resident sees it."""

    state: str
    at: datetime
    note: str | None = None
    """The result handed in (submit) or why it was cancelled."""
    rating: int | None = None


@dataclass(frozen=True, slots=True)
class MyRequest:
    """One of the resident's requests with its progress."""

    id: int
    number: str
    state: str
    version: int
    category: str
    title: str
    description: str
    location: str
    created_at: datetime
    rating: int | None
    photos: tuple[str, ...]
    steps: tuple[Step, ...]

    @property
    def rateable(self) -> bool:
        """Whether the resident may rate it now (the work was verified and closed)."""
        return self.state == RATEABLE


def timeline(events: Iterable[Mapping[str, Any]]) -> list[Step]:
    """The steps a resident is told of an order's `events` (rows, oldest first) (pure).

    One step per new state (a step that leaves the state as it was is none), but none for the
    company's internal moves (`_INTERNAL_ACTIONS`); no names, no internal reasons.
    """
    steps: list[Step] = []
    for event in events:
        action, to_state = str(event["action"]), str(event["to_state"])
        if action in _INTERNAL_ACTIONS or (steps and steps[-1].state == to_state):
            continue
        data = event.get("data") or {}
        note: str | None = None
        if action == Action.SUBMIT.value:
            note = _text(data.get("result"))
        elif action == Action.CANCEL.value:
            note = _text(event.get("reason"))
        rating = data.get("rating") if action == Action.RATE.value else None
        steps.append(
            Step(
                state=to_state,
                at=event["at"],
                note=note,
                rating=rating if isinstance(rating, int) else None,
            )
        )
    return steps


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _photos(evidence: object) -> tuple[str, ...]:
    if not isinstance(evidence, Mapping):
        return ()
    photos = evidence.get("photos")
    if not isinstance(photos, list):
        return ()
    return tuple(p for p in photos if isinstance(p, str))


async def my_requests(engine: AsyncEngine, user: User) -> list[MyRequest]:
    """The requests `user` filed, newest first, each with its resident's timeline."""
    w, e = work_orders.c, work_order_events.c
    query = (
        select(work_orders)
        .where(visible_orders(user), w.requester == user.name, w.source.in_(REQUEST_SOURCES))
        .order_by(w.id.desc())
        .limit(REQUESTS_MAX)
    )
    async with engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(query)).mappings()]
        ids = [int(r["id"]) for r in rows]
        events: dict[int, list[dict[str, Any]]] = {order_id: [] for order_id in ids}
        if ids:
            found = await conn.execute(
                select(work_order_events).where(e.order_id.in_(ids)).order_by(e.order_id, e.seq)
            )
            for event in found.mappings():
                events[int(event["order_id"])].append(dict(event))
    return [_request(row, events[int(row["id"])]) for row in rows]


def _request(row: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> MyRequest:
    opened = events[0] if events else {}
    return MyRequest(
        id=int(row["id"]),
        number=row["number"],
        state=row["state"],
        version=int(row["version"]),
        category=row["category"],
        title=row["title"],
        description=row["description"],
        location=row["location"],
        created_at=row["created_at"],
        rating=row["rating"],
        photos=_photos(opened.get("evidence")),
        steps=tuple(timeline(events)),
    )


def _json(value: object) -> str:
    """JSON for a `<script type="application/json">` block (no `</script>` can end it early)."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def _context(request: Request, user: User, **values: object) -> dict[str, object]:
    context = page_context(request, user, stars=range(RATING_MIN, RATING_MAX + 1), **values)
    context["category_text"] = category_text(str(context["lang"]))
    return context


# --- routes -------------------------------------------------------------------------------------

_page: Final = APIRouter(route_class=PageRoute)
_fragments: Final = APIRouter()


@_page.get(
    "/requests",
    dependencies=[require(*ROLES)],
    summary="My repair requests",
    response_class=HTMLResponse,
)
async def requests_page(request: Request, engine: Engine, user: CurrentUser) -> Response:
    """The request form and my requests with their progress."""
    requests = await my_requests(engine, user)
    context = _context(request, user, requests=requests, categories=CATEGORIES)
    settings: Settings = request.app.state.settings
    config = {
        "api": "/api/v1",
        "list": f"{PATH}/list",
        "stream": STREAM_PATH,
        "csrf": context["csrf"],
        "csrfHeader": context["csrf_header"],
        "photoMaxBytes": settings.photo_max_bytes,
        "textMax": TEXT_MAX,
    }
    context["config"] = _json(config)
    context["texts"] = _json(browser_texts(str(context["lang"]), _BROWSER_TEXTS))
    return render("resident.html", context)


@_fragments.get(
    "/requests/list",
    dependencies=[require(*ROLES)],
    summary="My repair requests (HTML)",
    response_class=HTMLResponse,
)
async def requests_list(request: Request, engine: Engine, user: CurrentUser) -> Response:
    """The list of my requests as the page shows it."""
    requests = await my_requests(engine, user)
    return render("resident_list.html", _context(request, user, requests=requests))


router: Final = APIRouter(prefix=PREFIX, include_in_schema=False)
"""The page (a visitor without a session goes to the sign-in page) and its fragment (`401`)."""
router.include_router(_page)
router.include_router(_fragments)
