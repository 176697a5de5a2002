"""`GET /api/v1/telemetry`: a device's metric from the telemetry store, downsampled.

The buckets come from the app's `TelemetryReader` (`app.state.telemetry_reader`: the SQL
`readings` table by default, InfluxDB or VictoriaMetrics when the Influx store is configured;
see `cloud_ingest.telemetry.readers`). A store that does not answer is a `503` problem.

The device is scoped as `GET /api/v1/devices/{id}` scopes it (company through its gateway, area
through its location): a device outside the user's scope is `404`, as an unknown one. A bad
`from`, `to`, `step` or `metric`, or a window of more than `MAX_BUCKETS` buckets, is a `400`
problem.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.permissions import CurrentUser, database, require
from cloud_ingest.auth.scope import visible
from cloud_ingest.infra.schema import devices
from cloud_ingest.registry.router import STAFF
from cloud_ingest.telemetry.query import MAX_BUCKETS, WindowError, window
from cloud_ingest.telemetry.readers import SqlReader, TelemetryReader, TelemetryUnavailableError
from cloud_ingest.telemetry.schemas import Point, Series
from core.metrics import CATALOG, Metric, MetricKind

router: Final = APIRouter()

Engine = Annotated[AsyncEngine, Depends(database)]


@router.get(
    "/telemetry",
    tags=["telemetry"],
    dependencies=[require(*STAFF)],
    summary="A device's metric between two times, in buckets for a chart",
    response_model=Series,
    responses={
        400: {"description": f"Bad metric, from, to or step, or more than {MAX_BUCKETS} buckets"},
        404: {"description": "No such device in the user's scope"},
        503: {"description": "The telemetry store did not answer"},
    },
)
async def telemetry(
    *,
    request: Request,
    engine: Engine,
    user: CurrentUser,
    device: Annotated[str, Query(max_length=256, description="device id")],
    metric: Annotated[str, Query(max_length=64, description="a metric of the catalog")],
    from_: Annotated[
        str | None,
        Query(alias="from", max_length=64, description="ISO 8601 with offset; default: to - 24 h"),
    ] = None,
    to: Annotated[
        str | None, Query(max_length=64, description="ISO 8601 with offset; default: now")
    ] = None,
    step: Annotated[
        str | None,
        Query(max_length=32, description="bucket length (`5m`, `1h`); default: about 500 points"),
    ] = None,
) -> Series:
    """Buckets of `step` with avg/min/max/count (and the last value of a boolean metric)."""
    try:
        known = Metric(metric)
    except ValueError:
        raise HTTPException(400, f"unknown metric {metric!r}") from None
    try:
        span = window(from_, to, step, now=datetime.now(UTC))
    except WindowError as err:
        raise HTTPException(400, str(err)) from None
    t = devices.c
    scoped = select(t.id).where(
        t.id == device, visible(user, gateway_id=t.gateway_id, location=t.location)
    )
    async with engine.connect() as conn:
        if (await conn.execute(scoped)).first() is None:
            raise HTTPException(404, f"no device {device!r}")
    reader: TelemetryReader | None = getattr(request.app.state, "telemetry_reader", None)
    try:
        found = await (reader or SqlReader(engine)).buckets(device, known, span)
    except TelemetryUnavailableError as err:
        raise HTTPException(503, f"the telemetry store did not answer: {err}") from None
    spec = CATALOG[known]
    boolean = spec.kind is MetricKind.BOOLEAN
    points = [
        Point(
            t=datetime.fromtimestamp(b.start_s, UTC),
            avg=b.avg,
            min=b.min,
            max=b.max,
            count=b.count,
            last=bool(b.last) if boolean else None,
        )
        for b in found
    ]
    return Series.model_validate(
        {
            "device": device,
            "metric": known.value,
            "unit": spec.unit,
            "step_s": span.step_s,
            "from": span.start,
            "to": span.end,
            "points": points,
        }
    )
