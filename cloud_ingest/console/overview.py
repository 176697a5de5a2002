"""One screen over the whole area (一屏观全域): the console page over `GET /api/v1/overview`.

The page shows one node of the site tree (default: the user's area) as a breadcrumb from the area
down to the node, the node's figures (open alarms by severity, gateways online and offline, open
work orders with their SLA breaches and escalations), today's figures, and a tile per child
(clicked: the page of that child), each with the same figures. Above grid level a table lists
every grid below the node with its orders; a compound's page shows its SVG plan
(`GET /api/v1/plans/{path}.svg`), which the page's script fetches, sanitises and inlines so a
device marker opens the device's page and a building opens its own overview.

The figures are rendered by the server from `overview.service`, as the API computes them, for the
first paint and as a fragment the script fetches again when the live stream reports an alarm, a
work order or a gateway (at most once every two seconds). The page and the fragment admit the
API's roles (staff, area officers included, not residents); a signed-in person of another role
gets a page saying so, with `403`.

| route | what |
| --- | --- |
| `GET /console/overview?site=PATH` | the page of the node `PATH` (none: the user's area) |
| `GET /console/overview/figures?site=PATH` | the figures, tiles and grids as an HTML fragment |
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from cloud_ingest.auth.models import User
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.auth.scope import normal_path
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.console.i18n import LANGUAGE_COOKIE, browser_texts, language_of
from cloud_ingest.console.pages import PREFIX, Engine, PageRoute, page_context, render
from cloud_ingest.infra.schema import sites
from cloud_ingest.overview import service
from cloud_ingest.overview.rollup import SEVERITIES
from cloud_ingest.overview.schemas import Figures, Overview
from cloud_ingest.registry.checks import check_path
from cloud_ingest.registry.roles import STAFF
from cloud_ingest.registry.sites import site_visible

PAGE_PATH: Final = f"{PREFIX}/overview"
FIGURES_PATH: Final = f"{PAGE_PATH}/figures"
PLAN_API: Final = "/api/v1/plans"
STREAM_API: Final = "/api/v1/stream"
DEVICE_PAGE: Final = f"{PREFIX}/devices"
REFRESH_MIN_S: Final = 2.0
"""The figures are fetched again at most this often while the stream reports changes."""
PLAN_LEVELS: Final = frozenset({"compound"})
"""The levels whose page shows the SVG plan (a compound's places its devices)."""
_BROWSER_TEXTS: Final = ("stream.", "overview.js.")


class OverviewRoute(PageRoute):
    """A page route whose `403` is a page in the user's language instead of a JSON error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The page's handler; a refusal becomes `overview_refused.html` with `403`."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as err:
                if err.status_code != HTTPStatus.FORBIDDEN:
                    raise
                return render(
                    "overview_refused.html", page_context(request, None), HTTPStatus.FORBIDDEN
                )

        return route


router: Final = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=OverviewRoute)
fragments: Final = APIRouter(prefix=PREFIX, include_in_schema=False)

SitePath = Annotated[
    str | None, Query(max_length=1024, description="a site path (default: the user's area)")
]


@dataclass(frozen=True, slots=True)
class Crumb:
    """One step of the breadcrumb: the node's path (empty: the user's area) and its name."""

    path: str
    name: str


def worst(figures: Figures) -> str:
    """The worst severity with an open alarm in `figures`; `none` without any."""
    counts = figures.alarms.model_dump()
    return next((name for name in SEVERITIES if counts[name] > 0), "none")


def page_href(path: str) -> str:
    """The address of the page of the node `path` (empty: the user's area)."""
    return f"{PAGE_PATH}?site={quote(path, safe='/')}" if path else PAGE_PATH


def on_time(rate: float | None) -> str:
    """An on-time rate as a whole percentage; a dash when nothing was closed."""
    return "—" if rate is None else f"{round(rate * 100)}%"


def _checked(site: str | None) -> str | None:
    if site is None or not site.strip("/"):
        return None
    try:
        return check_path(site)
    except ValueError as err:
        raise HTTPException(422, str(err)) from None


async def _load(
    request: Request, engine: Engine, user: User, site: str | None
) -> tuple[Overview, list[Crumb]]:
    """The overview of `site` for `user` and its breadcrumb; `404` outside the user's area."""
    clock: Clock = getattr(request.app.state, "clock", None) or SystemClock()
    zone = ZoneInfo(request.app.state.settings.work_order_timezone)
    path = _checked(site)
    try:
        found = await service.overview(engine, user, path, now=clock.now(), zone=zone)
    except service.NodeNotFoundError:
        raise HTTPException(404, f"no site {path!r} in your area") from None
    return found, await _crumbs(engine, user, found.node.path)


async def _crumbs(engine: Engine, user: User, node: str) -> list[Crumb]:
    """The steps from the user's area (first, empty path) down to `node`, named by the registry."""
    area = normal_path(user.area)
    parts = node.split("/") if node else []
    start = len(area.split("/")) if area else 0
    below = ["/".join(parts[:end]) for end in range(start + 1, len(parts) + 1)]
    names: dict[str, str] = {}
    wanted = [area, *below] if area else below
    if wanted:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(sites.c.path, sites.c.name).where(
                    sites.c.path.in_(wanted), site_visible(user)
                )
            )
            names = {str(r.path): str(r.name) for r in rows}
    crumbs = [Crumb("", names.get(area, ""))]
    crumbs += [Crumb(p, names.get(p) or p.rsplit("/", 1)[-1]) for p in below]
    return crumbs


def _context(
    request: Request, user: User, found: Overview, crumbs: list[Crumb]
) -> dict[str, object]:
    node = found.node
    plan = node.path if node.level in PLAN_LEVELS else None
    return page_context(
        request,
        user,
        ov=found,
        crumbs=crumbs,
        worst=worst,
        page_href=page_href,
        on_time=on_time,
        severities=SEVERITIES,
        plan_path=plan,
    )


@router.get(
    "/overview",
    dependencies=[require(*STAFF)],
    summary="One screen over the whole area",
    response_class=HTMLResponse,
)
async def overview_page(
    request: Request, engine: Engine, user: CurrentUser, site: SitePath = None
) -> Response:
    """The node's page: breadcrumb, figures, today's, child tiles, grids or the compound's plan."""
    found, crumbs = await _load(request, engine, user, site)
    context = _context(request, user, found, crumbs)
    language = language_of(request.cookies.get(LANGUAGE_COOKIE))
    node = found.node.path
    config = {
        "stream": STREAM_API,
        "figures": f"{FIGURES_PATH}?site={quote(node, safe='/')}" if node else FIGURES_PATH,
        "plan": f"{PLAN_API}/{quote(node, safe='/')}.svg" if context["plan_path"] else None,
        "site": node,
        "page": PAGE_PATH,
        "device": DEVICE_PAGE,
        "refreshMs": int(REFRESH_MIN_S * 1000),
        "lang": language,
        "timeZone": request.app.state.settings.work_order_timezone,
    }
    context["config"] = _json(config)
    context["texts"] = _json(browser_texts(language, _BROWSER_TEXTS))
    return render("overview.html", context)


@fragments.get(
    "/overview/figures",
    dependencies=[require(*STAFF)],
    summary="The overview's figures, tiles and grids (HTML)",
    response_class=HTMLResponse,
)
async def overview_figures(
    request: Request, engine: Engine, user: CurrentUser, site: SitePath = None
) -> Response:
    """The part of the page the stream refreshes, as the page renders it."""
    found, crumbs = await _load(request, engine, user, site)
    return render("overview_figures.html", _context(request, user, found, crumbs))


def _json(value: object) -> str:
    """`value` as JSON safe inside a `<script type="application/json">` element."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def overview_router() -> APIRouter:
    """The page and its fragment, to include in the console."""
    both = APIRouter()
    both.include_router(router)
    both.include_router(fragments)
    return both
