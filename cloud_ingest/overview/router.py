"""`GET /api/v1/overview?site=PATH` and `GET /api/v1/plans/{path}.svg`: one screen over the area.

The overview is of one node of the site tree (default: the caller's area; the root above the
districts for a user without one): its figures, each child's, each grid's below it (when it is
above grid level), what lies at the node itself, and today's figures in the local day of the work
orders (`Settings.work_order_timezone`). The plan is a site's SVG (`overview.plan_svg`), its
devices coloured by their worst open alarm.

Both read what the caller sees (`overview.service`): a company user their company's devices and
orders within their area, an area officer every company's within the area. A node outside the
caller's area, or unknown, is `404`; a malformed path is `422`. Staff read them (not residents).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.overview import plan_svg, service
from cloud_ingest.overview.schemas import Overview
from cloud_ingest.registry.checks import check_path
from cloud_ingest.registry.roles import STAFF, Engine

router: Final = APIRouter(tags=["overview"])

SVG_TYPE: Final = "image/svg+xml"
SVG_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}
"""A plan is live data, and an SVG opened on its own runs nothing and loads nothing."""


def overview_clock() -> Clock:
    """The clock of the overview's "now" (a dependency, so a test can set it)."""
    return SystemClock()


Now = Annotated[Clock, Depends(overview_clock)]


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.settings.work_order_timezone)


def _checked(path: str) -> str:
    """`path` as a checked site path; `422` when malformed."""
    try:
        return check_path(path)
    except ValueError as err:
        raise HTTPException(422, str(err)) from None


@router.get(
    "/overview",
    dependencies=[require(*STAFF)],
    summary="A node of the site tree with its children's and grids' roll-ups and today's figures",
    response_model=Overview,
    responses={
        404: {"description": "No such site within the user's area"},
        422: {"description": "A malformed site path"},
    },
)
async def get_overview(
    request: Request,
    engine: Engine,
    user: CurrentUser,
    clock: Now,
    site: Annotated[
        str | None,
        Query(max_length=1024, description="a site path (default: the user's area)"),
    ] = None,
) -> Overview:
    """Open alarms, devices by worst alarm, gateways, open orders, breaches and escalations."""
    path = None if site is None else _checked(site)
    now: datetime = clock.now()
    try:
        return await service.overview(engine, user, path, now=now, zone=_zone(request))
    except service.NodeNotFoundError:
        raise HTTPException(404, f"no site {path!r} in your area") from None


@router.get(
    "/plans/{path:path}.svg",
    dependencies=[require(*STAFF)],
    summary="A site's plan as SVG: its children's shapes and its devices by worst open alarm",
    response_class=Response,
    responses={
        200: {"content": {SVG_TYPE: {}}, "description": "The plan (`image/svg+xml`)"},
        404: {"description": "No such site within the user's area"},
        422: {"description": "A malformed site path"},
    },
)
async def get_plan(engine: Engine, user: CurrentUser, path: str) -> Response:
    """The plan of the site `path` (a compound's shows its devices)."""
    key = _checked(path)
    try:
        data = await service.plan_input(engine, user, key)
    except service.NodeNotFoundError:
        raise HTTPException(404, f"no site {key!r} in your area") from None
    return Response(plan_svg.render(data), media_type=SVG_TYPE, headers=SVG_HEADERS)
