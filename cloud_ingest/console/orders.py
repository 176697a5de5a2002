"""The work-order board and the order page: the loop of every open order, live.

| route | who | what |
| --- | --- | --- |
| `GET /console/orders?grid=&category=&company=` | as `GET /api/v1/work-orders` | the board: open orders in columns by state |
| `GET /console/orders/{id}/card?grid=&category=&company=` | same | one card (HTML); `204`: not open, not visible or filtered out |
| `GET /console/orders/{id}` | same | the order page: details, actions, event history, attached alarms |
| `GET /console/orders/{id}/panel` | same | the order page's content (HTML), refreshed after a change |

The board lists the open orders the user may see (`WorkOrders.find`, scoped like the API), in one
column per open state, the most pressing first in each (`card_key`, pure: the earliest due time
first, orders without one last). Each card counts down to its `due_at` in the browser; the page
follows the live stream and fetches the card of every `work_order` event again, so a card moves
columns, appears or leaves without a reload. The filters (grid: a site path and below, category,
company) are the API's own query parameters and apply to the cards fetched live too.

The order page shows the buttons of exactly the actions the API lists as `allowed_actions` for
this user and posts them to `POST /api/v1/work-orders/{id}/actions` from the browser, so the API's
checks apply; its problem documents (409 with the allowed actions, 412, 422) are shown as they are.
A dispatch goes to the roster's pick (automatic), within a team, or to a technician of the company
or one lent to it by an approved loan of the shared pool (`/api/v1/teams`, `/technicians`, `/pool`).
Below, the device of the order's first alarm is charted around the alarm's start
(`telemetry_of`: the metrics it reported then; the series from `GET /api/v1/telemetry`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from cloud_ingest.auth.models import User
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.auth.scope import path_within, visible
from cloud_ingest.console.i18n import LANGUAGE_COOKIE as _LANGUAGE_COOKIE
from cloud_ingest.console.i18n import browser_texts, language_of
from cloud_ingest.console.pages import PREFIX, Engine, PageRoute, page_context, render
from cloud_ingest.infra.schema import alarm_instances, readings, work_orders
from cloud_ingest.stream.hub import Hub
from cloud_ingest.work_orders.escalation import ESCALATION_LEVELS
from cloud_ingest.work_orders.lifecycle import OPEN_STATES, TRANSITIONS, State, allowed_actions
from cloud_ingest.work_orders.router import ID_MAX, STAFF, work_order_service
from cloud_ingest.work_orders.service import WorkOrders
from cloud_ingest.work_orders.store import OrderNotFoundError, visible_orders
from core.metrics import Metric

COLUMNS: Final = (
    State.NEW,
    State.ACCEPTED,
    State.DISPATCHED,
    State.IN_PROGRESS,
    State.ON_HOLD,
    State.AWAITING_VERIFICATION,
    State.REWORK,
    State.REOPENED,
)
"""The board's columns, left to right: the open states in the order of the loop."""
assert frozenset(COLUMNS) == OPEN_STATES  # noqa: S101 - a column for every open state
BOARD_MAX: Final = 500
"""The board shows at most this many open orders (the newest)."""
FILTER_MAX: Final = 1024
_BROWSER_TEXTS: Final = (
    "orders.js.",
    "orders.metric.",
    "stream.",
    "error.",
    "order.state.",
    "orders.action.",
)
_NO_CONTENT: Final = HTTPStatus.NO_CONTENT
CHART_BEFORE: Final = timedelta(hours=2)
"""The order page charts the alarm's device from this long before the alarm started..."""
CHART_AFTER: Final = timedelta(hours=1)
"""...to this long after (or now)."""
CHART_METRICS_MAX: Final = 3
_NOT_CHARTED: Final = frozenset({Metric.RSSI_DBM.value, Metric.SNR_DB.value})
"""Radio metrics say nothing about the alarm."""
_ALARMS_LOOKED_AT: Final = 50

pages: Final = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PageRoute)
fragments: Final = APIRouter(prefix=PREFIX, include_in_schema=False)

OrderId = Annotated[int, Path(ge=1, le=ID_MAX, description="the order's id")]
Filter = Annotated[str, Query(max_length=FILTER_MAX)]


@dataclass(frozen=True, slots=True)
class Filters:
    """The board's filters (blank: no filter)."""

    grid: str = ""
    category: str = ""
    company: str = ""

    def admits(self, row: Mapping[str, Any]) -> bool:
        """Whether the order `row` passes the filters."""
        grid = self.grid.strip("/")
        return (
            (not grid or path_within(str(row["location"]), grid))
            and (not self.category or row["category"] == self.category)
            and (not self.company or row["company"] == self.company)
        )

    def query(self) -> dict[str, str]:
        """The filters that are set, as query parameters."""
        named = {"grid": self.grid, "category": self.category, "company": self.company}
        return {name: value for name, value in named.items() if value}


def card_key(row: Mapping[str, Any]) -> tuple[bool, float, int]:
    """A column's order: the earliest due time first, orders without one last, then by id."""
    due: datetime | None = row["due_at"]
    return (due is None, due.timestamp() if due is not None else 0.0, int(row["id"]))


def columns_of(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The open orders by state (every column present, possibly empty), each in `card_key` order."""
    columns: dict[str, list[Mapping[str, Any]]] = {state.value: [] for state in COLUMNS}
    for row in rows:
        if row["state"] in columns:
            columns[row["state"]].append(row)
    return {state: sorted(cards, key=card_key) for state, cards in columns.items()}


def epoch_ms(at: datetime | None) -> int | None:
    """`at` in milliseconds since the epoch, for the page's script."""
    return None if at is None else round(at.timestamp() * 1000)


def _service(request: Request) -> WorkOrders:
    return work_order_service(request)


def _filters(grid: str, category: str, company: str) -> Filters:
    return Filters(grid.strip().strip("/"), category.strip(), company.strip())


def _watermark(request: Request) -> int | None:
    """The stream's last event id now: a page rendered after it misses nothing after it."""
    hub: Hub | None = getattr(request.app.state, "stream_hub", None)
    return hub.watermark if hub is not None and hub.ready.is_set() else None


def _json(value: object) -> str:
    """JSON for a `<script type="application/json">` element."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def _texts(request: Request) -> str:
    return _json(browser_texts(language_of(request.cookies.get(_LANGUAGE_COOKIE)), _BROWSER_TEXTS))


async def _choices(engine: Engine, user: User, filters: Filters) -> dict[str, list[str]]:
    """What the filters offer: the categories, companies and grids of the open orders `user` sees.

    The values chosen now are offered too.
    """
    w = work_orders.c
    query = (
        select(w.category, w.company, w.location)
        .where(visible_orders(user), w.state.in_([s.value for s in COLUMNS]))
        .distinct()
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    grids: set[str] = set()
    for _, _, location in rows:
        parts = str(location).strip("/").split("/")
        grids.update("/".join(parts[:depth]) for depth in (3, 4) if len(parts) >= depth)
    return {
        "categories": sorted({str(r[0]) for r in rows} | {filters.category} - {""}),
        "companies": sorted({str(r[1]) for r in rows} | {filters.company} - {""}),
        "grids": sorted(grids),
    }


def _view(user: User, row: Mapping[str, Any]) -> dict[str, Any]:
    """An order row as the templates use it (with its due time for the script)."""
    return {
        **row,
        "due_ms": epoch_ms(row["due_at"]),
        "level_name": ESCALATION_LEVELS[
            min(int(row["escalation_level"]), len(ESCALATION_LEVELS) - 1)
        ],
        "allowed_actions": allowed_actions(State(row["state"]), user.role),
    }


# --- the board -----------------------------------------------------------------------------------


@pages.get(
    "/orders",
    dependencies=[require(*STAFF)],
    summary="The work-order board",
    response_class=HTMLResponse,
)
async def board_page(
    *,
    request: Request,
    engine: Engine,
    user: CurrentUser,
    grid: Filter = "",
    category: Filter = "",
    company: Filter = "",
) -> Response:
    """Open orders in columns by state, filtered, live through the stream."""
    filters = _filters(grid, category, company)
    resume = _watermark(request)
    rows = await _service(request).find(
        user,
        limit=BOARD_MAX,
        states=[s.value for s in COLUMNS],
        category=filters.category or None,
        company=filters.company or None,
        location=filters.grid or None,
    )
    columns = columns_of(_view(user, row) for row in rows)
    config = {
        "stream": "/api/v1/stream",
        "card": f"{PREFIX}/orders/{{id}}/card",
        "filters": filters.query(),
        "resume": resume,
        "lang": language_of(request.cookies.get(_LANGUAGE_COOKIE)),
        "timeZone": request.app.state.settings.work_order_timezone,
    }
    context = page_context(
        request,
        user,
        columns=columns,
        filters=filters,
        choices=await _choices(engine, user, filters),
        total=sum(len(cards) for cards in columns.values()),
        config=_json(config),
        texts=_texts(request),
    )
    return render("orders.html", context)


@fragments.get(
    "/orders/{order_id}/card",
    dependencies=[require(*STAFF)],
    summary="One card of the board (HTML); 204 when the board does not show it",
    response_class=HTMLResponse,
)
async def card(
    *,
    request: Request,
    user: CurrentUser,
    order_id: OrderId,
    grid: Filter = "",
    category: Filter = "",
    company: Filter = "",
) -> Response:
    """The card of `order_id`; `204` if closed, cancelled, not visible or filtered out."""
    try:
        row = await _service(request).get(order_id, user)
    except OrderNotFoundError:
        return Response(status_code=_NO_CONTENT)
    if row["state"] not in {s.value for s in COLUMNS} or not _filters(
        grid, category, company
    ).admits(row):
        return Response(status_code=_NO_CONTENT)
    return render("orders_card.html", page_context(request, user, order=_view(user, row)))


# --- one order -----------------------------------------------------------------------------------

_FIELDS: Final = {action.value: list(t.required) for action, t in TRANSITIONS.items()}
"""The fields each action's form asks for (the API checks them again)."""
_DISPATCH_FIELDS: Final = ["target"]


def _forms() -> dict[str, list[str]]:
    forms = {action: [f for f in fields if f != "assignee"] for action, fields in _FIELDS.items()}
    forms["dispatch"] = _DISPATCH_FIELDS
    return forms


async def _order(request: Request, user: User, order_id: int) -> dict[str, Any] | None:
    try:
        row = await _service(request).get(order_id, user)
    except OrderNotFoundError:
        return None
    return _view(user, row)


async def telemetry_of(
    engine: Engine, user: User, order: Mapping[str, Any], now: datetime
) -> dict[str, object] | None:
    """What the order page charts: the device of the order's first alarm around its start.

    The metrics are those the device reported in the window (at most `CHART_METRICS_MAX`, radio
    metrics left out); None when the order has no alarm the user sees or the device reported
    nothing then. The page fetches the series from `GET /api/v1/telemetry`.
    """
    fingerprints = [str(a["fingerprint"]) for a in order["alarms"]][:_ALARMS_LOOKED_AT]
    if not fingerprints:
        return None
    i, r = alarm_instances.c, readings.c
    first = (
        select(i.device_id, i.starts_at)
        .where(
            i.fingerprint.in_(fingerprints),
            visible(user, gateway_id=i.gateway_id, location=i.location),
        )
        .order_by(i.starts_at)
        .limit(1)
    )
    async with engine.connect() as conn:
        found = (await conn.execute(first)).first()
        if found is None:
            return None
        device, at = str(found[0]), found[1]
        start, end = at - CHART_BEFORE, min(at + CHART_AFTER, now)
        reported = select(r.metric).where(r.device_id == device, r.ts >= start, r.ts <= end)
        names = {str(m) for (m,) in (await conn.execute(reported.distinct())).all()}
    known = {m.value for m in Metric} - _NOT_CHARTED
    metrics = sorted(names & known)[:CHART_METRICS_MAX]
    if not metrics:
        return None
    return {
        "device": device,
        "metrics": metrics,
        "at": at.isoformat(),
        "from": start.isoformat(),
        "to": end.isoformat(),
    }


@pages.get(
    "/orders/{order_id}",
    dependencies=[require(*STAFF)],
    summary="One work order",
    response_class=HTMLResponse,
)
async def order_page(
    request: Request, engine: Engine, user: CurrentUser, order_id: OrderId
) -> Response:
    """The order with its actions, event history and attached alarms; `404` outside the scope."""
    order = await _order(request, user, order_id)
    if order is None:
        context = page_context(request, user, order=None, config="{}", texts="{}", charted=False)
        return render("orders_detail.html", context, HTTPStatus.NOT_FOUND)
    config = {
        "stream": "/api/v1/stream",
        "resume": _watermark(request),
        "id": order_id,
        "panel": f"{PREFIX}/orders/{order_id}/panel",
        "actions": f"/api/v1/work-orders/{order_id}/actions",
        "technicians": "/api/v1/technicians",
        "teams": "/api/v1/teams",
        "pool": "/api/v1/pool?state=APPROVED",
        "company": order["company"],
        "forms": _forms(),
        "telemetry": await telemetry_of(engine, user, order, datetime.now(UTC)),
        "telemetryUrl": "/api/v1/telemetry",
        "lang": language_of(request.cookies.get(_LANGUAGE_COOKIE)),
        "timeZone": request.app.state.settings.work_order_timezone,
    }
    context = page_context(
        request,
        user,
        order=order,
        config=_json(config),
        texts=_texts(request),
        charted=config["telemetry"] is not None,
    )
    return render("orders_detail.html", context)


@fragments.get(
    "/orders/{order_id}/panel",
    dependencies=[require(*STAFF)],
    summary="The order page's content (HTML)",
    response_class=HTMLResponse,
)
async def order_panel(request: Request, user: CurrentUser, order_id: OrderId) -> Response:
    """The details, actions, history and alarms of `order_id`; `404` outside the scope."""
    order = await _order(request, user, order_id)
    if order is None:
        return Response("no such work order", status_code=HTTPStatus.NOT_FOUND)
    return render("orders_panel.html", page_context(request, user, order=order))


router: Final = APIRouter()
"""The board's and the order page's routes (pages redirect to sign-in; fragments answer `401`)."""
router.include_router(pages)
router.include_router(fragments)
