"""`POST /api/v1/ingest`: the HTTP intake, for gateways that cannot reach the broker.

The body is one envelope, the same JSON a gateway publishes on `steward/v1/<id>/up`, sent with
`Authorization: Bearer <the gateway's HTTP token>` (from `cloud-ingest gateways add`; a user's
token is not a gateway's). The gateway is found by the token's SHA-256 among `gateways.token_hash`.
The body is read in chunks and refused (`413`) as soon as it passes the envelope limit, whatever
`Content-Length` says. The message is then settled by the ingest service exactly as if it had come
on the gateway's own MQTT topic, so identity (the envelope's `gateway_id` must be the token's
gateway), validation, dead letters, counters and idempotency are the MQTT path's:

| outcome | answer |
| --- | --- |
| stored | `202 {"batch_id": ...}` |
| batch id seen before | `200 {"batch_id": ..., "duplicate": true}` |
| rejected | `422` problem with `reason` (kept as a dead letter) |
| storage failed | `503` problem with `Retry-After` (nothing kept; send again) |
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.permissions import database, unauthorized
from cloud_ingest.gateways.secrets import token_hash
from cloud_ingest.infra.schema import gateways
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.service import IngestService, Settled
from cloud_ingest.problems import problem

log = logging.getLogger(__name__)

router: Final = APIRouter()
RETRY_AFTER_S: Final = 5
"""What `Retry-After` asks of a gateway when the storage failed."""

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="GatewayToken",
    description="A gateway's HTTP token from `cloud-ingest gateways add` (not a user's token).",
)


class Accepted(BaseModel):
    """The envelope's batch is stored (`202`), or was stored before (`200`, `duplicate`)."""

    batch_id: str
    duplicate: bool = False


def _problem(
    status: int, detail: str, request: Request, headers: dict[str, str] | None = None, **extra: str
) -> JSONResponse:
    return problem(status, detail, instance=request.url.path, headers=headers, **extra)


def ingest_service(request: Request) -> IngestService:
    """The application's ingest service (set by the lifespan)."""
    service: IngestService | None = request.app.state.ingest
    if service is None:
        raise HTTPException(503, "the ingest service is not running")
    return service


async def authenticated_gateway(
    engine: Annotated[AsyncEngine, Depends(database)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The id of the gateway whose HTTP token the request bears; `401` otherwise."""
    if credentials is None:
        raise unauthorized("a bearer token is required: 'Authorization: Bearer <token>'")
    query = select(gateways.c.id).where(
        gateways.c.token_hash == token_hash(credentials.credentials)
    )
    async with engine.connect() as conn:
        gateway_id = (await conn.execute(query)).scalar_one_or_none()
    if gateway_id is None:
        raise unauthorized("the bearer token is not a gateway's HTTP token", "invalid_token")
    return str(gateway_id)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or `None` as soon as it passes `limit` bytes (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


@router.post(
    "/ingest",
    tags=["ingest"],
    summary="One envelope from a gateway (the MQTT `up` message over HTTP)",
    status_code=202,
    response_model=Accepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "An envelope (docs/envelope.md), as published on MQTT.",
        }
    },
    responses={
        200: {"model": Accepted, "description": "The batch was stored before; nothing stored"},
        401: {"description": "No gateway HTTP token"},
        413: {"description": "The body is larger than the envelope limit"},
        415: {"description": "The body is not `application/json`"},
        422: {"description": "The envelope was refused (`reason`) and dead-lettered"},
        503: {"description": "Storage failed: send again after `Retry-After` seconds"},
    },
)
async def ingest(
    request: Request,
    gateway_id: Annotated[str, Depends(authenticated_gateway)],
    service: Annotated[IngestService, Depends(ingest_service)],
) -> JSONResponse:
    """Settle the envelope as if the gateway had published it on its own `up` topic."""
    received_at = datetime.now(UTC)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return _problem(415, "the body must be an envelope sent as 'application/json'", request)
    payload = await _read_capped(request, service.max_bytes)
    if payload is None:
        detail = f"the envelope is larger than {service.max_bytes} bytes"
        return _problem(413, detail, request, reason="too_large")
    topic = f"steward/v1/{gateway_id}/up"
    try:
        (outcome,) = await service.settle([Incoming(topic, payload, received_at)])
    except Exception:
        log.exception("HTTP intake from %s: storage failed", gateway_id)
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        detail = "the envelope could not be stored now; send it again later"
        return _problem(503, detail, request, headers)
    if outcome.settled is Settled.REJECTED:
        return _problem(
            422, outcome.detail or "refused", request, reason=outcome.reason or "rejected"
        )
    batch_id = str(outcome.batch_id)
    if outcome.settled is Settled.DUPLICATE:
        return JSONResponse(Accepted(batch_id=batch_id, duplicate=True).model_dump(), 200)
    return JSONResponse(Accepted(batch_id=batch_id).model_dump(exclude_defaults=True), 202)
