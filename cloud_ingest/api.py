"""The API v1: every router under `/api/v1`.

Each read route is guarded by `auth.permissions.require` (user tokens); the HTTP intake
(`POST /api/v1/ingest`) takes a gateway's HTTP token instead.
"""

from __future__ import annotations

from fastapi import APIRouter

from cloud_ingest.alarms.router import router as alarms
from cloud_ingest.dispatch.router import router as dispatch
from cloud_ingest.forecast.router import router as forecast
from cloud_ingest.ingest.router import router as ingest
from cloud_ingest.kpis.router import router as kpis
from cloud_ingest.notify.router import router as notifications
from cloud_ingest.overview.router import router as overview
from cloud_ingest.photos.router import router as photos
from cloud_ingest.registry.router import router as registry
from cloud_ingest.stream.router import router as stream
from cloud_ingest.telemetry.router import router as telemetry
from cloud_ingest.work_orders.router import router as work_orders


def api_router() -> APIRouter:
    """A router holding the whole API v1, to include in the application."""
    api = APIRouter(prefix="/api/v1")
    api.include_router(alarms)
    api.include_router(registry)
    api.include_router(telemetry)
    api.include_router(ingest)
    api.include_router(work_orders)
    api.include_router(dispatch)
    api.include_router(notifications)
    api.include_router(stream)
    api.include_router(kpis)
    api.include_router(photos)
    api.include_router(forecast)
    api.include_router(overview)
    return api
