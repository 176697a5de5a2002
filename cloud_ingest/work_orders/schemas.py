"""The JSON shapes of `/api/v1/work-orders` and `/api/v1/requests`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cloud_ingest.paging import IsoTime

PhotoHash = Annotated[str, Field(min_length=1, max_length=128, description="a photo's hash")]
Photos = Annotated[list[PhotoHash], Field(max_length=20, description="photo hashes (evidence)")]


class WorkOrderOut(BaseModel):
    """A work order as lists show it."""

    id: int
    number: str = Field(description="what people quote: WO-YYYYMMDD-NNNN (local day)")
    source: str = Field(description="alarm, resident, hotline_12345 or inspector")
    category: str
    priority: str = Field(description="P1 (most urgent) .. P4")
    state: str
    company: str
    location: str = Field(description="site path")
    title: str
    description: str
    fingerprint: str | None = Field(description="the alarm that opened it")
    external_ref: str | None = Field(description="the 12345 hotline's reference")
    external_deadline: IsoTime | None
    requester: str | None = Field(description="the resident who asked")
    assignee: str | None = Field(description="the technician dispatched")
    handler: str | None = Field(description="who submitted the result")
    verifier: str | None
    rating: int | None
    rework_count: int
    escalation_level: int = Field(description="0 grid, 1 community, 2 street, 3 district")
    version: int = Field(description="the number of events; send as `expected_version`")
    created_at: IsoTime
    updated_at: IsoTime
    last_alarm_at: IsoTime | None
    accepted_at: IsoTime | None
    dispatched_at: IsoTime | None
    started_at: IsoTime | None
    submitted_at: IsoTime | None
    closed_at: IsoTime | None
    due_at: IsoTime | None = Field(description="when the current SLA stage falls due")
    allowed_actions: list[str] = Field(
        default_factory=list, description="the actions the caller may take now"
    )


class WorkOrderEventOut(BaseModel):
    """One append-only event of an order."""

    seq: int
    action: str
    from_state: str | None
    to_state: str
    actor: str
    role: str
    at: IsoTime
    reason: str | None
    evidence: dict[str, object]
    data: dict[str, object]


class AttachedAlarmOut(BaseModel):
    """An alarm instance attached to an order, with its latest attached state."""

    fingerprint: str
    first_seq: int
    last_seq: int
    state: str
    updated_at: IsoTime


class WorkOrderDetail(WorkOrderOut):
    """An order with its events (oldest first) and attached alarms."""

    events: list[WorkOrderEventOut]
    alarms: list[AttachedAlarmOut]


class ActionIn(BaseModel):
    """`POST /work-orders/{id}/actions`: one action and its fields."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(min_length=1, max_length=32, examples=["accept", "dispatch", "verify"])
    reason: str | None = Field(None, max_length=2048, description="cancel, hold, reject, ...")
    assignee: str | None = Field(
        None, max_length=128, description="dispatch: the technician (none: assigned by the roster)"
    )
    team: int | None = Field(
        None, ge=1, le=2**63 - 1, description="dispatch: assign within this team (by the roster)"
    )
    result: str | None = Field(None, max_length=4096, description="submit: what was done")
    comment: str | None = Field(None, max_length=4096)
    rating: int | None = Field(
        None, ge=1, le=5, description="rate: 1..5 (2 or less sends it to rework)"
    )
    photos: Photos = Field(default_factory=list)
    expected_version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="refuse (412) unless the order is at this version"
    )


class RequestIn(BaseModel):
    """`POST /requests`: a repair request, a 12345 complaint or an inspector's report."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["resident", "hotline_12345", "inspector"] = "resident"
    text: str = Field(min_length=1, max_length=4096, description="the problem, in words")
    title: str | None = Field(None, max_length=256)
    location: str = Field(
        "", max_length=1024, description="site path (a resident's default: their area)"
    )
    category: str = Field("general", min_length=1, max_length=64)
    photos: Photos = Field(default_factory=list)
    priority: str | None = Field(
        None, max_length=8, description="P1..P4 or urgent/high/normal/low (not for residents)"
    )
    external_ref: str | None = Field(
        None, min_length=1, max_length=128, description="the 12345 hotline's reference"
    )
    external_deadline: AwareDatetime | None = Field(None, description="the hotline's deadline")
    company: str | None = Field(None, max_length=128, description="admins only: the company")
