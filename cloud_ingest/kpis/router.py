"""`GET /api/v1/kpis` (JSON) and `GET /api/v1/kpis.csv` (a spreadsheet): work-order KPIs.

Both take the same parameters: `from` and `to` (ISO 8601 with an offset; default the 30 days
before now), `by` (a comma list of `category`, `grid`, `company`, `period`) and `period` (`day`,
`week` or `month`, in the local time zone of the work orders, `Settings.work_order_timezone`).
A bad value, a `from` not before `to` or a range over `compute.MAX_RANGE` is a `422` problem.

Operators, supervisors and administrators read KPIs, each of the orders they may see
(`cloud_ingest.kpis.service`): a company its own, a street officer every company's in the street.
What each figure means is defined in `cloud_ingest.kpis.compute`; the CSV columns in
`cloud_ingest.kpis.export` (UTF-8 with a byte-order mark, so Excel shows Chinese names).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from cloud_ingest.auth.models import Role
from cloud_ingest.auth.permissions import CurrentUser, database, require
from cloud_ingest.kpis.compute import MAX_RANGE, KpiQuery, KpiQueryError
from cloud_ingest.kpis.export import to_csv
from cloud_ingest.kpis.schemas import KpiReport
from cloud_ingest.kpis.service import Kpis

router: Final = APIRouter(tags=["kpis"])

READERS: Final = (Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)
"""Who reads KPIs (area officers included: they read)."""
CSV_TYPE: Final = "text/csv; charset=utf-8"
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    422: {
        "description": f"A bad from, to, by or period, or a range over {MAX_RANGE.days} days",
    },
}


def kpi_service(request: Request) -> Kpis:
    """The KPIs on the application's database, periods in the work orders' time zone."""
    return Kpis(database(request), timezone=request.app.state.settings.work_order_timezone)


Service = Annotated[Kpis, Depends(kpi_service)]


def kpi_query(
    service: Service,
    from_: Annotated[
        str | None,
        Query(alias="from", max_length=64, description="ISO 8601 with offset; default: to - 30 d"),
    ] = None,
    to: Annotated[
        str | None, Query(max_length=64, description="ISO 8601 with offset; default: now")
    ] = None,
    by: Annotated[
        str | None,
        Query(max_length=64, description="a comma list of category, grid, company, period"),
    ] = None,
    period: Annotated[
        Literal["day", "week", "month"] | None,
        Query(description="the length of a period (local time); implies by=period; default day"),
    ] = None,
) -> KpiQuery:
    """The query of the request's parameters; `422` when one is bad."""
    try:
        return service.query(start=from_, end=to, by=by, period=period)
    except KpiQueryError as err:
        raise HTTPException(422, str(err)) from None


Kpi = Annotated[KpiQuery, Depends(kpi_query)]


@router.get(
    "/kpis",
    dependencies=[require(*READERS)],
    summary="Work-order KPIs: on-time rates per stage, closure, rework, satisfaction, MTTA, MTTR",
    response_model=KpiReport,
    responses=_ERRORS,
)
async def kpis(service: Service, user: CurrentUser, query: Kpi) -> KpiReport:
    """The KPI rows of the caller's orders in the range, grouped as asked."""
    return KpiReport.of(query, await service.report(user, query))


@router.get(
    "/kpis.csv",
    dependencies=[require(*READERS)],
    summary="The same KPIs as a CSV file (UTF-8 with BOM, for Excel)",
    response_class=Response,
    responses={
        200: {
            "description": "One row per group, the columns of `cloud_ingest.kpis.export`",
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "headers": {
                "Content-Disposition": {
                    "description": "attachment; filename=kpis-<from>-<to>.csv (local days)",
                    "schema": {"type": "string"},
                }
            },
        },
        **_ERRORS,
    },
)
async def kpis_csv(service: Service, user: CurrentUser, query: Kpi) -> Response:
    """The KPI rows as a CSV attachment."""
    rows = await service.report(user, query)
    zone = query.zone
    first = query.start.astimezone(zone).strftime("%Y%m%d")
    last = query.end.astimezone(zone).strftime("%Y%m%d")
    filename = f"kpis-{first}-{last}.csv"
    return Response(
        to_csv(rows).encode("utf-8"),
        media_type=CSV_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
