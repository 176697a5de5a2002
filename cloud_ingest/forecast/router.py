"""`GET /api/v1/devices/{id}/forecast`: a bin's time to full and a battery's days left.

The samples come from the app's `TelemetryReader` (the one `GET /api/v1/telemetry` reads: SQL,
InfluxDB or VictoriaMetrics), in buckets: `FILL_STEP` over the bin's lookback, `BATTERY_STEP`
over the battery's; each bucket's mean is one sample at the bucket's middle. The forecasts are
`cloud_ingest.forecast.model`'s, at the app's clock's `now`. A metric without a sample in its
lookback is `null` (a smoke detector has no fill level); a battery is read in percent where the
device reports it, else in volts. The device is scoped as `GET /api/v1/devices/{id}` scopes it:
outside the user's scope it is `404`, as an unknown one. A store that does not answer is `503`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Final

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.auth.scope import visible
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.forecast.model import (
    BATTERY_LOOKBACK,
    BIN_LOOKBACK,
    Forecast,
    Sample,
    battery_days_left,
    time_to_full,
)
from cloud_ingest.infra.schema import devices
from cloud_ingest.paging import IsoTime
from cloud_ingest.registry.roles import STAFF, Engine
from cloud_ingest.rows import one_or_404
from cloud_ingest.telemetry.query import Window
from cloud_ingest.telemetry.readers import SqlReader, TelemetryReader, TelemetryUnavailableError
from core.metrics import CATALOG, Metric

router: Final = APIRouter(tags=["devices"])

FILL_STEP: Final = timedelta(minutes=10)
"""The bucket of fill samples (72 over the 12 h a bin's forecast reads)."""
BATTERY_STEP: Final = timedelta(hours=6)
"""The bucket of battery samples (120 over the 30 days a battery's forecast reads)."""


class ForecastOut(BaseModel):
    """When a metric's trend reaches its target, and how well the samples support it."""

    metric: str
    unit: str
    status: str = Field(description="ok, reached, too_few_samples, not_rising or not_falling")
    target: float = Field(description="100 % for a bin; the spent level for a battery")
    eta: IsoTime | None = Field(description="when the trend reaches the target")
    hours_left: float | None
    days_left: float | None
    level: float | None = Field(description="the trend's value now")
    slope_per_hour: float | None
    samples_used: int = Field(description="samples fitted (after the last emptying/replacement)")
    since: IsoTime | None = Field(description="the first sample fitted")
    confidence: str = Field(description="high, medium, low or none")
    note: str


class DeviceForecast(BaseModel):
    """A device's forecasts at `at` (`null`: no samples of that metric recently)."""

    device: str
    at: IsoTime
    fill: ForecastOut | None = Field(description="a bin's time to full (fill_pct)")
    battery: ForecastOut | None = Field(description="days left (battery_pct, else battery_v)")


def _clock(request: Request) -> Clock:
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock or SystemClock()


def _out(forecast: Forecast) -> ForecastOut:
    return ForecastOut(
        metric=forecast.metric.value,
        unit=CATALOG[forecast.metric].unit,
        status=forecast.status.value,
        target=forecast.target,
        eta=forecast.eta,
        hours_left=forecast.hours_left,
        days_left=forecast.days_left,
        level=forecast.level,
        slope_per_hour=forecast.slope_per_hour,
        samples_used=forecast.samples_used,
        since=forecast.since,
        confidence=forecast.confidence.value,
        note=forecast.note,
    )


async def _samples(
    reader: TelemetryReader,
    device: str,
    metric: Metric,
    now: datetime,
    *,
    span: timedelta,
    step: timedelta,
) -> list[Sample]:
    """The bucket means of `metric` over the `span` before `now`, as samples at their middles."""
    step_s = int(step.total_seconds())
    epoch = int((now - span).timestamp())
    start = datetime.fromtimestamp(epoch - epoch % step_s, UTC)
    found = await reader.buckets(device, metric, Window(start, now, step_s))
    end = now.timestamp()
    return [Sample(min(b.start_s + step_s / 2, end), b.avg) for b in found]


@router.get(
    "/devices/{device_id}/forecast",
    dependencies=[require(*STAFF)],
    summary="A device's forecasts: a bin's time to full, a battery's days left",
    response_model=DeviceForecast,
    responses={
        404: {"description": "No such device in the user's scope"},
        503: {"description": "The telemetry store did not answer"},
    },
)
async def device_forecast(
    request: Request, engine: Engine, user: CurrentUser, device_id: str
) -> DeviceForecast:
    """Forecasts from the device's recent samples, fitted robustly (see the module docstring)."""
    t = devices.c
    scoped = select(t.id).where(
        t.id == device_id, visible(user, gateway_id=t.gateway_id, location=t.location)
    )
    async with engine.connect() as conn:
        await one_or_404(conn, scoped, f"no device {device_id!r}")
    reader: TelemetryReader = getattr(request.app.state, "telemetry_reader", None) or SqlReader(
        engine
    )
    now = _clock(request).now()
    try:
        fill, percent, volts = await asyncio.gather(
            _samples(reader, device_id, Metric.FILL_PCT, now, span=BIN_LOOKBACK, step=FILL_STEP),
            _samples(
                reader, device_id, Metric.BATTERY_PCT, now, span=BATTERY_LOOKBACK, step=BATTERY_STEP
            ),
            _samples(
                reader, device_id, Metric.BATTERY_V, now, span=BATTERY_LOOKBACK, step=BATTERY_STEP
            ),
        )
    except TelemetryUnavailableError as err:
        raise HTTPException(503, f"the telemetry store did not answer: {err}") from None
    battery = None
    if percent:
        battery = _out(battery_days_left(percent, now, metric=Metric.BATTERY_PCT))
    elif volts:
        battery = _out(battery_days_left(volts, now, metric=Metric.BATTERY_V))
    return DeviceForecast(
        device=device_id,
        at=now,
        fill=_out(time_to_full(fill, now)) if fill else None,
        battery=battery,
    )
