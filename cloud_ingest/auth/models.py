"""Who reads the API: a user's role, company and area, as the permission dependency sees them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a user does; each endpoint names the roles it admits."""

    OPERATOR = "operator"
    """Control-room staff: watch alarms and the registry of their company."""
    SUPERVISOR = "supervisor"
    """Leads operators and technicians; also sees the dead letters of the company's gateways."""
    TECHNICIAN = "technician"
    """Works on site: alarms and devices of their area."""
    RESIDENT = "resident"
    """Lives in a building: the alarms of their area only."""
    ADMIN = "admin"
    """Runs the installation: sees every company's rows."""


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated user: the rows they may see are those of `company` within `area`."""

    name: str
    role: Role
    company: str
    area: str
    """A site path prefix (`district/street`); empty for the whole company."""

    @property
    def sees_everything(self) -> bool:
        """Whether rows are shown unscoped (administrators)."""
        return self.role is Role.ADMIN
