"""`PATCH /api/v1/gateways/{id}` and `PATCH /api/v1/devices/{id}`: JSON merge patches (RFC 7396).

A field left out is kept; `null` clears it where that means something (a device's kind, location,
plan position, the whole labels mapping or one label; a gateway's site). `labels` merges key by key.
Unknown fields and bad values are a `422` problem.

Gateways are edited by supervisors and administrators (`site`); only an administrator moves one to
another `company`. Devices are edited by technicians, supervisors and administrators. A row outside
the user's scope is `404`; a user with an area may only put a device (or a gateway) inside that
area (`403` otherwise).
"""

from __future__ import annotations

import math
from typing import Any, Final

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.auth.scope import normal_path, visible
from cloud_ingest.gateways.ids import check_company
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import devices, gateways
from cloud_ingest.registry.checks import (
    check_kind,
    check_label,
    check_labels,
    check_path,
    is_within,
)
from cloud_ingest.registry.roles import DEVICE_EDITORS, SUPERVISORS, Engine
from cloud_ingest.registry.schemas import DeviceOut, GatewayOut
from cloud_ingest.rows import one_or_404

router: Final = APIRouter()

_GATEWAY: Final = [c for c in gateways.c if c.name in GatewayOut.model_fields]
_DEVICE: Final = [c for c in devices.c if c.name in DeviceOut.model_fields]


class GatewayPatch(BaseModel):
    """The gateway fields that may change: where it stands and (administrators) its company."""

    model_config = ConfigDict(extra="forbid", strict=True)

    site: str | None = Field(default=None, max_length=1024)
    """A site path; `null` or empty: not placed."""
    company: str | None = Field(default=None, max_length=128)
    """The operating company (administrators only; cannot be cleared)."""

    @field_validator("site")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        return None if value is None else check_path(value, allow_empty=True)

    @field_validator("company")
    @classmethod
    def _company(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("a gateway's company cannot be cleared")
        return check_company(value)


class DevicePatch(BaseModel):
    """The device fields that may change."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: str | None = None
    """One of the device kinds (`smoke`, `manhole`, `bin`, `perimeter`, ...); `null`: unknown."""
    location: str | None = Field(default=None, max_length=1024)
    """A site path of whole segments; `null` or empty: not placed."""
    labels: dict[str, str | None] | None = None
    """Merged key by key: a string sets a label, `null` removes it; `labels: null` removes all."""
    plan_x: float | None = None
    plan_y: float | None = None
    """Its place on the compound's plan: finite numbers, both or neither; `null` clears."""

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str | None) -> str | None:
        return None if value is None else check_kind(value)

    @field_validator("location")
    @classmethod
    def _location(cls, value: str | None) -> str | None:
        return None if value is None else check_path(value, allow_empty=True)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str | None] | None) -> dict[str, str | None] | None:
        if value is not None:
            for key, label in value.items():
                check_label(key, "" if label is None else label)
        return value

    @field_validator("plan_x", "plan_y")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("a plan coordinate must be a finite number")
        return value


def _outside(user: User, path: str) -> HTTPException | None:
    """A `403` if `user` has an area and `path` is not inside it."""
    area = normal_path(user.area)
    if user.sees_everything or is_within(path, area):
        return None
    return HTTPException(403, f"{path or 'no location'!r} is outside your area {area!r}")


async def _writing(engine: AsyncEngine) -> AsyncConnection:
    conn = await engine.connect()
    return await conn.execution_options(**{WRITE_TRANSACTION: True})


@router.patch(
    "/gateways/{gateway_id}",
    tags=["gateways"],
    dependencies=[require(*SUPERVISORS)],
    summary="Change a gateway's site (and, for administrators, its company)",
    response_model=GatewayOut,
    responses={
        403: {"description": "Not a supervisor or administrator, or the site is outside the area"},
        404: {"description": "No such gateway in the user's company"},
        422: {"description": "The body is not a valid merge patch"},
    },
)
async def patch_gateway(
    engine: Engine, user: CurrentUser, gateway_id: str, patch: GatewayPatch
) -> GatewayOut:
    """Apply a JSON merge patch to the gateway `gateway_id`."""
    given = patch.model_fields_set
    values: dict[str, Any] = {}
    if "site" in given:
        values["site"] = patch.site or ""
    if "company" in given:
        values["company"] = patch.company
    t = gateways.c
    conn = await _writing(engine)
    try:
        async with conn.begin():
            query = select(*_GATEWAY).where(t.id == gateway_id, visible(user, gateway_id=t.id))
            await one_or_404(conn, query.with_for_update(), f"no gateway {gateway_id!r}")
            if "company" in values and user.role is not Role.ADMIN:
                raise HTTPException(403, "only an administrator moves a gateway to a company")
            if "site" in values and (refused := _outside(user, values["site"])) is not None:
                raise refused
            if values:
                await conn.execute(update(gateways).where(t.id == gateway_id).values(**values))
            new = (await conn.execute(select(*_GATEWAY).where(t.id == gateway_id))).mappings()
            return GatewayOut.model_validate(dict(new.one()))
    finally:
        await conn.close()


def _device_values(patch: DevicePatch, old: dict[str, Any]) -> dict[str, Any]:
    """The columns `patch` changes, merged with the stored row `old`; `ValueError` if invalid."""
    given = patch.model_fields_set
    values: dict[str, Any] = {}
    if "kind" in given:
        values["kind"] = patch.kind or ""
    if "location" in given:
        values["location"] = patch.location or ""
    if "labels" in given:
        merged: dict[str, Any] = {} if patch.labels is None else dict(old["labels"] or {})
        for key, label in (patch.labels or {}).items():
            if label is None:
                merged.pop(key, None)
            else:
                merged[key] = label
        values["labels"] = check_labels(merged)
    for axis in ("plan_x", "plan_y"):
        if axis in given:
            values[axis] = getattr(patch, axis)
    x = values.get("plan_x", old["plan_x"])
    y = values.get("plan_y", old["plan_y"])
    if (x is None) != (y is None):
        raise ValueError("plan_x and plan_y are set together or cleared together")
    return values


@router.patch(
    "/devices/{device_id}",
    tags=["devices"],
    dependencies=[require(*DEVICE_EDITORS)],
    summary="Change a device's kind, location, labels or plan position",
    response_model=DeviceOut,
    responses={
        403: {"description": "Not allowed to edit devices, or the location is outside the area"},
        404: {"description": "No such device in the user's scope"},
        422: {"description": "The body is not a valid merge patch"},
    },
)
async def patch_device(
    engine: Engine, user: CurrentUser, device_id: str, patch: DevicePatch
) -> DeviceOut:
    """Apply a JSON merge patch to the device `device_id`."""
    t = devices.c
    scope = visible(user, gateway_id=t.gateway_id, location=t.location)
    conn = await _writing(engine)
    try:
        async with conn.begin():
            query = select(*_DEVICE).where(t.id == device_id, scope)
            row = await one_or_404(conn, query.with_for_update(), f"no device {device_id!r}")
            try:
                values = _device_values(patch, dict(row))
            except ValueError as err:
                raise HTTPException(422, str(err)) from None
            if "location" in values and (refused := _outside(user, values["location"])):
                raise refused
            if values:
                await conn.execute(update(devices).where(t.id == device_id).values(**values))
            new = (await conn.execute(select(*_DEVICE).where(t.id == device_id))).mappings()
            return DeviceOut.model_validate(dict(new.one()))
    finally:
        await conn.close()
