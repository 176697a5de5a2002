"""The API v1: every router under `/api/v1`, each route guarded by `auth.permissions.require`."""

from __future__ import annotations

from fastapi import APIRouter

from cloud_ingest.alarms.router import router as alarms
from cloud_ingest.registry.router import router as registry


def api_router() -> APIRouter:
    """A router holding the whole API v1, to include in the application."""
    api = APIRouter(prefix="/api/v1")
    api.include_router(alarms)
    api.include_router(registry)
    return api
