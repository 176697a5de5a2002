"""The KPI page, `GET /console/kpis`: the work-order KPIs as charts, a table and a CSV link.

The page admits the roles of `GET /api/v1/kpis` and computes with the same service and the same
scoping (`cloud_ingest.kpis.service.Kpis`, the API's `kpi_service`): what the page shows is what
the API would answer the user. Its form is a plain `GET` of the page with

- `from`, `to`: local days (`YYYY-MM-DD`, in the work orders' time zone), both included; by
  default the 30 days up to today. They become the API's `from` (the first day's local midnight)
  and `to` (the midnight after the last day), with their offset.
- `by`: any of `category`, `grid`, `company`, `period` (repeated, as checkboxes send it); by
  default `period`. `shown=1` marks a submitted form, so that no box ticked means no grouping.
- `period`: `day`, `week` or `month`, used when grouping by period.

The server renders the totals of the range (the same query without grouping), the table (each
rate with its numerator and denominator) and the link to `GET /api/v1/kpis.csv` with the same
parameters; `static/kpis.js` draws the charts (Apache ECharts) from the report embedded in the
page, the same JSON `GET /api/v1/kpis` answers. A query the API would refuse (a range over a
year, `from` after `to`) shows the API's reason on the page with `422`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from http import HTTPStatus
from typing import Annotated, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.console.i18n import (
    LANGUAGE_COOKIE,
    Translate,
    browser_texts,
    language_of,
    translator,
)
from cloud_ingest.console.pages import PREFIX, PageRoute, page_context, render
from cloud_ingest.kpis.compute import Dimension, KpiQueryError, Period
from cloud_ingest.kpis.router import READERS, kpi_service
from cloud_ingest.kpis.schemas import KpiReport, KpiRowOut
from cloud_ingest.kpis.service import Kpis

router: Final = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PageRoute)

DEFAULT_DAYS: Final = 30
"""The range shown without a `from`: the 30 days up to and including `to` (default today)."""
DEFAULT_BY: Final = (Dimension.PERIOD.value,)
RATES: Final = (
    "acceptance",
    "dispatch",
    "handling",
    "verification",
    "closure",
    "rework",
    "satisfaction",
    "follow_up",
)
"""The rates shown, in order: the on-time stages, closure, then the order-level rates."""
LOWER_IS_BETTER: Final = frozenset({"rework"})
CSV_PATH: Final = "/api/v1/kpis.csv"
API_PATH: Final = "/api/v1/kpis"
_BROWSER_TEXTS: Final = ("kpis.rate.", "kpis.js.", "kpis.time.")

Service = Annotated[Kpis, Depends(kpi_service)]


def _json(value: object) -> str:
    """`value` as JSON that is safe inside a `<script type="application/json">` element."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def _day(text: str | None) -> date | None:
    """A `YYYY-MM-DD` day, or None when absent or malformed."""
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _midnight(day: date, zone: ZoneInfo) -> str:
    """The local midnight starting `day`, as ISO 8601 with its offset."""
    return datetime.combine(day, time(), zone).isoformat()


def duration_text(t: Translate) -> Callable[[float | None], str]:
    """Seconds in words for the table and tiles: seconds, minutes under two hours, hours, days."""

    def shown(seconds: float | None) -> str:
        if seconds is None:
            return "—"
        if seconds < 60:  # noqa: PLR2004 - a minute
            return t("kpis.time.seconds").replace("{n}", f"{seconds:.0f}")
        minutes = seconds / 60
        if minutes < 120:  # noqa: PLR2004 - two hours
            return t("kpis.time.minutes").replace("{n}", f"{minutes:.0f}")
        hours = minutes / 60
        if hours < 72:  # noqa: PLR2004 - three days
            return t("kpis.time.hours").replace("{n}", f"{hours:.1f}")
        return t("kpis.time.days").replace("{n}", f"{hours / 24:.1f}")

    return shown


def percent(rate: float | None) -> str:
    """A rate as a percentage with one decimal, or a dash when it has no denominator."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


@router.get(
    "/kpis",
    dependencies=[require(*READERS)],
    summary="Work-order KPIs: charts, a table and the CSV export",
    response_class=HTMLResponse,
)
async def kpis_page(
    *,
    request: Request,
    service: Service,
    user: CurrentUser,
    from_: Annotated[str | None, Query(alias="from", max_length=32)] = None,
    to: Annotated[str | None, Query(max_length=32)] = None,
    by: Annotated[list[str] | None, Query(max_length=16)] = None,
    period: Annotated[str | None, Query(max_length=16)] = None,
    shown: Annotated[str | None, Query(max_length=4)] = None,
) -> Response:
    """The KPIs of the user's orders in the chosen days, grouped as chosen."""
    zone = ZoneInfo(service.timezone)
    today = datetime.now(zone).date()
    last = _day(to) or today
    first = _day(from_) or last - timedelta(days=DEFAULT_DAYS - 1)
    dimensions = [d.value for d in Dimension if d.value in (by or [])]
    if not shown and not by:
        dimensions = list(DEFAULT_BY)
    length = period if period in {p.value for p in Period} else Period.DAY.value
    params: dict[str, str] = {
        "from": _midnight(first, zone),
        "to": _midnight(last + timedelta(days=1), zone),
    }
    if dimensions:
        params["by"] = ",".join(dimensions)
    if Dimension.PERIOD.value in dimensions:
        params["period"] = length
    language = language_of(request.cookies.get(LANGUAGE_COOKIE))
    form = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "by": dimensions,
        "period": length,
    }
    common = {
        "form": form,
        "dimensions": [d.value for d in Dimension],
        "periods": [p.value for p in Period],
        "rates": RATES,
        "lower_is_better": LOWER_IS_BETTER,
        "percent": percent,
        "duration": duration_text(translator(language)),
        "group_label": group_label,
        "texts": _json(browser_texts(language, _BROWSER_TEXTS)),
        "csv_url": f"{CSV_PATH}?{urlencode(params)}",
        "api_url": f"{API_PATH}?{urlencode(params)}",
    }
    try:
        query = service.query(
            start=params["from"], end=params["to"], by=params.get("by"), period=params.get("period")
        )
    except KpiQueryError as err:
        context = page_context(
            request, user, **common, error=str(err), report=None, totals=None, data="null"
        )
        return render("kpis.html", context, HTTPStatus.UNPROCESSABLE_ENTITY)
    rows = await service.report(user, query)
    report = KpiReport.of(query, rows)
    if query.by:
        ungrouped = dataclasses.replace(query, by=())
        totals = KpiReport.of(ungrouped, await service.report(user, ungrouped)).rows
    else:
        totals = report.rows
    total = totals[0] if totals else None
    data = {
        "report": report.model_dump(mode="json", by_alias=True),
        "rates": RATES,
        "lang": language,
    }
    context = page_context(
        request,
        user,
        **common,
        error=None,
        report=report,
        totals=total,
        data=_json(data),
    )
    return render("kpis.html", context)


def group_label(row: KpiRowOut, by: list[str]) -> str:
    """The name of a row's group: its values of the dimensions grouped by, joined."""
    parts = [getattr(row, name) for name in by]
    return " · ".join(str(part) if part else "—" for part in parts) or "—"
