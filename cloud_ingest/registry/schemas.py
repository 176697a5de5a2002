"""The registry API's response models: gateways, devices and dead-letter summaries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cloud_ingest.paging import IsoTime


class GatewayOut(BaseModel):
    """A gateway: who operates it, where it stands, and what it last reported."""

    id: str
    company: str
    site: str
    status: str
    """`online`, `offline` (its status or last will), or `unknown` (never reported)."""
    last_seen: IsoTime | None
    version: str | None
    created_at: IsoTime


class DeviceOut(BaseModel):
    """A device: registered on first sight, under the gateway that reported it."""

    id: str
    gateway_id: str
    kind: str
    location: str
    labels: dict[str, Any]
    first_seen: IsoTime
    last_seen: IsoTime


class DeadLetterSummary(BaseModel):
    """A refused message: why, when and from which topic; the payload is not listed."""

    id: int
    received_at: IsoTime
    topic: str
    reason: str
    detail: str
    payload_size: int
