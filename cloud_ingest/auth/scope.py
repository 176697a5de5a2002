"""Row scoping, in one place: which rows of a list the current user may see.

Every list and detail endpoint passes its query through these filters: a row belongs to a company
through its gateway (`gateways.company`) and to an area through its location path. A path is
within an area when it equals the area or continues it with `/`; compared as text prefixes
(`substr`), not `LIKE`, so `_` and `%` in a path are plain characters. Administrators see all.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, true

from cloud_ingest.auth.models import User
from cloud_ingest.infra.schema import gateways


def normal_path(path: str) -> str:
    """`path` without surrounding slashes (`/d1/s1/` is `d1/s1`)."""
    return path.strip().strip("/")


def within(location: ColumnElement[str], path: str) -> ColumnElement[bool]:
    """`location` is `path` or lies below it; every location is within the empty path."""
    prefix = normal_path(path)
    if not prefix:
        return true()
    below = prefix + "/"
    return or_(location == prefix, func.substr(location, 1, len(below)) == below)


def of_company(gateway_id: ColumnElement[str], company: str) -> ColumnElement[bool]:
    """The row's gateway belongs to `company`."""
    owned = select(gateways.c.id).where(gateways.c.company == company)
    return gateway_id.in_(owned)


def visible(
    user: User, *, gateway_id: ColumnElement[str], location: ColumnElement[str] | None = None
) -> ColumnElement[bool]:
    """The filter for rows of `gateway_id` (and at `location`, when the rows have one)."""
    if user.sees_everything:
        return true()
    condition = of_company(gateway_id, user.company)
    if location is not None:
        condition = and_(condition, within(location, user.area))
    return condition


def topic_of_company(topic: ColumnElement[str], company: str) -> ColumnElement[bool]:
    """The MQTT `topic` (`steward/v1/<gateway>/...`) names a gateway of `company`."""
    prefix = literal("steward/v1/") + gateways.c.id + literal("/")
    owned = select(gateways.c.id).where(
        gateways.c.company == company,
        func.substr(topic, 1, func.length(prefix)) == prefix,
    )
    return owned.exists()
