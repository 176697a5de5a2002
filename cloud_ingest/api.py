"""The API v1: every router under `/api/v1`.

Each read route is guarded by `auth.permissions.require` (user tokens); the HTTP intake
(`POST /api/v1/ingest`) takes a gateway's HTTP token instead.
"""

from __future__ import annotations

from fastapi import APIRouter

from cloud_ingest.alarms.router import router as alarms
from cloud_ingest.ingest.router import router as ingest
from cloud_ingest.registry.router import router as registry
from cloud_ingest.telemetry.router import router as telemetry


def api_router() -> APIRouter:
    """A router holding the whole API v1, to include in the application."""
    api = APIRouter(prefix="/api/v1")
    api.include_router(alarms)
    api.include_router(registry)
    api.include_router(telemetry)
    api.include_router(ingest)
    return api
