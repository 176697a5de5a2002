"""The device page, `GET /console/devices/{id}`: who a device is, its open alarms, its telemetry.

The page is reached from links (an alarm's device, a plan's marker); it is not in the top bar.
It admits the roles of `GET /api/v1/devices/{id}` and scopes the device as that route does: a
device outside the user's company or area is `404`, as an unknown one.

The server renders the device's identity (kind, location, labels, first and last seen), its
gateway with its online status, and its open alarms (the live page's states, newest first,
each with the newest work order the user may see, linked to `/console/orders/{id}`). The charts
are drawn in the browser (`static/device.js`, Apache ECharts) from the API the page's roles may
call anyway: `GET /api/v1/telemetry` for each chart metric over the chosen range (`RANGES`), and
`GET /api/v1/devices/{id}/forecast` for a bin's time to full and a battery's days left, drawn as
a dashed line from the trend's level now to its target and said in words.

Silencing a device (with an expiry and a reason) waits for its API; the page offers no control
for it until then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.auth.models import User
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.auth.scope import visible
from cloud_ingest.console.i18n import LANGUAGE_COOKIE, browser_texts, language_of
from cloud_ingest.console.live import ACTIVE_STATES, Order
from cloud_ingest.console.pages import PREFIX, Engine, PageRoute, page_context, render
from cloud_ingest.infra.schema import (
    alarm_instances,
    devices,
    gateways,
    work_order_alarms,
    work_orders,
)
from cloud_ingest.registry.roles import STAFF
from cloud_ingest.work_orders.store import visible_orders
from core.metrics import CATALOG, Metric
from core.types import Severity

router: Final = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PageRoute)

RANGES: Final = {"6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 86_400}
"""The ranges a chart may show: name to seconds before now."""
DEFAULT_RANGE: Final = "24h"
CHARTS: Final = (
    (Metric.FILL_PCT,),
    (Metric.BATTERY_PCT, Metric.BATTERY_V),
    (Metric.TILT_DEG,),
    (Metric.TEMPERATURE_C,),
    (Metric.DISTANCE_MM,),
)
"""The charts, in page order: each the first of its metrics that has readings in the range."""
ALARMS_MAX: Final = 100
"""The page lists at most this many open alarms of the device."""
_BROWSER_TEXTS: Final = ("device.js.", "device.metric.", "device.forecast.", "device.range.")


@dataclass(frozen=True, slots=True)
class DeviceAlarm:
    """One open alarm of the device, with the newest work order the user may see."""

    fingerprint: str
    severity: str
    state: str
    description: str
    rule_id: str
    starts_at: datetime
    order: Order | None


def _json(value: object) -> str:
    """`value` as JSON that is safe inside a `<script type="application/json">` element."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def _rank(severity: str) -> int:
    try:
        return Severity(severity).rank
    except ValueError:
        return -1


async def _open_alarms(conn: AsyncConnection, user: User, device_id: str) -> list[DeviceAlarm]:
    """The device's active alarms the user sees: most severe first, then the newest."""
    t = alarm_instances.c
    query = (
        select(t.fingerprint, t.severity, t.state, t.description, t.rule_id, t.starts_at)
        .where(
            t.device_id == device_id,
            t.state.in_(ACTIVE_STATES),
            t.inhibited_by.is_(None),
            visible(user, gateway_id=t.gateway_id, location=t.location),
        )
        .order_by(t.starts_at.desc())
        .limit(ALARMS_MAX)
    )
    found = [dict(row) for row in (await conn.execute(query)).mappings()]
    a, w = work_order_alarms.c, work_orders.c
    orders: dict[str, Order] = {}
    if found:
        linked = (
            select(a.fingerprint, w.id, w.number, w.state, w.version, w.category)
            .select_from(work_order_alarms.join(work_orders, w.id == a.order_id))
            .where(a.fingerprint.in_([row["fingerprint"] for row in found]), visible_orders(user))
            .order_by(w.id)
        )
        for row in (await conn.execute(linked)).mappings():
            orders[row["fingerprint"]] = Order(
                id=int(row["id"]),
                number=row["number"],
                state=row["state"],
                version=int(row["version"]),
                category=row["category"],
            )
    alarms = [DeviceAlarm(**row, order=orders.get(row["fingerprint"])) for row in found]
    return sorted(alarms, key=lambda alarm: (-_rank(alarm.severity), -alarm.starts_at.timestamp()))


@router.get(
    "/devices/{device_id}",
    dependencies=[require(*STAFF)],
    summary="A device: identity, gateway, open alarms and telemetry charts",
    response_class=HTMLResponse,
)
async def device_page(
    request: Request,
    engine: Engine,
    user: CurrentUser,
    device_id: str,
    range_: Annotated[str | None, Query(alias="range", max_length=8)] = None,
) -> Response:
    """The device page; `404` for a device the user may not see."""
    t, g = devices.c, gateways.c
    query = (
        select(
            t.id,
            t.gateway_id,
            t.kind,
            t.location,
            t.labels,
            t.first_seen,
            t.last_seen,
            g.status.label("gateway_status"),
            g.last_seen.label("gateway_seen"),
            g.company,
        )
        .select_from(devices.join(gateways, g.id == t.gateway_id))
        .where(t.id == device_id, visible(user, gateway_id=t.gateway_id, location=t.location))
    )
    async with engine.connect() as conn:
        device = (await conn.execute(query)).mappings().first()
        if device is None:
            raise HTTPException(404, f"no device {device_id!r}")
        alarms = await _open_alarms(conn, user, device_id)
    chosen = range_ if range_ in RANGES else DEFAULT_RANGE
    language = language_of(request.cookies.get(LANGUAGE_COOKIE))
    config = {
        "device": device_id,
        "telemetry": "/api/v1/telemetry",
        "forecast": f"/api/v1/devices/{device_id}/forecast",
        "ranges": RANGES,
        "range": chosen,
        "charts": [[m.value for m in metrics] for metrics in CHARTS],
        "units": {m.value: CATALOG[m].unit for metrics in CHARTS for m in metrics},
        "lang": language,
        "timeZone": request.app.state.settings.work_order_timezone,
    }
    context = page_context(
        request,
        user,
        device=device,
        alarms=alarms,
        ranges=list(RANGES),
        range=chosen,
        charts=[metrics[0].value for metrics in CHARTS],
        now=datetime.now(UTC),
        config=_json(config),
        texts=_json(browser_texts(language, _BROWSER_TEXTS)),
    )
    return render("device.html", context)
