"""The registry API's models: gateways, devices, sites, dead-letter summaries and the edits."""

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
    plan_x: float | None = None
    plan_y: float | None = None
    """Where the device is on its compound's plan (both or neither)."""


class DeadLetterSummary(BaseModel):
    """A refused message: why, when and from which topic; the payload is not listed."""

    id: int
    received_at: IsoTime
    topic: str
    reason: str
    detail: str
    payload_size: int


class SiteOut(BaseModel):
    """A node of the site tree."""

    path: str
    """The "/"-joined segments from the district down."""
    parent: str | None
    """The path one level up; `null` for a district."""
    level: str
    """district, street, community, grid, compound, building or unit."""
    name: str
    company: str
    """The property company managing it; empty for a shared level (district to grid)."""
    plan: dict[str, Any] | None
    """Its rectangle on the parent's plan (`x`, `y`, `w`, `h`), if placed."""
    updated_at: IsoTime


class SiteDetail(SiteOut):
    """A node of the site tree and how many of its children the user sees."""

    children: int
