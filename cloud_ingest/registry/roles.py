"""Who reads and who edits the registry, by role (`cloud_ingest.auth.models.Role`)."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role
from cloud_ingest.auth.permissions import database

STAFF: Final = (Role.OPERATOR, Role.SUPERVISOR, Role.TECHNICIAN, Role.ADMIN)
"""Who reads the registry: gateways, devices and sites."""
SUPERVISORS: Final = (Role.SUPERVISOR, Role.ADMIN)
"""Who reads the dead letters and edits gateways (only an administrator moves one to another
company)."""
DEVICE_EDITORS: Final = (Role.TECHNICIAN, Role.SUPERVISOR, Role.ADMIN)
"""Who edits devices: kind, location, labels, plan position (within their own area)."""

Engine = Annotated[AsyncEngine, Depends(database)]
"""The application's database, as a handler parameter."""
