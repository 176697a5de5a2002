"""`GET /api/v1/sites` and `GET /api/v1/sites/{path}`: the site tree, scoped to the user.

A user sees the sites of their company and the shared ones (no company: the district, street,
community and grid levels, normally) within their area, and the sites above their area (so the
way down to it can be named); an administrator sees every site. A site out of sight is `404` like
an unknown one. The list pages by keyset on the path and filters by `parent` (its children; an
empty `parent` gives the districts) and `level`.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import ColumnElement, FromClause, func, select

from cloud_ingest.auth.models import User
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.auth.scope import normal_path
from cloud_ingest.auth.scope import site_visible as scope_site_visible
from cloud_ingest.infra.schema import sites
from cloud_ingest.paging import DEFAULT_LIMIT, After, Limit, Page, decode_cursor, encode_cursor
from cloud_ingest.registry.roles import STAFF, Engine
from cloud_ingest.registry.schemas import SiteDetail, SiteOut

router: Final = APIRouter()

_SITE: Final = [c for c in sites.c if c.name in SiteOut.model_fields]

Level = Literal["district", "street", "community", "grid", "compound", "building", "unit"]


def site_visible(user: User, table: FromClause = sites) -> ColumnElement[bool]:
    """The sites `user` sees: `auth.scope.site_visible` on the `sites` columns."""
    t = table.c
    return scope_site_visible(user, path=t.path, company=t.company)


@router.get(
    "/sites",
    tags=["sites"],
    dependencies=[require(*STAFF)],
    summary="The site tree, by path",
    response_model=Page[SiteOut],
)
async def list_sites(
    *,
    engine: Engine,
    user: CurrentUser,
    parent: Annotated[
        str | None,
        Query(max_length=1024, description="only this site's children (empty: the districts)"),
    ] = None,
    level: Annotated[Level | None, Query(description="only sites of this level")] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[SiteOut]:
    """Sites the user sees, in path order, filtered by parent and level."""
    t = sites.c
    query = select(*_SITE).where(site_visible(user))
    if parent is not None:
        above = normal_path(parent)
        query = query.where(t.parent == above if above else t.parent.is_(None))
    if level is not None:
        query = query.where(t.level == level)
    if after is not None:
        (last,) = decode_cursor(after, str)
        query = query.where(t.path > str(last))
    query = query.order_by(t.path).limit(limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    items = [SiteOut.model_validate(dict(row)) for row in rows[:limit]]
    cursor = encode_cursor(items[-1].path) if len(rows) > limit else None
    return Page[SiteOut](items=items, next=cursor)


@router.get(
    "/sites/{path:path}",
    tags=["sites"],
    dependencies=[require(*STAFF)],
    summary="One site and how many children the user sees",
    response_model=SiteDetail,
    responses={404: {"description": "No such site in the user's scope"}},
)
async def get_site(engine: Engine, user: CurrentUser, path: str) -> SiteDetail:
    """The site `path` (`district/street/...`; its slashes as they are or encoded)."""
    t = sites.c
    key = normal_path(path)
    child = sites.alias("child")
    children = (
        select(func.count())
        .select_from(child)
        .where(child.c.parent == key, site_visible(user, child))
        .scalar_subquery()
    )
    query = select(*_SITE, children.label("children")).where(t.path == key, site_visible(user))
    async with engine.connect() as conn:
        row = (await conn.execute(query)).mappings().one_or_none()
    if row is None:
        raise HTTPException(404, f"no site {key!r}")
    return SiteDetail.model_validate(dict(row))
