"""The JSON shape of `GET /api/v1/kpis` (the definitions are in `cloud_ingest.kpis.compute`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cloud_ingest.kpis.compute import Dimension, KpiQuery, KpiRow, Ratio, StageKpi
from cloud_ingest.paging import IsoTime
from cloud_ingest.work_orders.sla import Stage


class RatioOut(BaseModel):
    """A rate with what it is counted from."""

    numerator: int
    denominator: int
    rate: float | None = Field(description="numerator / denominator; null when it is 0")

    @classmethod
    def of(cls, ratio: Ratio) -> RatioOut:
        """The JSON of a computed ratio."""
        return cls(numerator=ratio.numerator, denominator=ratio.denominator, rate=ratio.rate)


class StageOut(RatioOut):
    """A stage's completed runs on time (numerator) of its completed runs (denominator)."""

    overdue_open: int = Field(description="runs still going at `to` that fell due in the period")

    @classmethod
    def of_stage(cls, kpi: StageKpi) -> StageOut:
        """The JSON of a computed stage."""
        return cls(
            numerator=kpi.numerator,
            denominator=kpi.denominator,
            rate=kpi.rate,
            overdue_open=kpi.overdue_open,
        )


class KpiRowOut(BaseModel):
    """The KPIs of one group (a dimension not grouped by is null)."""

    category: str | None
    grid: str | None = Field(description="the location path cut at the grid level")
    company: str | None
    period: str | None = Field(description="2026-12-07, 2026-W50 or 2026-12 (local)")
    period_start: IsoTime | None = Field(description="the local start of the period")
    period_end: IsoTime | None
    opened: int
    cancelled: int = Field(description="cancelled orders: in no rate")
    accepted: int
    closed: int = Field(description="orders whose latest closure falls in the group")
    acceptance: StageOut = Field(description="按时受理率: NEW until accept")
    dispatch: StageOut = Field(
        description="按期派遣率: ACCEPTED, REWORK or REOPENED until dispatch"
    )
    arrival: StageOut = Field(description="DISPATCHED until start")
    handling: StageOut = Field(description="按期处置率: IN_PROGRESS until submit")
    verification: StageOut = Field(description="按期核查率: AWAITING_VERIFICATION until verified")
    closure: RatioOut = Field(description="按期结案率: closed on time of closed")
    rework: RatioOut = Field(description="返工率: closed with a rework of closed")
    satisfaction: RatioOut = Field(description="满意率: rated 4 or 5 of rated closed")
    mean_rating: float | None
    follow_up: RatioOut = Field(description="回访率: followed up of closed")
    mtta_s: float | None = Field(description="mean seconds from open to accept")
    mttr_s: float | None = Field(description="mean seconds from open to closure")
    lent_handled: int = Field(description="handlings by this company's technicians, lent out")
    borrowed_handled: int = Field(description="handlings by technicians borrowed from others")

    @classmethod
    def of(cls, row: KpiRow) -> KpiRowOut:
        """The JSON of a computed row."""
        return cls(
            category=row.category,
            grid=row.grid,
            company=row.company,
            period=row.period,
            period_start=row.period_start,
            period_end=row.period_end,
            opened=row.opened,
            cancelled=row.cancelled,
            accepted=row.accepted,
            closed=row.closed,
            acceptance=StageOut.of_stage(row.stages[Stage.ACCEPTANCE]),
            dispatch=StageOut.of_stage(row.stages[Stage.DISPATCH]),
            arrival=StageOut.of_stage(row.stages[Stage.ARRIVAL]),
            handling=StageOut.of_stage(row.stages[Stage.HANDLING]),
            verification=StageOut.of_stage(row.stages[Stage.VERIFICATION]),
            closure=RatioOut.of(row.closure),
            rework=RatioOut.of(row.rework),
            satisfaction=RatioOut.of(row.satisfaction),
            mean_rating=row.mean_rating,
            follow_up=RatioOut.of(row.follow_up),
            mtta_s=row.mtta_s,
            mttr_s=row.mttr_s,
            lent_handled=row.lent_handled,
            borrowed_handled=row.borrowed_handled,
        )


class KpiReport(BaseModel):
    """The KPI rows of a range, as asked."""

    model_config = ConfigDict(populate_by_name=True)

    from_: IsoTime = Field(alias="from")
    to: IsoTime
    timezone: str = Field(description="the time zone of the periods")
    by: list[str] = Field(description="the dimensions grouped by")
    period: str | None = Field(description="day, week or month when grouped by period")
    rows: list[KpiRowOut]

    @classmethod
    def of(cls, query: KpiQuery, rows: list[KpiRow]) -> KpiReport:
        """The report of `rows` computed for `query`."""
        grouped = Dimension.PERIOD in query.by
        return cls.model_validate(
            {
                "from": query.start,
                "to": query.end,
                "timezone": query.timezone,
                "by": [d.value for d in query.by],
                "period": query.period.value if grouped else None,
                "rows": [KpiRowOut.of(row) for row in rows],
            }
        )
