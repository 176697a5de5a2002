"""KPI rows as CSV for a spreadsheet (pure): UTF-8 with a byte-order mark, one row per group.

Excel takes a CSV file without a byte-order mark for the local ANSI code page and garbles Chinese
category, company and grid names; with the mark (U+FEFF) it reads UTF-8. Lines end in CRLF, as
RFC 4180 and Excel expect.

The columns are those of the JSON rows, flattened: the group (`category`, `grid`, `company`,
`period`, `period_start`, `period_end`; empty when not grouped by), the counts, then per rate
`<name>_numerator`, `<name>_denominator` and `<name>_rate` (a ratio from 0 to 1 with 4 decimals,
empty when the denominator is 0), a stage's `<stage>_overdue_open`, `mean_rating`, and the
seconds of `mtta_s` and `mttr_s`.

A text cell that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or
a carriage return: category and company names come from people) is written with a leading `'`
(CSV injection, OWASP).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from cloud_ingest.kpis.compute import KpiRow, Ratio
from cloud_ingest.work_orders.sla import Stage

__all__ = ["BOM", "COLUMNS", "RATES", "to_csv"]

BOM: Final = "\ufeff"
RATES: Final = ("closure", "rework", "satisfaction", "follow_up")
"""The order-level rates, in column order (after the stages)."""
_GROUP: Final = ("category", "grid", "company", "period", "period_start", "period_end")
_COUNTS: Final = ("opened", "cancelled", "accepted", "closed")
_RATE_PARTS: Final = ("numerator", "denominator", "rate")
COLUMNS: Final[tuple[str, ...]] = (
    *_GROUP,
    *_COUNTS,
    *(f"{s.value}_{p}" for s in Stage for p in (*_RATE_PARTS, "overdue_open")),
    *(f"{r}_{p}" for r in RATES for p in _RATE_PARTS),
    "mean_rating",
    "mtta_s",
    "mttr_s",
    "lent_handled",
    "borrowed_handled",
)
"""The header of the CSV file."""
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _time(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _ratio(ratio: Ratio) -> list[str]:
    return [str(ratio.numerator), str(ratio.denominator), _number(ratio.rate, 4)]


def _cells(row: KpiRow) -> list[str]:
    cells = [_text(row.category), _text(row.grid), _text(row.company), _text(row.period)]
    cells += [_time(row.period_start), _time(row.period_end)]
    cells += [str(n) for n in (row.opened, row.cancelled, row.accepted, row.closed)]
    for stage in Stage:
        kpi = row.stages[stage]
        cells += [*_ratio(kpi), str(kpi.overdue_open)]
    for ratio in (row.closure, row.rework, row.satisfaction, row.follow_up):
        cells += _ratio(ratio)
    cells += [_number(row.mean_rating, 2), _number(row.mtta_s, 1), _number(row.mttr_s, 1)]
    cells += [str(row.lent_handled), str(row.borrowed_handled)]
    return cells


def to_csv(rows: Iterable[KpiRow]) -> str:
    """The CSV text of `rows`, beginning with the byte-order mark and the header (`COLUMNS`)."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(_cells(row) for row in rows)
    return out.getvalue()
