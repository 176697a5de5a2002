"""The technician's phone view `/console/tasks`: the work orders dispatched to me, and my actions.

A task is an order whose `assignee` is the signed-in person, in a state of the field work
(dispatched, in progress, on hold) or just handed in (awaiting verification). The list is read
with the work-order scope (`store.visible_orders`) and the assignee filter, so the page shows
what `GET /api/v1/work-orders` would show of it, narrowed to me; the open tasks come first, the
most urgent (earliest due) on top.

The page follows the live stream (`GET /api/v1/stream`): a `work_order` event of an order
assigned to me, or of one on the page, fetches that task's card again, so a task dispatched to
me appears, and one taken from me goes, without a reload.

The actions are the API's: the page's script posts `POST /api/v1/work-orders/{id}/actions` with
the order's `expected_version`, uploads the result's photos to `POST /api/v1/photos` first and
sends their hashes with `submit`. The buttons of a task are the technician's actions the lifecycle
table admits in its state for the role (`task_actions`, pure), so what is shown is what the API
would accept; `confirm` (accepting the dispatch) is offered until the technician confirmed since
the last dispatch.

| route | who | what |
| --- | --- | --- |
| `GET /console/tasks` | technician, supervisor, admin | the page |
| `GET /console/tasks/card?id=` | the same | one task as HTML (`204`: no longer one of mine) |
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.console.i18n import browser_texts, catalog
from cloud_ingest.console.pages import PREFIX, Engine, PageRoute, page_context, render
from cloud_ingest.infra.config import Settings
from cloud_ingest.infra.schema import work_order_events, work_orders
from cloud_ingest.work_orders.lifecycle import Action, State, allowed_actions
from cloud_ingest.work_orders.store import visible_orders

PATH: Final = f"{PREFIX}/tasks"
ROLES: Final = (Role.TECHNICIAN, Role.SUPERVISOR, Role.ADMIN)
"""Who works on site (the lifecycle's field roles): the page and its fragments admit them."""
OPEN_STATES: Final = (State.DISPATCHED, State.IN_PROGRESS, State.ON_HOLD)
"""States in which a task waits for its technician."""
LISTED_STATES: Final = (*OPEN_STATES, State.AWAITING_VERIFICATION)
"""States the page lists: the open tasks and those handed in, waiting for verification."""
TASK_ACTIONS: Final = (
    Action.CONFIRM,
    Action.START,
    Action.RESUME,
    Action.SUBMIT,
    Action.HOLD,
    Action.REJECT,
)
"""The technician's own actions, in the order the buttons show them (the main one first)."""
NEEDS_REASON: Final = frozenset({Action.REJECT, Action.HOLD})
TASKS_MAX: Final = 100
CATEGORY_PREFIX: Final = "mobile.category."
STREAM_PATH: Final = "/api/v1/stream"
"""The live stream the page follows: a work order dispatched to me appears without a reload."""
_BROWSER_TEXTS: Final = ("tasks.js.",)
_ID_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Task:
    """One order dispatched to the technician, as the page shows it."""

    id: int
    number: str
    state: str
    version: int
    priority: str
    category: str
    title: str
    description: str
    location: str
    due_at: datetime | None
    dispatched_at: datetime | None
    confirmed: bool
    """The technician confirmed (accepted) the task since it was last dispatched."""
    hold_approved: bool
    actions: tuple[str, ...]

    @property
    def open(self) -> bool:
        """Whether the task still waits for the technician."""
        return self.state in OPEN_STATES

    def overdue(self, now: datetime) -> bool:
        """Whether the running stage's due time has passed at `now`."""
        return self.due_at is not None and self.due_at < now


def task_actions(state: State, role: Role, *, confirmed: bool) -> tuple[str, ...]:
    """The task buttons `role` gets in `state`, as the lifecycle table admits them (pure).

    A dispatched task offers `confirm` (accept it) until the technician confirmed the current
    dispatch, and `start` (on site) after that; `reject` (with a reason) all along.
    """
    allowed = set(allowed_actions(state, role))
    skip = Action.CONFIRM if confirmed else Action.START
    return tuple(a.value for a in TASK_ACTIONS if a.value in allowed and a is not skip)


def confirmed_orders(events: Iterable[Mapping[str, Any]]) -> set[int]:
    """The orders whose newest `dispatch`/`confirm` event is a `confirm` (pure).

    `events` are rows with `order_id`, `seq` and `action`, in any order.
    """
    newest: dict[int, tuple[int, str]] = {}
    for event in events:
        order_id, seq = int(event["order_id"]), int(event["seq"])
        if order_id not in newest or seq > newest[order_id][0]:
            newest[order_id] = (seq, str(event["action"]))
    return {order_id for order_id, (_, action) in newest.items() if action == Action.CONFIRM}


async def my_tasks(engine: AsyncEngine, user: User, order_id: int | None = None) -> list[Task]:
    """The orders dispatched to `user` in a listed state (only `order_id`'s, if given).

    Open tasks first, by due time (none last), then newest first.
    """
    w = work_orders.c
    query = select(work_orders).where(
        visible_orders(user), w.assignee == user.name, w.state.in_(list(LISTED_STATES))
    )
    if order_id is not None:
        query = query.where(w.id == order_id)
    query = query.order_by(
        case((w.state.in_(list(OPEN_STATES)), 0), else_=1),
        w.due_at.is_(None),
        w.due_at,
        w.id.desc(),
    ).limit(TASKS_MAX)
    e = work_order_events.c
    async with engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(query)).mappings()]
        ids = [int(r["id"]) for r in rows]
        events: list[Mapping[str, Any]] = []
        if ids:
            found = await conn.execute(
                select(e.order_id, e.seq, e.action).where(
                    e.order_id.in_(ids),
                    e.action.in_([Action.DISPATCH.value, Action.CONFIRM.value]),
                )
            )
            events = [dict(event) for event in found.mappings()]
        confirmed = confirmed_orders(events)
    return [_task(row, user, confirmed=int(row["id"]) in confirmed) for row in rows]


def _task(row: Mapping[str, Any], user: User, *, confirmed: bool) -> Task:
    state = State(row["state"])
    return Task(
        id=int(row["id"]),
        number=row["number"],
        state=state.value,
        version=int(row["version"]),
        priority=row["priority"],
        category=row["category"],
        title=row["title"],
        description=row["description"],
        location=row["location"],
        due_at=row["due_at"],
        dispatched_at=row["dispatched_at"],
        confirmed=confirmed,
        hold_approved=row["hold_approved_at"] is not None,
        actions=task_actions(state, user.role, confirmed=confirmed),
    )


def category_text(language: str) -> Callable[[str], str]:
    """A category's name in `language` (`mobile.category.<name>`; an unknown one as it is)."""
    texts = catalog(language)

    def text(category: str) -> str:
        return texts.get(CATEGORY_PREFIX + category, category)

    return text


def _json(value: object) -> str:
    """JSON for a `<script type="application/json">` block (no `</script>` can end it early)."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def _context(request: Request, user: User, **values: object) -> dict[str, object]:
    context = page_context(
        request, user, now=datetime.now(UTC), needs_reason=[a.value for a in NEEDS_REASON], **values
    )
    context["category_text"] = category_text(str(context["lang"]))
    return context


# --- routes -------------------------------------------------------------------------------------

_page: Final = APIRouter(route_class=PageRoute)
_fragments: Final = APIRouter()


@_page.get(
    "/tasks", dependencies=[require(*ROLES)], summary="My tasks", response_class=HTMLResponse
)
async def tasks_page(request: Request, engine: Engine, user: CurrentUser) -> Response:
    """The orders dispatched to me, with their actions."""
    tasks = await my_tasks(engine, user)
    context = _context(request, user, tasks=tasks, open_count=sum(1 for t in tasks if t.open))
    settings: Settings = request.app.state.settings
    config = {
        "api": "/api/v1",
        "card": f"{PATH}/card",
        "stream": STREAM_PATH,
        "me": user.name,
        "csrf": context["csrf"],
        "csrfHeader": context["csrf_header"],
        "photoMaxBytes": settings.photo_max_bytes,
        "photoMaxFiles": settings.photo_max_files,
    }
    context["config"] = _json(config)
    context["texts"] = _json(browser_texts(str(context["lang"]), _BROWSER_TEXTS))
    return render("tasks.html", context)


@_fragments.get(
    "/tasks/card",
    dependencies=[require(*ROLES)],
    summary="One of my tasks (HTML); 204 when it is no longer mine",
    response_class=HTMLResponse,
)
async def task_card(
    request: Request,
    engine: Engine,
    user: CurrentUser,
    order_id: Annotated[int, Query(alias="id", ge=1, le=_ID_MAX)],
) -> Response:
    """The card of task `id` as the page shows it; `204` if it is not one of mine any more."""
    tasks = await my_tasks(engine, user, order_id)
    if not tasks:
        return Response(status_code=HTTPStatus.NO_CONTENT, headers={"Cache-Control": "no-store"})
    return render("tasks_card.html", _context(request, user, task=tasks[0]))


router: Final = APIRouter(prefix=PREFIX, include_in_schema=False)
"""The page (a visitor without a session goes to the sign-in page) and its fragment (`401`)."""
router.include_router(_page)
router.include_router(_fragments)
