"""The alarm API's response models: a summary per instance for lists, the detail with events."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from cloud_ingest.paging import IsoTime


class AlarmSummary(BaseModel):
    """One alarm instance (one fingerprint) in a list: its current state, without its events."""

    fingerprint: str
    state: str
    severity: str
    stale: bool
    """Active (FIRING, NO_DATA, ...), but its `valid_until` (plus a grace) passed without a
    re-send."""
    inhibited_by: str | None
    """The fingerprint of the alarm that inhibits it (a NO_DATA alarm of a device whose gateway
    was offline: `gateway/<id>/offline`); an inhibited instance opens no work."""
    location: str
    device_id: str
    gateway_id: str
    rule_id: str
    description: str
    starts_at: IsoTime
    first_event_at: IsoTime
    last_event_at: IsoTime
    last_seq: int
    valid_until: IsoTime | None
    acknowledged: bool = False
    """Someone acknowledged the current episode (`POST /alarms/{fingerprint}/actions`)."""
    acked_by: str | None = None
    acked_at: IsoTime | None = None


class AlarmEventOut(BaseModel):
    """One stored alarm event of an instance."""

    seq: int
    state: str
    severity: str
    at: IsoTime
    starts_at: IsoTime
    valid_until: IsoTime | None
    value: float | None
    value_bool: bool | None
    description: str
    evidence: dict[str, Any]
    suppressed: list[Any]
    rule_version: str
    batch_id: UUID
    received_at: IsoTime


class AlarmNoteOut(BaseModel):
    """An acknowledgement or comment by a person."""

    kind: str
    actor: str
    role: str
    at: IsoTime
    text: str
    episode: IsoTime
    """The `starts_at` of the episode it was said about."""


class AlarmDetail(AlarmSummary):
    """One alarm instance with its work order reference, every event in `seq` order, its notes."""

    work_order: dict[str, Any] | None
    events: list[AlarmEventOut]
    notes: list[AlarmNoteOut] = []


class AlarmActionIn(BaseModel):
    """`POST /alarms/{fingerprint}/actions`: acknowledge (with an optional comment) or comment."""

    action: Literal["ack", "comment"]
    comment: str | None = Field(None, max_length=2048)
