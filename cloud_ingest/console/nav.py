"""The console's navigation: one entry per page, shown to the roles that may open it.

Every page's top bar (`templates/_topbar.html`) lists the entries of `NAV` the signed-in user's
role may open, in order. A new page adds its entry here; its route must admit the same roles
(through `require(...)`), so what is shown is what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cloud_ingest.auth.models import Role, User
from cloud_ingest.kpis.router import READERS as KPI_READERS


@dataclass(frozen=True, slots=True)
class NavItem:
    """One page in the top bar: its id, address, text key and the roles that see it."""

    key: str
    href: str
    label: str
    roles: frozenset[Role]


_ALL: Final = frozenset(Role)
_FIELD: Final = frozenset({Role.TECHNICIAN, Role.SUPERVISOR, Role.ADMIN})
"""Who works on site (the technician's task view)."""

NAV: Final[tuple[NavItem, ...]] = (
    NavItem("alarms", "/console/alarms", "nav.alarms", _ALL),
    NavItem("overview", "/console/overview", "nav.overview", _ALL - {Role.RESIDENT}),
    NavItem("orders", "/console/orders", "nav.orders", _ALL - {Role.RESIDENT}),
    NavItem("kpis", "/console/kpis", "nav.kpis", frozenset(KPI_READERS)),
    NavItem("tasks", "/console/tasks", "nav.tasks", _FIELD),
    NavItem("requests", "/console/requests", "nav.requests", frozenset({Role.RESIDENT})),
)


def nav_for(user: User | None) -> list[NavItem]:
    """The entries `user` sees (none before sign-in)."""
    if user is None:
        return []
    return [item for item in NAV if user.role in item.roles]
