"""The pure KPI computation on hand-built event logs: stage timing on the SLA table and its working
calendar, closure, rework, satisfaction, follow-up, MTTA/MTTR, cancellation, grouping by local
periods, lent technicians, the query's validation and the CSV export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any, Final
from zoneinfo import ZoneInfo

import pytest

from cloud_ingest.kpis.compute import (
    MAX_RANGE,
    Dimension,
    EventRow,
    KpiQuery,
    KpiQueryError,
    KpiRow,
    OrderRow,
    Period,
    compute,
    grid_of,
    parse_query,
    stage_runs,
)
from cloud_ingest.kpis.export import BOM, COLUMNS, to_csv
from cloud_ingest.work_orders.sla import Stage, default_policy

SH: Final = ZoneInfo("Asia/Shanghai")
T0: Final = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
HERE: Final = "d1/s1/c1/g1/b1"
POLICY: Final = default_policy()
DAY: Final = KpiQuery(T0 - timedelta(hours=9), T0 + timedelta(hours=15))
"""The local day of T0 (2026-12-07 in Shanghai)."""

Step = tuple[float, str, str] | tuple[float, str, str, Mapping[str, object]]
_ids = count(1)


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def order(
    category: str = "fire",
    *,
    company: str = "A",
    location: str = HERE,
    source: str = "alarm",
    priority: str = "P1",
    deadline: datetime | None = None,
    lender_only: str | None = None,
    order_id: int | None = None,
) -> OrderRow:
    return OrderRow(
        id=order_id or next(_ids),
        category=category,
        company=company,
        location=location,
        source=source,
        priority=priority,
        external_deadline=deadline,
        lender_only=lender_only,
    )


def log(of: OrderRow, *steps: Step, start: float = 0) -> list[EventRow]:
    """The order's events: `open` at minute `start`, then each (minute, action, state[, data])."""
    events = [EventRow(of.id, 1, "open", "NEW", minutes(start))]
    for seq, step in enumerate(steps, start=2):
        data: Mapping[str, object] = step[3] if len(step) == 4 else {}
        events.append(EventRow(of.id, seq, step[1], step[2], minutes(step[0]), data))
    return events


LOOP: Final[Sequence[Step]] = (
    (1, "accept", "ACCEPTED"),
    (3, "dispatch", "DISPATCHED", {"assignee": "tech-a"}),
    (10, "start", "IN_PROGRESS"),
    (60, "submit", "AWAITING_VERIFICATION"),
    (120, "verify", "CLOSED"),
)
"""A fire handled within every wall-clock limit (2m, 5m, 15m, 2h, 24h)."""


def one(orders: Sequence[OrderRow], events: Sequence[EventRow], query: KpiQuery = DAY) -> KpiRow:
    (row,) = compute(orders, events, POLICY, query)
    return row


def rates(row: KpiRow) -> dict[str, tuple[int, int]]:
    found = {s.value: (k.numerator, k.denominator) for s, k in row.stages.items()}
    for name in ("closure", "rework", "satisfaction", "follow_up"):
        ratio = getattr(row, name)
        found[name] = (ratio.numerator, ratio.denominator)
    return found


# --- one order ------------------------------------------------------------------------------------


def test_a_fire_handled_on_time_through_the_whole_loop() -> None:
    fire = order()
    events = log(
        fire, *LOOP, (130, "rate", "RATED", {"rating": 5}), (140, "follow_up", "FOLLOWED_UP")
    )
    row = one([fire], events)
    assert (row.category, row.grid, row.company, row.period) == (None, None, None, None)
    assert (row.opened, row.accepted, row.closed, row.cancelled) == (1, 1, 1, 0)
    assert rates(row) == {
        "acceptance": (1, 1),
        "dispatch": (1, 1),
        "arrival": (1, 1),
        "handling": (1, 1),
        "verification": (1, 1),
        "closure": (1, 1),
        "rework": (0, 1),
        "satisfaction": (1, 1),
        "follow_up": (1, 1),
    }
    assert row.closure.rate == 1.0
    assert row.rework.rate == 0.0
    assert row.mean_rating == 5.0
    assert row.mtta_s == 60.0
    assert row.mttr_s == 120 * 60.0
    assert all(k.overdue_open == 0 for k in row.stages.values())


def test_a_stage_is_on_time_up_to_its_due_instant_and_a_late_one_makes_the_closure_late() -> None:
    on_the_dot, late = order(), order()
    events = [
        *log(on_the_dot, (2, "accept", "ACCEPTED"), *LOOP[1:]),  # fire: accept within 2 min
        *log(late, (2.5, "accept", "ACCEPTED"), *LOOP[1:]),
    ]
    row = one([on_the_dot, late], events)
    assert rates(row)["acceptance"] == (1, 2)
    assert rates(row)["dispatch"] == (2, 2)  # dispatched 1 and 0.5 min after: within 5
    assert rates(row)["closure"] == (1, 2)
    assert row.stages[Stage.ACCEPTANCE].rate == 0.5
    assert row.mtta_s == (120 + 150) / 2


def test_working_hours_stages_skip_the_weekend_and_lunch() -> None:
    friday_evening = -(2 * 24 + 15) * 60 - 10  # Friday 2026-12-04 17:50 in Shanghai
    quick, slow = order("sanitation", priority="P3"), order("sanitation", priority="P3")
    events = [
        # 10 min on Friday + 10 min on Monday = 20 working minutes of 30
        *log(quick, (10, "accept", "ACCEPTED"), start=friday_evening),
        # 10 + 45 = 55 working minutes: late
        *log(slow, (45, "accept", "ACCEPTED"), start=friday_evening),
    ]
    query = KpiQuery(T0 - timedelta(days=4), T0 + timedelta(days=1))
    row = one([quick, slow], events, query)
    assert rates(row)["acceptance"] == (1, 2)
    assert row.mtta_s == pytest.approx(((63 * 60 + 20) + (63 * 60 + 55)) * 60 / 2)
    # the dispatch stage (1 h of working time): over lunch, and late for the quick one
    lunch = order("sanitation", priority="P3")
    later = [
        *events,
        EventRow(quick.id, 3, "dispatch", "DISPATCHED", minutes(4 * 60 + 5)),  # 13:05 > 10:10
        *log(lunch, (151, "accept", "ACCEPTED"), (260, "dispatch", "DISPATCHED"), start=150),
    ]
    row = one([quick, slow, lunch], later, query)
    assert rates(row)["dispatch"] == (1, 2)  # 11:31 + 1 h of work is 13:31: 13:20 is in time
    assert row.stages[Stage.DISPATCH].overdue_open == 1  # the slow one's, due 10:45


def test_an_approved_hold_stops_the_handling_clock_and_a_pending_one_does_not() -> None:
    # a fire: handling has 2 h from the start at minute 10, due at minute 130
    approved_in_time, approved_late, denied, withdrawn = (order() for _ in range(4))
    held = [*LOOP[:3], (100, "hold", "ON_HOLD"), (110, "approve_hold", "ON_HOLD")]
    events = [
        # 20 minutes were left at the approval: resumed at 300, due at 320
        *log(
            approved_in_time,
            *held,
            (300, "resume", "IN_PROGRESS"),
            (320, "submit", "AWAITING_VERIFICATION"),
        ),
        *log(
            approved_late,
            *held,
            (300, "resume", "IN_PROGRESS"),
            (321, "submit", "AWAITING_VERIFICATION"),
        ),
        # a hold asked for and denied: the clock ran all along
        *log(
            denied,
            *LOOP[:3],
            (100, "hold", "ON_HOLD"),
            (105, "deny_hold", "IN_PROGRESS"),
            (131, "submit", "AWAITING_VERIFICATION"),
        ),
        *log(
            withdrawn,
            *LOOP[:3],
            (100, "hold", "ON_HOLD"),
            (105, "resume", "IN_PROGRESS"),
            (125, "submit", "AWAITING_VERIFICATION"),
        ),
    ]
    row = one([approved_in_time, approved_late, denied, withdrawn], events)
    assert rates(row)["handling"] == (2, 4)
    (run,) = [
        r for r in stage_runs(approved_in_time, events[:8], POLICY) if r.stage is Stage.HANDLING
    ]
    assert (run.started.action, run.due, run.ended) == ("start", minutes(320), events[7])
    paused = stage_runs(approved_in_time, events[:6], POLICY)[-1]
    assert (paused.stage, paused.due, paused.ended) == (Stage.HANDLING, None, None)
    assert one([approved_in_time], events[:6]).stages[Stage.HANDLING].overdue_open == 0


def test_a_rework_and_a_bad_rating_count_every_pass_and_the_latest_closure() -> None:
    fire = order()
    events = log(
        fire,
        *LOOP[:4],
        (70, "rework", "REWORK"),  # verification failed (a verification done, on time)
        (72, "dispatch", "DISPATCHED"),
        (80, "start", "IN_PROGRESS"),
        (90, "submit", "AWAITING_VERIFICATION"),
        (100, "verify", "CLOSED"),
        (200, "rate", "REWORK", {"rating": 1}),  # a bad rating sends it back
        (203, "dispatch", "DISPATCHED"),
        (210, "start", "IN_PROGRESS"),
        (220, "submit", "AWAITING_VERIFICATION"),
        (28 * 60, "verify", "CLOSED"),  # the next day (local), 28 h after open
    )
    two_days = KpiQuery(DAY.start, DAY.end + timedelta(days=1), (Dimension.PERIOD,))
    first_day, second_day = compute([fire], events, POLICY, two_days)
    assert first_day.period == "2026-12-07"
    assert (first_day.opened, first_day.closed) == (1, 0)  # closed again later: counts there
    assert rates(first_day)["dispatch"] == (3, 3)
    assert rates(first_day)["handling"] == (3, 3)
    assert rates(first_day)["verification"] == (2, 2)  # the rework and the first verify
    assert (second_day.period, second_day.closed) == ("2026-12-08", 1)
    assert rates(second_day)["verification"] == (0, 1)  # 28 h - 220 min > 24 h
    assert rates(second_day)["rework"] == (1, 1)
    assert rates(second_day)["satisfaction"] == (0, 1)
    assert second_day.mean_rating == 1.0
    assert rates(second_day)["closure"] == (0, 1)
    assert second_day.mttr_s == 28 * 3600.0


def test_satisfaction_takes_each_orders_latest_rating() -> None:
    orders = [order() for _ in range(4)]
    events = [
        *log(orders[0], *LOOP, (130, "rate", "RATED", {"rating": 4})),
        *log(
            orders[1],
            *LOOP,
            (130, "rate", "RATED", {"rating": 3}),
            (131, "follow_up", "FOLLOWED_UP"),
        ),
        *log(orders[2], *LOOP, (130, "rate", "RATED", {"rating": 5})),
        *log(orders[3], *LOOP),  # not rated
    ]
    row = one(orders, events)
    assert rates(row)["satisfaction"] == (2, 3)
    assert row.mean_rating == 4.0
    assert rates(row)["follow_up"] == (1, 4)
    assert row.follow_up.rate == 0.25


def test_a_cancelled_order_is_counted_apart_and_left_out_of_every_rate() -> None:
    false_alarm, real = order(), order()
    events = [
        *log(false_alarm, (5, "accept", "ACCEPTED"), (6, "cancel", "CANCELLED")),
        *log(real, *LOOP),
    ]
    row = one([false_alarm, real], events)
    assert (row.opened, row.cancelled, row.accepted, row.closed) == (2, 1, 1, 1)
    assert rates(row)["acceptance"] == (1, 1)  # the late accept of the cancelled one is left out
    assert row.mtta_s == 60.0


def test_a_hotline_complaint_closed_by_its_own_deadline_is_on_time() -> None:
    deadline = minutes(24 * 60)
    kept = order("noise", source="hotline_12345", priority="P3", deadline=deadline)
    missed = order("noise", source="hotline_12345", priority="P3", deadline=deadline)
    events = [
        # accepted after 2 working hours (the hotline's limit is 1 h), closed before the deadline
        *log(
            kept,
            (120, "accept", "ACCEPTED"),
            (130, "dispatch", "DISPATCHED"),
            (140, "start", "IN_PROGRESS"),
            (200, "submit", "AWAITING_VERIFICATION"),
            (210, "verify", "CLOSED"),
        ),
        # every other stage in time, but the result came after the deadline (which replaces the
        # 13 working days of handling)
        *log(
            missed,
            (10, "accept", "ACCEPTED"),
            (20, "dispatch", "DISPATCHED"),
            (30, "start", "IN_PROGRESS"),
            (24 * 60 + 1, "submit", "AWAITING_VERIFICATION"),
            (24 * 60 + 2, "verify", "CLOSED"),
        ),
    ]
    query = KpiQuery(DAY.start, DAY.end + timedelta(days=1))
    row = one([kept, missed], events, query)
    assert rates(row)["acceptance"] == (1, 2)
    assert rates(row)["handling"] == (1, 2)
    assert rates(row)["closure"] == (1, 2)


def test_a_stage_still_running_after_its_due_time_is_overdue_in_the_period_it_fell_due() -> None:
    waiting = order()
    events = log(waiting)  # a fire nobody accepts: due 2 minutes after open
    assert one([waiting], events).stages[Stage.ACCEPTANCE].overdue_open == 1
    assert one([waiting], events).stages[Stage.ACCEPTANCE].denominator == 0
    later = KpiQuery(minutes(3), minutes(60))
    row = one([waiting], events, later)
    assert (row.opened, row.stages[Stage.ACCEPTANCE].overdue_open) == (0, 0)
    before_due = KpiQuery(DAY.start, minutes(1))
    assert one([waiting], events, before_due).stages[Stage.ACCEPTANCE].overdue_open == 0


def test_events_at_or_after_the_end_are_not_seen() -> None:
    fire = order()
    events = log(fire, *LOOP)
    row = one([fire], events, KpiQuery(DAY.start, minutes(120)))  # the verify is at the end
    assert (row.closed, rates(row)["verification"]) == (0, (0, 0))
    assert rates(row)["handling"] == (1, 1)
    row = one([fire], events, KpiQuery(minutes(1), minutes(121)))  # the open is before the start
    assert (row.opened, row.accepted, row.closed) == (0, 1, 1)
    assert row.mttr_s == 120 * 60.0


def test_an_empty_log_gives_one_row_of_zeros_ungrouped_and_none_grouped() -> None:
    row = one([], [])
    assert (row.opened, row.closed) == (0, 0)
    assert row.closure.rate is None
    assert row.mtta_s is None
    assert row.mean_rating is None
    grouped = KpiQuery(DAY.start, DAY.end, (Dimension.CATEGORY,))
    assert compute([], [], POLICY, grouped) == []


# --- grouping -----------------------------------------------------------------------------------


def test_rows_group_by_category_grid_company_and_local_period() -> None:
    just_after_midnight = -(8 * 60 + 30)  # 2026-12-07 00:30 in Shanghai: 2026-12-06 16:30 UTC
    orders = [
        order("fire", company="A", location="d1/s1/c1/g1/b1"),
        order("fire", company="A", location="d1/s1/c1/g1/b2/u3"),
        order("water", company="B", location="d1/s1/c2/g7", priority="P3"),
        order("fire", company="B", location="d1/s1", priority="P1"),  # above the grid level
    ]
    events = [
        *log(orders[0], *LOOP, start=0),
        *log(orders[1], (just_after_midnight + 1, "accept", "ACCEPTED"), start=just_after_midnight),
        *log(orders[2], start=0),
        *log(orders[3], start=0),
    ]
    query = KpiQuery(T0 - timedelta(days=2), T0 + timedelta(days=1), tuple(Dimension), Period.DAY)
    rows = compute(orders, events, POLICY, query)
    keys = [(r.category, r.grid, r.company, r.period) for r in rows]
    assert keys == [
        ("fire", "d1/s1", "B", "2026-12-07"),
        ("fire", "d1/s1/c1/g1", "A", "2026-12-07"),
        ("water", "d1/s1/c2/g7", "B", "2026-12-07"),
    ]
    assert rows[1].opened == 2
    assert rows[1].period_start == datetime(2026, 12, 7, tzinfo=SH)
    assert rows[1].period_end == datetime(2026, 12, 8, tzinfo=SH)
    by_company = compute(
        orders, events, POLICY, KpiQuery(query.start, query.end, (Dimension.COMPANY,))
    )
    assert [(r.company, r.opened) for r in by_company] == [("A", 2), ("B", 2)]


@pytest.mark.parametrize(
    ("period", "label", "start", "end"),
    [
        (
            Period.DAY,
            "2026-12-01",
            datetime(2026, 12, 1, tzinfo=SH),
            datetime(2026, 12, 2, tzinfo=SH),
        ),
        (
            Period.WEEK,
            "2026-W49",
            datetime(2026, 11, 30, tzinfo=SH),
            datetime(2026, 12, 7, tzinfo=SH),
        ),
        (
            Period.MONTH,
            "2026-12",
            datetime(2026, 12, 1, tzinfo=SH),
            datetime(2027, 1, 1, tzinfo=SH),
        ),
    ],
)
def test_a_period_is_a_local_day_iso_week_or_month(
    period: Period, label: str, start: datetime, end: datetime
) -> None:
    # 2026-11-30 16:30 UTC is 2026-12-01 00:30 in Shanghai (a Tuesday)
    at = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
    fire = order()
    events = [EventRow(fire.id, 1, "open", "NEW", at)]
    query = KpiQuery(at - timedelta(days=40), at + timedelta(days=40), (Dimension.PERIOD,), period)
    (row,) = compute([fire], events, POLICY, query)
    assert (row.period, row.period_start, row.period_end) == (label, start, end)
    utc = KpiQuery(query.start, query.end, (Dimension.PERIOD,), Period.DAY, timezone="UTC")
    (row,) = compute([fire], events, POLICY, utc)
    assert row.period == "2026-11-30"


def test_a_week_across_the_new_year_is_labelled_by_its_iso_year() -> None:
    at = datetime(2027, 1, 1, 4, tzinfo=UTC)  # a Friday
    fire = order()
    events = [EventRow(fire.id, 1, "open", "NEW", at)]
    query = KpiQuery(
        at - timedelta(days=3), at + timedelta(days=3), (Dimension.PERIOD,), Period.WEEK
    )
    (row,) = compute([fire], events, POLICY, query)
    assert (row.period, row.period_start) == ("2026-W53", datetime(2026, 12, 28, tzinfo=SH))


def test_the_grid_is_the_location_cut_at_the_grid_level() -> None:
    assert grid_of("d1/s1/c1/g1/b1/u2") == "d1/s1/c1/g1"
    assert grid_of("/d1/s1/c1/g1/") == "d1/s1/c1/g1"
    assert grid_of("d1/s1") == "d1/s1"
    assert grid_of("d1//x") == "d1//x"  # malformed: kept as it is


# --- lent technicians -----------------------------------------------------------------------------

LOAN: Final = {"assignee": "tech-b", "assignee_company": "B", "loan_id": 7}


def test_a_borrowed_technicians_work_counts_for_the_order_and_credits_the_lender() -> None:
    borrowed = order(company="A")
    own = order(company="A")
    no_loan = order(company="A")
    events = [
        *log(borrowed, LOOP[0], (3, "dispatch", "DISPATCHED", LOAN), *LOOP[2:]),
        *log(own, LOOP[0], (3, "dispatch", "DISPATCHED", {"assignee": "tech-a"}), *LOOP[2:]),
        *log(no_loan, LOOP[0], (3, "dispatch", "DISPATCHED", {**LOAN, "loan_id": None}), *LOOP[2:]),
    ]
    query = KpiQuery(DAY.start, DAY.end, (Dimension.COMPANY,))
    a, b = compute([borrowed, own, no_loan], events, POLICY, query)
    assert (a.company, a.closed, a.borrowed_handled, a.lent_handled) == ("A", 3, 1, 0)
    assert rates(a)["handling"] == (3, 3)  # the order's company keeps the work as usual
    assert (b.company, b.lent_handled, b.borrowed_handled) == ("B", 1, 0)
    assert (b.opened, b.closed, rates(b)["handling"]) == (0, 0, (0, 0))  # credit only
    together = one([borrowed, own, no_loan], events)
    assert (together.lent_handled, together.borrowed_handled) == (1, 1)


def test_the_latest_dispatch_before_the_result_decides_who_handled_it() -> None:
    fire = order(company="A")
    events = log(
        fire,
        LOOP[0],
        (3, "dispatch", "DISPATCHED", LOAN),
        (4, "reject", "ACCEPTED", {}),
        (5, "dispatch", "DISPATCHED", {"assignee": "tech-a"}),  # the company's own, no loan keys
        *LOOP[2:],
    )
    row = one([fire], events, KpiQuery(DAY.start, DAY.end, (Dimension.COMPANY,)))
    assert (row.company, row.borrowed_handled, row.lent_handled) == ("A", 0, 0)


def test_an_order_seen_only_as_the_lender_counts_only_its_lent_work() -> None:
    elsewhere = order(company="A", lender_only="B")
    other_lender = order(company="A", lender_only="B")
    events = [
        *log(elsewhere, LOOP[0], (3, "dispatch", "DISPATCHED", LOAN), *LOOP[2:]),
        *log(
            other_lender,
            LOOP[0],
            (3, "dispatch", "DISPATCHED", {**LOAN, "assignee_company": "C"}),
            *LOOP[2:],
        ),
    ]
    query = KpiQuery(DAY.start, DAY.end, (Dimension.COMPANY, Dimension.CATEGORY))
    (row,) = compute([elsewhere, other_lender], events, POLICY, query)
    assert (row.company, row.category, row.lent_handled) == ("B", "fire", 1)
    assert (row.opened, row.closed, row.borrowed_handled) == (0, 0, 0)
    assert rates(row)["handling"] == (0, 0)


# --- the query ----------------------------------------------------------------------------------

NOW: Final = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)


def ask(**params: str | None) -> KpiQuery:
    given: dict[str, Any] = {"start": None, "end": None, "by": None, "period": None, **params}
    return parse_query(**given, now=NOW, timezone="Asia/Shanghai")


def test_the_query_defaults_to_the_last_30_days_ungrouped() -> None:
    query = ask()
    assert (query.start, query.end, query.by) == (NOW - timedelta(days=30), NOW, ())
    query = ask(end="2026-12-01T00:00:00+08:00", by=" category , grid ")
    assert query.end == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert query.start == query.end - timedelta(days=30)
    assert query.by == (Dimension.CATEGORY, Dimension.GRID)
    assert ask(period="month").by == (Dimension.PERIOD,)
    assert ask(period="week", by="company").by == (Dimension.COMPANY, Dimension.PERIOD)
    assert ask(by="period").period is Period.DAY
    assert ask(start="2026-12-01T00:00:00Z").start == datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"start": "yesterday"}, "not an ISO 8601 time"),
        ({"start": "2026-12-01T00:00:00"}, "needs a time zone offset"),
        ({"end": "2026-12-01T00:00:00 08:00"}, "%2B"),
        ({"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "before 'to'"),
        ({"start": "2026-12-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "before 'to'"),
        ({"start": "2025-01-01T00:00:00Z", "end": "2026-02-05T00:00:00Z"}, "longer than 366 days"),
        ({"start": "0001-01-01T00:00:00+14:00"}, "from 1970 to 2999"),
        ({"end": "9999-12-31T23:59:59-12:00"}, "from 1970 to 2999"),
        ({"end": "1970-01-02T00:00:00Z"}, "from 1970 to 2999"),
        ({"by": "category,,grid"}, "empty item"),
        ({"by": "street"}, "not 'street'"),
        ({"by": "grid,grid"}, "twice"),
        ({"period": "year"}, "one of day, week, month"),
    ],
)
def test_a_bad_query_is_refused_with_the_reason(params: dict[str, str], says: str) -> None:
    with pytest.raises(KpiQueryError, match=re.escape(says)):
        ask(**params)


def test_the_longest_range_is_allowed_and_a_naive_time_is_refused_directly() -> None:
    assert KpiQuery(NOW - MAX_RANGE, NOW).end == NOW
    with pytest.raises(KpiQueryError, match="offset"):
        KpiQuery(datetime(2026, 1, 1), NOW)  # noqa: DTZ001 - the naive time is the point
    with pytest.raises(KpiQueryError, match="time zone"):
        KpiQuery(NOW - timedelta(days=1), NOW, timezone="Mars/Olympus")


# --- the CSV export -------------------------------------------------------------------------------


def test_the_csv_has_a_bom_a_header_and_one_line_per_row_with_formulas_defused() -> None:
    fire = order("消防", company='=HYPERLINK("http://x")', location="东城区/s1/c1/g1")
    events = log(fire, *LOOP, (130, "rate", "RATED", {"rating": 4}))
    query = KpiQuery(
        DAY.start,
        DAY.end,
        (Dimension.CATEGORY, Dimension.COMPANY, Dimension.GRID, Dimension.PERIOD),
    )
    text = to_csv(compute([fire], events, POLICY, query))
    assert text.startswith(BOM)
    assert "\r\n" in text
    data = text.encode("utf-8")
    header, line = csv.DictReader(io.StringIO(data.decode("utf-8-sig"))), None
    (line,) = list(header)
    assert tuple(header.fieldnames or ()) == COLUMNS
    assert line["category"] == "消防"
    assert line["grid"] == "东城区/s1/c1/g1"
    assert line["company"] == '\'=HYPERLINK("http://x")'
    assert line["period"] == "2026-12-07"
    assert line["period_start"] == "2026-12-07T00:00:00+08:00"
    assert (line["acceptance_numerator"], line["acceptance_denominator"]) == ("1", "1")
    assert line["acceptance_rate"] == "1.0000"
    assert line["satisfaction_rate"] == "1.0000"
    assert line["follow_up_rate"] == "0.0000"
    assert line["mean_rating"] == "4.00"
    assert (line["mtta_s"], line["mttr_s"]) == ("60.0", "7200.0")
    empty = to_csv(compute([], [], POLICY, DAY))
    (blank,) = list(csv.DictReader(io.StringIO(empty.removeprefix(BOM))))
    assert (blank["category"], blank["closure_rate"], blank["mtta_s"], blank["opened"]) == (
        "",
        "",
        "",
        "0",
    )
