"""`Kpis`: loads the caller's orders and their events for a range and computes the KPIs.

Two queries, on one connection: the orders, then their events up to the end of the range (all of
them from the `open` on, since a stage that ends in the range may have started before it). An
order is loaded when it was created before the end and either changed at or after the start
(`updated_at`, the time of its latest event) or is still open now (so it was open all through the
range and a stage of it may fall due there).

The caller's orders are those `work_orders.store.visible_orders` gives them: a company user
sees their company's orders within their area, an area officer (a street officer, a grid member)
every company's orders within the area, an administrator all. A company user also gets, for their
`lent_handled` only, the orders within their area that another company handled with a technician
lent by theirs (a `dispatch` event whose data names their company as `assignee_company` with a
`loan_id`); none of those orders' other figures are shown to them.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.scope import within
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.infra.schema import work_order_events, work_orders
from cloud_ingest.kpis.compute import EventRow, KpiQuery, KpiRow, OrderRow, compute, parse_query
from cloud_ingest.work_orders.lifecycle import OPEN_STATES, Action
from cloud_ingest.work_orders.sla import SlaPolicy, default_policy
from cloud_ingest.work_orders.store import visible_orders

__all__ = ["Kpis"]


class Kpis:
    """The KPIs of work orders on `engine`; `clock` gives the default range's end."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        timezone: str = "Asia/Shanghai",
        clock: Clock | None = None,
        sla: SlaPolicy | None = None,
    ) -> None:
        """Count on `engine`, with periods in `timezone` and the shipped SLA table by default."""
        self._engine = engine
        self.timezone = timezone
        self._clock: Clock = clock or SystemClock()
        self._sla = sla

    def query(
        self, *, start: str | None, end: str | None, by: str | None, period: str | None
    ) -> KpiQuery:
        """The query of the API's parameters (`compute.parse_query`; `KpiQueryError`)."""
        now = self._clock.now()
        return parse_query(
            start=start, end=end, by=by, period=period, now=now, timezone=self.timezone
        )

    async def report(self, user: User, query: KpiQuery) -> list[KpiRow]:
        """The KPI rows of the orders `user` may see, for `query`."""
        orders, events = await self._load(user, query)
        return compute(orders, events, self._sla or default_policy(), query)

    async def _load(self, user: User, query: KpiQuery) -> tuple[list[OrderRow], list[EventRow]]:
        wo = work_orders.c
        touched = and_(
            wo.created_at < query.end,
            or_(wo.updated_at >= query.start, wo.state.in_([s.value for s in OPEN_STATES])),
        )
        seen = visible_orders(user)
        lent = _lent_by(user)
        loaded = and_(touched, or_(seen, lent))
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(work_orders, seen.label("seen")).where(loaded))
            orders = [
                OrderRow.of(dict(row), lender_only=None if row["seen"] else user.company)
                for row in rows.mappings()
            ]
            ev = work_order_events.c
            rows = await conn.execute(
                select(ev.order_id, ev.seq, ev.action, ev.to_state, ev.at, ev.data)
                .where(ev.order_id.in_(select(wo.id).where(loaded)), ev.at < query.end)
                .order_by(ev.order_id, ev.seq)
            )
            events = [EventRow.of(dict(row)) for row in rows.mappings()]
        return orders, events


def _lent_by(user: User) -> ColumnElement[bool]:
    """Orders within a company user's area handled with a technician their company lent."""
    if not user.company or user.sees_everything or user.role is Role.RESIDENT:
        return false()
    ev = work_order_events.c
    lent = exists(
        select(ev.id).where(
            ev.order_id == work_orders.c.id,
            ev.action == Action.DISPATCH.value,
            ev.data["assignee_company"].as_string() == user.company,
            ev.data["loan_id"].as_string().is_not(None),
        )
    )
    return and_(lent, within(work_orders.c.location, user.area))
