"""`GET /api/v1/gateways[/{id}]`, `GET /api/v1/devices[/{id}]` and `GET /api/v1/dead-letters`.

The router also holds the site tree (`registry.sites`) and the edits (`registry.edit`).

Gateways are scoped by the user's company; devices by company (through their gateway) and area
(their location path); dead letters, for supervisors and administrators only, by the company of
the gateway their topic names. Lists page by keyset on the id (dead letters newest first).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, Select, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.auth.scope import topic_of_company, visible, within
from cloud_ingest.infra.schema import dead_letters, devices, gateways
from cloud_ingest.paging import DEFAULT_LIMIT, After, Limit, Page, decode_cursor, encode_cursor
from cloud_ingest.registry import roles
from cloud_ingest.registry.edit import router as edit_router
from cloud_ingest.registry.roles import SUPERVISORS, Engine
from cloud_ingest.registry.schemas import DeadLetterSummary, DeviceOut, GatewayOut
from cloud_ingest.registry.sites import router as sites_router
from cloud_ingest.rows import one_or_404

router: Final = APIRouter()
STAFF: Final = roles.STAFF
"""Who reads the registry (also the telemetry)."""

_GATEWAY: Final = [c for c in gateways.c if c.name in GatewayOut.model_fields]
_DEVICE: Final = [c for c in devices.c if c.name in DeviceOut.model_fields]
_DEAD_LETTER: Final = [c for c in dead_letters.c if c.name in DeadLetterSummary.model_fields]


@router.get(
    "/gateways",
    tags=["gateways"],
    dependencies=[require(*STAFF)],
    summary="Gateways of the user's company, by id",
    response_model=Page[GatewayOut],
)
async def list_gateways(
    engine: Engine, user: CurrentUser, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> Page[GatewayOut]:
    """Gateways: status, last seen, version, company and site."""
    t = gateways.c
    query = select(*_GATEWAY).where(visible(user, gateway_id=t.id))
    return await _page_by_id(engine, query, t.id, GatewayOut, limit=limit, after=after)


@router.get(
    "/gateways/{gateway_id}",
    tags=["gateways"],
    dependencies=[require(*STAFF)],
    summary="One gateway",
    response_model=GatewayOut,
    responses={404: {"description": "No such gateway in the user's company"}},
)
async def get_gateway(engine: Engine, user: CurrentUser, gateway_id: str) -> GatewayOut:
    """The gateway `gateway_id`."""
    t = gateways.c
    query = select(*_GATEWAY).where(t.id == gateway_id, visible(user, gateway_id=t.id))
    async with engine.connect() as conn:
        row = await one_or_404(conn, query, f"no gateway {gateway_id!r}")
    return GatewayOut.model_validate(dict(row))


@router.get(
    "/devices",
    tags=["devices"],
    dependencies=[require(*STAFF)],
    summary="Devices of the user's company and area, by id",
    response_model=Page[DeviceOut],
)
async def list_devices(
    *,
    engine: Engine,
    user: CurrentUser,
    gateway: Annotated[str | None, Query(max_length=128, description="gateway id")] = None,
    kind: Annotated[str | None, Query(max_length=64, description="device kind")] = None,
    location: Annotated[
        str | None, Query(max_length=1024, description="a site path: this place and below")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[DeviceOut]:
    """Devices, filtered by gateway, kind and location."""
    t = devices.c
    query = select(*_DEVICE).where(visible(user, gateway_id=t.gateway_id, location=t.location))
    if gateway is not None:
        query = query.where(t.gateway_id == gateway)
    if kind is not None:
        query = query.where(t.kind == kind)
    if location is not None:
        query = query.where(within(t.location, location))
    return await _page_by_id(engine, query, t.id, DeviceOut, limit=limit, after=after)


@router.get(
    "/devices/{device_id}",
    tags=["devices"],
    dependencies=[require(*STAFF)],
    summary="One device",
    response_model=DeviceOut,
    responses={404: {"description": "No such device in the user's scope"}},
)
async def get_device(engine: Engine, user: CurrentUser, device_id: str) -> DeviceOut:
    """The device `device_id`."""
    t = devices.c
    query = select(*_DEVICE).where(
        t.id == device_id, visible(user, gateway_id=t.gateway_id, location=t.location)
    )
    async with engine.connect() as conn:
        row = await one_or_404(conn, query, f"no device {device_id!r}")
    return DeviceOut.model_validate(dict(row))


@router.get(
    "/dead-letters",
    tags=["dead letters"],
    dependencies=[require(*SUPERVISORS)],
    summary="Refused messages, newest first (without their payload)",
    response_model=Page[DeadLetterSummary],
)
async def list_dead_letters(
    engine: Engine,
    user: CurrentUser,
    reason: Annotated[str | None, Query(max_length=32, description="reason code")] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[DeadLetterSummary]:
    """Dead letters of the company's gateways (all of them for an administrator)."""
    t = dead_letters.c
    scope = true() if user.sees_everything else topic_of_company(t.topic, user.company)
    query = select(*_DEAD_LETTER).where(scope)
    if reason is not None:
        query = query.where(t.reason == reason)
    if after is not None:
        (last_id,) = decode_cursor(after, int)
        query = query.where(t.id < last_id)
    query = query.order_by(t.id.desc()).limit(limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    items = [DeadLetterSummary.model_validate(dict(row)) for row in rows[:limit]]
    cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[DeadLetterSummary](items=items, next=cursor)


_Row = TypeVar("_Row", GatewayOut, DeviceOut)


async def _page_by_id(
    engine: AsyncEngine,
    query: Select[Any],
    id_column: ColumnElement[str],
    model: type[_Row],
    *,
    limit: int,
    after: str | None,
) -> Page[_Row]:
    """One page of `query`'s rows in id order, after the cursor `after` (the last id shown)."""
    if after is not None:
        (last_id,) = decode_cursor(after, str)
        query = query.where(id_column > str(last_id))
    query = query.order_by(id_column).limit(limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    items = [model.model_validate(dict(row)) for row in rows[:limit]]
    cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[model](items=items, next=cursor)  # type: ignore[valid-type]


router.include_router(sites_router)
router.include_router(edit_router)
