"""Who reads the API: a user's role, company and area, as the permission dependency sees them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Role(StrEnum):
    """What a user does; each endpoint names the roles it admits."""

    OPERATOR = "operator"
    """Control-room staff: watch alarms and the registry of their company (without a company: a
    grid member or community worker watching every company of their area)."""
    SUPERVISOR = "supervisor"
    """Leads operators and technicians; also sees the dead letters of the company's gateways
    (without a company: a street or community officer overseeing every company of their area)."""
    TECHNICIAN = "technician"
    """Works on site: alarms and devices of their area."""
    RESIDENT = "resident"
    """Lives in a building: the alarms of their area only."""
    ADMIN = "admin"
    """Runs the installation: sees every company's rows."""


AREA_OFFICER_ROLES: Final = frozenset({Role.OPERATOR, Role.SUPERVISOR})
"""The roles a user without a company (an area officer of grid governance) may have."""


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated user: the rows they may see are those of `company` within `area`.

    A user without a company (other than an admin) is an *area officer*: a street officer, a
    community worker or a grid member. They see every company's rows within `area`, and none
    outside it; they read, and change nothing unless a route admits area officers explicitly.
    """

    name: str
    role: Role
    company: str
    """The property company (tenant) whose rows the user sees; empty for an area officer or an
    admin."""
    area: str
    """A site path prefix (`district/street`); empty for the whole company."""

    @property
    def sees_everything(self) -> bool:
        """Whether rows are shown unscoped (administrators)."""
        return self.role is Role.ADMIN

    @property
    def is_area_officer(self) -> bool:
        """Whether the user oversees every company within their area (no company, not admin)."""
        return not self.company and not self.sees_everything
