"""Row scoping, in one place: which rows the current user may see.

Every list and detail endpoint passes its query through these filters. A row belongs to a company
(directly, or through its gateway's `gateways.company`) and to an area through its location path.
A path is within an area when it equals the area or continues it with `/`; compared as text
prefixes (`substr`), not `LIKE`, so `_` and `%` in a path are plain characters.

| user | sees |
| --- | --- |
| admin | every row |
| company user (company, area) | the company's rows within the area (no area: the whole company) |
| area officer (no company, area) | every company's rows within the area; none outside it |

An area officer (a street officer, a community worker, a grid member) without an area sees
nothing. `visible` is the SQL filter and `user_sees` its Python twin, for rows already in memory
(the live stream); they agree on every row.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, func, literal, or_, select, true

from cloud_ingest.auth.models import User
from cloud_ingest.infra.schema import gateways


def normal_path(path: str) -> str:
    """`path` without surrounding slashes (`/d1/s1/` is `d1/s1`)."""
    return path.strip().strip("/")


def path_within(path: str, area: str) -> bool:
    """`path` is `area` or lies below it (whole segments); every path is within the empty area."""
    prefix = normal_path(area)
    return not prefix or path == prefix or path.startswith(prefix + "/")


def ancestors_of(path: str) -> list[str]:
    """Every path above `path`, widest first (`a/b/c` gives `a`, `a/b`)."""
    segments = normal_path(path).split("/") if normal_path(path) else []
    return ["/".join(segments[:n]) for n in range(1, len(segments))]


def within(location: ColumnElement[str], path: str) -> ColumnElement[bool]:
    """`location` is `path` or lies below it; every location is within the empty path."""
    prefix = normal_path(path)
    if not prefix:
        return true()
    below = prefix + "/"
    return or_(location == prefix, func.substr(location, 1, len(below)) == below)


def _officer_area(user: User, location: ColumnElement[str]) -> ColumnElement[bool]:
    """An area officer's filter: within their area; nothing at all without one."""
    return within(location, user.area) if normal_path(user.area) else false()


def of_company(gateway_id: ColumnElement[str], company: str) -> ColumnElement[bool]:
    """The row's gateway belongs to `company`."""
    owned = select(gateways.c.id).where(gateways.c.company == company)
    return gateway_id.in_(owned)


def visible(
    user: User,
    *,
    gateway_id: ColumnElement[str] | None = None,
    company: ColumnElement[str] | None = None,
    location: ColumnElement[str] | None = None,
) -> ColumnElement[bool]:
    """The filter for rows of a company at `location`, for `user`.

    The row's company is given as its `gateway_id` (the company of that gateway) or as a
    `company` column: exactly one of them. Rows without a location (`location` is `None`) are a
    gateway's: a company user sees their company's gateways, an area officer the gateways whose
    site is within their area (and no row of a bare `company` column: it names no place).
    """
    if gateway_id is not None and company is not None:
        raise ValueError("visible() takes one of gateway_id and company, not both")
    if user.sees_everything:
        return true()
    if company is not None:
        owned = company == user.company
    elif gateway_id is not None:
        owned = of_company(gateway_id, user.company)
    else:
        raise ValueError("visible() needs gateway_id or company")
    if user.is_area_officer:
        if location is not None:
            return _officer_area(user, location)
        if gateway_id is None:
            return false()
        sited = select(gateways.c.id).where(_officer_area(user, gateways.c.site))
        return gateway_id.in_(sited)
    return owned if location is None else and_(owned, within(location, user.area))


def user_sees(user: User, company: str, location: str) -> bool:
    """Whether `user` sees a row of `company` at `location`: `visible`, for rows in memory."""
    if user.sees_everything:
        return True
    if user.is_area_officer:
        return bool(normal_path(user.area)) and path_within(location, user.area)
    return company == user.company and path_within(location, user.area)


def site_visible(
    user: User, *, path: ColumnElement[str], company: ColumnElement[str]
) -> ColumnElement[bool]:
    """The sites `user` sees: their company's and shared ones within their area, and those above.

    Shared sites have no company (the district to grid levels, normally); an area officer sees
    every site within their area. The sites above the area are shown so the way down to it can be
    named.
    """
    if user.sees_everything:
        return true()
    area = normal_path(user.area)
    if user.is_area_officer:
        own = _officer_area(user, path)
    else:
        own = and_(company.in_([user.company, ""]), within(path, area))
    above = ancestors_of(area)
    return or_(own, path.in_(above)) if above else own


def topic_of_company(topic: ColumnElement[str], company: str) -> ColumnElement[bool]:
    """The MQTT `topic` (`steward/v1/<gateway>/...`) names a gateway of `company`.

    No company (an area officer's) names no gateway: dead letters belong to a company's staff.
    """
    if not company:
        return false()
    prefix = literal("steward/v1/") + gateways.c.id + literal("/")
    owned = select(gateways.c.id).where(
        gateways.c.company == company,
        func.substr(topic, 1, func.length(prefix)) == prefix,
    )
    return owned.exists()
