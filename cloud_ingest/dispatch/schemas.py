"""The JSON shapes of `/api/v1/teams`, `/technicians`, `/rosters`, `/equipment` and `/pool`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from cloud_ingest.paging import IsoTime
from cloud_ingest.registry.checks import check_path

Name = Annotated[str, Field(min_length=1, max_length=128)]
Category = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
Categories = Annotated[list[Category], Field(max_length=64)]
Company = Annotated[
    str | None, Field(None, min_length=1, max_length=128, description="administrators only")
]
CATEGORIES_DOC = "order categories handled (empty: every category)"


def _area(value: str) -> str:
    return check_path(value, allow_empty=True)


Area = Annotated[str, Field(max_length=1024), AfterValidator(_area)]
"""A site path of whole segments (empty: the whole company)."""


class TeamIn(BaseModel):
    """`POST /teams`: a team of a property company covering a grid."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    area: Area = Field("", description="the site path it covers (its grid)")
    categories: Categories = Field(default_factory=list, description=CATEGORIES_DOC)
    active: bool = True
    company: Company = None


class TeamPatch(BaseModel):
    """`PATCH /teams/{id}`: the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    area: Area | None = None
    categories: Categories | None = None
    active: bool | None = None


class TeamOut(BaseModel):
    """A team."""

    id: int
    company: str
    name: str
    area: str = Field(description="the site path it covers; empty: the whole company")
    categories: list[str] = Field(description=CATEGORIES_DOC)
    active: bool
    created_at: IsoTime
    updated_at: IsoTime


class TechnicianIn(BaseModel):
    """`POST /technicians`: register an existing user of role technician in a team."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="the user's name")
    team_id: int = Field(ge=1, le=2**63 - 1)
    skills: Categories = Field(
        default_factory=list, description="categories handled (empty: whatever the team handles)"
    )
    active: bool = True


class TechnicianPatch(BaseModel):
    """`PATCH /technicians/{name}`: the fields given change."""

    model_config = ConfigDict(extra="forbid")

    team_id: int | None = Field(None, ge=1, le=2**63 - 1)
    skills: Categories | None = None
    active: bool | None = None


class TechnicianOut(BaseModel):
    """A registered technician and how many orders they hold now."""

    name: str
    company: str
    team_id: int
    skills: list[str]
    active: bool
    open_load: int = Field(0, description="orders dispatched to them and not yet submitted")
    created_at: IsoTime
    updated_at: IsoTime


class ShiftIn(BaseModel):
    """One on-duty shift of a technician."""

    model_config = ConfigDict(extra="forbid")

    technician: Name
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    note: str = Field("", max_length=256)


class ShiftsIn(BaseModel):
    """`POST /rosters`: shifts to add, all or none."""

    model_config = ConfigDict(extra="forbid")

    shifts: list[ShiftIn] = Field(min_length=1, max_length=500)


class ShiftOut(BaseModel):
    """A shift of the roster."""

    id: int
    company: str
    technician: str
    starts_at: IsoTime
    ends_at: IsoTime
    note: str
    created_at: IsoTime


class EquipmentIn(BaseModel):
    """`POST /equipment`: a piece of equipment the company may lend."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: str = Field(min_length=1, max_length=64, examples=["pump", "generator"])
    note: str = Field("", max_length=1024)
    active: bool = True
    company: Company = None


class EquipmentOut(BaseModel):
    """A piece of equipment."""

    id: int
    company: str
    name: str
    kind: str
    note: str
    active: bool
    created_at: IsoTime


class LoanIn(BaseModel):
    """`POST /pool`: ask another company to lend a technician or a piece of equipment."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["technician", "equipment"]
    lender: Name = Field(description="the company that lends")
    technician: Name | None = Field(None, description="kind technician: the user's name")
    equipment_id: int | None = Field(None, ge=1, le=2**63 - 1, description="kind equipment")
    order_id: int | None = Field(
        None, ge=1, le=2**63 - 1, description="the borrower's order (none: any, until returned)"
    )
    note: str = Field("", max_length=2048, description="why")
    borrower: Company = None


class LoanActionIn(BaseModel):
    """`POST /pool/{id}/actions`: approve, reject (with a reason), return or cancel."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(min_length=1, max_length=16, examples=["approve", "reject", "return"])
    reason: str | None = Field(None, max_length=2048)
    expected_version: int | None = Field(None, ge=1, le=2**31 - 1)


class LoanOut(BaseModel):
    """A loan of the shared pool."""

    id: int
    kind: str
    lender: str
    borrower: str
    technician: str | None
    equipment_id: int | None
    order_id: int | None
    state: str = Field(description="REQUESTED, APPROVED, REJECTED, RETURNED or CANCELLED")
    note: str
    requested_by: str
    requested_at: IsoTime
    decided_by: str | None
    decided_at: IsoTime | None
    reason: str | None = Field(description="why it was rejected")
    returned_by: str | None
    returned_at: IsoTime | None
    version: int
    allowed_actions: list[str] = Field(default_factory=list)
