"""Work-order KPIs from the event log (pure: rows in, rows out; time is in the rows and the query).

`compute(orders, events, policy, query)` replays each order's events (`work_order_events`, oldest
first) and counts what happened in the query's range `[start, end)`, grouped by any of category,
grid (the location cut at the grid level), company and period (a local day, ISO week or month in
the query's time zone; a period cut by an end of the range counts only what lies within it).
Events at or after `end` are ignored, so a past range always gives the same figures: every
figure is the log as it stood at `end`.

**Stage runs.** A state that runs an SLA stage (`STAGE_OF`, as the work-order service times it)
starts a *run* when an event enters it; the next change of state ends the run (holds aside, see
below). Its due time is `SlaPolicy.due(stage, category, <time of the entering event>, priority=...,
deadline=...)` with the order's category (`hotline_12345` for every 12345 complaint), priority
and own deadline, exactly as the service sets `due_at`. A run is *on time* when the event ending
it happened at or before that due time. A run *completes* its stage when it is ended by the
stage's own action (`COMPLETES`):

| stage | runs in | completed by | rate |
| --- | --- | --- | --- |
| acceptance | NEW | accept | 按时受理率 |
| dispatch | ACCEPTED, REWORK, REOPENED | dispatch | 按期派遣率 |
| arrival | DISPATCHED | start | (按时到场) |
| handling | IN_PROGRESS | submit | 按期处置率 |
| verification | AWAITING_VERIFICATION | verify, auto_verify, rework | 按期核查率 |

A failed verification (rework) is a verification carried out, so it counts for 按期核查率. A
stage's rate is the completed runs on time over the completed runs, counted in the period of the
ending event; a stage passed twice (an order reworked once is dispatched, reached and handled
twice) counts twice. A run left by another action (a technician's reject, a cancel) is not a
completed stage. A hold follows the service's SLA clock (`stage_runs`): asked for, denied or
withdrawn, the handling run and its due time go on; approved, its clock stops, and the resume
gives it the working time that was left. `overdue_open` counts the runs still going at `end`
whose due time passed, in the period in which they fell due (超期未处置).

**Orders.** Order-level figures count each order once, in the period of its *latest closure*
(the last event entering CLOSED: verify or auto_verify) before `end`:

- `closed`: orders closed (结案); an order reopened or reworked after a closure still counts in
  the period of that closure while it has not been closed again.
- `closure` (按期结案率): closed orders whose every stage run up to that closure ended on time
  (whatever ended it), **or** that closed at or before their own deadline (a 12345 complaint's
  `external_deadline`), over closed orders.
- `rework` (返工率): closed orders with at least one rework (a rework action, or a rating of
  `BAD_RATING_MAX` or less, which sends the order to REWORK), over closed orders.
- `satisfaction` (满意率): closed orders whose latest rating is 4 or 5, over closed orders with a
  rating; `mean_rating` is the mean of those latest ratings.
- `follow_up` (回访率): closed orders followed up (回访), over closed orders.
- `mttr_s`: the mean seconds from the `open` event to that closure (wall time).

`opened` counts orders by their `open` event; `accepted` and `mtta_s` (the mean seconds from open
to accept, wall time) count orders by their accept event. A cancelled order (cancelled before
`end`) counts in `opened` and in `cancelled` (in the period of the cancel) and nowhere else: it
is left out of every rate, MTTA and MTTR.

**Lent work (人物拆借).** A `dispatch` event's `data` may carry `assignee`, `assignee_company`
(the technician's own company) and `loan_id` (set only when the technician is borrowed through
the shared pool). A completed handling run whose latest dispatch has a `loan_id` and an
`assignee_company` other than the order's company was done by a borrowed technician: it counts
for the order's company as usual, plus `borrowed_handled` there, and `lent_handled` in the row of
the lending company (same category, grid and period). Absent keys mean not borrowed. An order the
caller sees only because their company lent the technician (`OrderRow.lender_only`) counts only
as that company's `lent_handled`.

Each rate comes as `numerator`, `denominator` and `rate` (None when the denominator is 0).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud_ingest.work_orders.escalation import escalation_target
from cloud_ingest.work_orders.lifecycle import (
    AUTO_VERIFY_ACTION,
    OPEN_ACTION,
    Action,
    State,
)
from cloud_ingest.work_orders.sla import SlaPolicy, Stage
from cloud_ingest.work_orders.stages import STAGE_OF, sla_category, sla_priority

__all__ = [
    "COMPLETES",
    "DEFAULT_RANGE",
    "MAX_RANGE",
    "SATISFIED_MIN",
    "Dimension",
    "EventRow",
    "KpiQuery",
    "KpiQueryError",
    "KpiRow",
    "OrderRow",
    "Period",
    "Ratio",
    "StageKpi",
    "StageRun",
    "compute",
    "grid_of",
    "parse_query",
    "stage_runs",
]

DEFAULT_RANGE: Final = timedelta(days=30)
"""The range when `from` is not given: the 30 days before `to`."""
MAX_RANGE: Final = timedelta(days=366)
"""The longest range one request may ask for (a year of months, leap years included)."""
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(3000, 1, 1, tzinfo=UTC)
"""Times outside [EARLIEST, LATEST) are refused as typing errors."""
SATISFIED_MIN: Final = 4
"""A rating of this or more is satisfied (满意)."""

COMPLETES: Final[Mapping[Stage, frozenset[str]]] = {
    Stage.ACCEPTANCE: frozenset({Action.ACCEPT.value}),
    Stage.DISPATCH: frozenset({Action.DISPATCH.value}),
    Stage.ARRIVAL: frozenset({Action.START.value}),
    Stage.HANDLING: frozenset({Action.SUBMIT.value}),
    Stage.VERIFICATION: frozenset({Action.VERIFY.value, AUTO_VERIFY_ACTION, Action.REWORK.value}),
}
"""The actions that complete a stage (a run ended otherwise is not a completed stage)."""
_KEEPS_CLOCK: Final = frozenset({Action.HOLD.value, Action.DENY_HOLD.value, Action.RESUME.value})
"""Actions that leave the running stage's clock as it is (unless a hold was approved)."""
_APPROVE_HOLD: Final = Action.APPROVE_HOLD.value
_RESUME: Final = Action.RESUME.value
_STAGE_BY_NAME: Final = {state.value: stage for state, stage in STAGE_OF.items()}


class KpiQueryError(ValueError):
    """A KPI query is malformed; `str()` says what to change (the API answers `422`)."""


class Dimension(StrEnum):
    """What KPI rows may be grouped by."""

    CATEGORY = "category"
    GRID = "grid"
    COMPANY = "company"
    PERIOD = "period"


class Period(StrEnum):
    """The length of a period, in the local calendar."""

    DAY = "day"
    WEEK = "week"
    """An ISO week, Monday to Sunday (labelled `2026-W50`)."""
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class KpiQuery:
    """The range `[start, end)` (tz-aware), the grouping and the local time zone of periods."""

    start: datetime
    end: datetime
    by: tuple[Dimension, ...] = ()
    period: Period = Period.DAY
    """The length of the periods when `by` holds `Dimension.PERIOD`."""
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        """Refuse naive or reversed times, a range over `MAX_RANGE`, repeated dimensions."""
        for name, when in (("from", self.start), ("to", self.end)):
            if when.utcoffset() is None:
                raise KpiQueryError(f"{name!r} needs a time zone offset (such as +08:00 or Z)")
            if not EARLIEST <= when < LATEST:
                raise KpiQueryError(f"{name!r} must be from 1970 to 2999")
        if self.start >= self.end:
            raise KpiQueryError("'from' must be before 'to'")
        if self.end - self.start > MAX_RANGE:
            raise KpiQueryError(f"the range is longer than {MAX_RANGE.days} days: ask for less")
        if len(set(self.by)) != len(self.by):
            raise KpiQueryError("'by' names a dimension twice")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise KpiQueryError(f"unknown time zone {self.timezone!r}") from None

    @property
    def zone(self) -> ZoneInfo:
        """The time zone of the periods."""
        return ZoneInfo(self.timezone)

    def covers(self, when: datetime) -> bool:
        """Whether `when` lies in `[start, end)`."""
        return self.start <= when < self.end


def _parse_time(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise KpiQueryError(
            f"{name!r} is not an ISO 8601 time with offset: {text!r} "
            "(write '+' in a query string as %2B)"
        ) from None
    if value.utcoffset() is None:
        raise KpiQueryError(f"{name!r} needs a time zone offset (such as +08:00 or Z): {text!r}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise KpiQueryError(f"{name!r} must be from 1970 to 2999") from None


def parse_query(
    *,
    start: str | None,
    end: str | None,
    by: str | None,
    period: str | None,
    now: datetime,
    timezone: str,
) -> KpiQuery:
    """The query of the API's `from`, `to`, `by` (a comma list) and `period` (`KpiQueryError`).

    `to` defaults to `now`, `from` to `DEFAULT_RANGE` before `to`. Naming a `period` groups by
    period even when `by` does not say so; `period` alone defaults to `day`.
    """
    stop = _parse_time("to", end) if end is not None else now
    if start is not None:
        begin = _parse_time("from", start)
    elif stop - EARLIEST < DEFAULT_RANGE:
        raise KpiQueryError("'to' must be from 1970 to 2999")
    else:
        begin = stop - DEFAULT_RANGE
    dimensions: list[Dimension] = []
    text = (by or "").strip()
    for part in text.split(",") if text else ():
        name = part.strip()
        if not name:
            raise KpiQueryError("'by' has an empty item: write e.g. 'category,period'")
        try:
            dimensions.append(Dimension(name))
        except ValueError:
            names = ", ".join(d.value for d in Dimension)
            raise KpiQueryError(f"'by' may name {names}, not {name!r}") from None
    length = Period.DAY
    if period is not None:
        try:
            length = Period(period)
        except ValueError:
            names = ", ".join(p.value for p in Period)
            raise KpiQueryError(f"'period' must be one of {names}, not {period!r}") from None
        if Dimension.PERIOD not in dimensions:
            dimensions.append(Dimension.PERIOD)
    return KpiQuery(begin, stop, tuple(dimensions), length, timezone)


@dataclass(frozen=True, slots=True)
class OrderRow:
    """What the KPIs need of a `work_orders` row."""

    id: int
    category: str
    company: str
    location: str
    source: str = "alarm"
    priority: str = "P3"
    external_deadline: datetime | None = None
    lender_only: str | None = None
    """Set when the caller sees this order only as the company that lent its technician: the
    order then counts only as this company's `lent_handled`."""

    @classmethod
    def of(cls, row: Mapping[str, Any], *, lender_only: str | None = None) -> OrderRow:
        """The order of a database row (a mapping of `work_orders`' columns)."""
        return cls(
            id=int(row["id"]),
            category=str(row["category"]),
            company=str(row["company"]),
            location=str(row["location"]),
            source=str(row["source"]),
            priority=str(row["priority"]),
            external_deadline=row["external_deadline"],
            lender_only=lender_only,
        )


@dataclass(frozen=True, slots=True)
class EventRow:
    """What the KPIs need of a `work_order_events` row."""

    order_id: int
    seq: int
    action: str
    to_state: str
    at: datetime
    data: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> EventRow:
        """The event of a database row (a mapping of `work_order_events`' columns)."""
        data = row["data"]
        return cls(
            order_id=int(row["order_id"]),
            seq=int(row["seq"]),
            action=str(row["action"]),
            to_state=str(row["to_state"]),
            at=row["at"],
            data=data if isinstance(data, Mapping) else {},
        )


@dataclass(frozen=True, slots=True)
class Ratio:
    """A rate as counted: `numerator` of `denominator`."""

    numerator: int = 0
    denominator: int = 0

    @property
    def rate(self) -> float | None:
        """`numerator / denominator`, or None when there is nothing to divide by."""
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True, slots=True)
class StageKpi(Ratio):
    """A stage's completed runs on time (`numerator`) of its completed runs, and the overdue."""

    overdue_open: int = 0
    """Runs not ended by `end` that fell due within the period (超期未处置)."""


@dataclass(frozen=True, slots=True)
class KpiRow:
    """The KPIs of one group; a dimension not grouped by is None."""

    category: str | None
    grid: str | None
    company: str | None
    period: str | None
    """`2026-12-07`, `2026-W50` or `2026-12`."""
    period_start: datetime | None
    """The local start of the period (the range may cover only part of it)."""
    period_end: datetime | None
    opened: int
    cancelled: int
    accepted: int
    closed: int
    stages: Mapping[Stage, StageKpi]
    closure: Ratio
    rework: Ratio
    satisfaction: Ratio
    mean_rating: float | None
    follow_up: Ratio
    mtta_s: float | None
    mttr_s: float | None
    lent_handled: int
    borrowed_handled: int


# --- replaying one order --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageRun:
    """One run of an SLA stage: from the event `started` to the event `ended` (None: running)."""

    stage: Stage
    started: EventRow
    due: datetime | None
    """The due time in force at its end (or now, while running); None while a hold is approved
    or when the SLA table gives none."""
    ended: EventRow | None

    @property
    def completed(self) -> bool:
        """Ended by its stage's own action (`COMPLETES`)."""
        return self.ended is not None and self.ended.action in COMPLETES[self.stage]

    @property
    def on_time(self) -> bool:
        """Ended at or before its due time (a run without a due time is never late)."""
        return self.ended is None or self.due is None or self.ended.at <= self.due


def _due(policy: SlaPolicy, order: OrderRow, stage: Stage, started: datetime) -> datetime | None:
    try:
        return policy.due(
            stage,
            sla_category(order.source, order.category),
            started,
            priority=sla_priority(order.priority),
            deadline=order.external_deadline,
        )
    except (ValueError, KeyError, OverflowError):
        return None


def _resumed(
    policy: SlaPolicy,
    order: OrderRow,
    stage: Stage,
    pause: tuple[datetime, datetime | None],
    at: datetime,
) -> datetime | None:
    """The due time of `stage` resumed at `at`, a hold having stopped it at `pause` (when, due)."""
    approved_at, stopped_due = pause
    if stopped_due is None:
        return _due(policy, order, stage, at)
    calendar = policy.calendar_for(sla_category(order.source, order.category))
    left = max(calendar.working_time_between(approved_at, stopped_due), timedelta(0))
    return calendar.add_working_time(at, left)


def stage_runs(order: OrderRow, history: Sequence[EventRow], policy: SlaPolicy) -> list[StageRun]:
    """The stage runs of an order's `history` (ordered), timed as the work-order service times them.

    A change of state ends the running stage and starts the new state's (`STAGE_OF`) afresh; an
    event that keeps the state keeps the due time. A hold asked for (`hold`), denied (`deny_hold`)
    or withdrawn (`resume` before approval) keeps the handling run and its due time; an approved
    hold (`approve_hold`) stops its clock and `resume` restarts it with the working time that was
    left at the approval (`lifecycle.SlaClock`).
    """
    runs: list[StageRun] = []
    state: str | None = None
    run: tuple[Stage, EventRow] | None = None
    due: datetime | None = None
    pause: tuple[datetime, datetime | None] | None = None
    for event in history:
        action = event.action
        if run is not None and action == _APPROVE_HOLD and pause is None:
            pause, due = (event.at, due), None
        elif run is not None and action == _RESUME and pause is not None:
            due, pause = _resumed(policy, order, run[0], pause, event.at), None
        elif run is not None and action in _KEEPS_CLOCK and pause is None:
            pass
        elif event.to_state != state:
            if run is not None:
                runs.append(StageRun(run[0], run[1], due, event))
            stage = _STAGE_BY_NAME.get(event.to_state)
            run = None if stage is None else (stage, event)
            due = None if stage is None else _due(policy, order, stage, event.at)
            pause = None
        state = event.to_state
    if run is not None:
        runs.append(StageRun(run[0], run[1], due, None))
    return runs


def _rating(event: EventRow) -> int | None:
    value = event.data.get("rating")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _lender(order: OrderRow, history: Sequence[EventRow], before_seq: int) -> str | None:
    """The company that lent the technician of the latest dispatch before `before_seq`, if any."""
    dispatches = [e for e in history if e.action == Action.DISPATCH.value and e.seq < before_seq]
    if not dispatches:
        return None
    data = dispatches[-1].data
    company = data.get("assignee_company")
    if data.get("loan_id") is None or not isinstance(company, str):
        return None
    company = company.strip()
    return company if company and company != order.company else None


# --- the tallies --------------------------------------------------------------------------------

_Key = tuple[str | None, str | None, str | None, datetime | None]


@dataclass(slots=True)
class _Tally:
    opened: int = 0
    cancelled: int = 0
    accepted: int = 0
    accept_s: float = 0.0
    closed: int = 0
    closed_on_time: int = 0
    repair_s: float = 0.0
    reworked: int = 0
    rated: int = 0
    satisfied: int = 0
    rating_sum: int = 0
    followed_up: int = 0
    lent: int = 0
    borrowed: int = 0
    on_time: dict[Stage, int] = field(default_factory=lambda: dict.fromkeys(Stage, 0))
    ended: dict[Stage, int] = field(default_factory=lambda: dict.fromkeys(Stage, 0))
    overdue: dict[Stage, int] = field(default_factory=lambda: dict.fromkeys(Stage, 0))


def _period_start(day: date, period: Period, zone: ZoneInfo) -> datetime:
    """The local start of the period holding the local `day`."""
    if period is Period.WEEK:
        day -= timedelta(days=day.weekday())
    elif period is Period.MONTH:
        day = day.replace(day=1)
    return datetime.combine(day, time(), tzinfo=zone)


def _period_after(start: datetime, query: KpiQuery) -> datetime:
    day = start.date()
    if query.period is Period.DAY:
        day += timedelta(days=1)
    elif query.period is Period.WEEK:
        day += timedelta(days=7)
    else:
        day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return datetime.combine(day, time(), tzinfo=query.zone)


def _period_label(start: datetime, query: KpiQuery) -> str:
    if query.period is Period.DAY:
        return start.date().isoformat()
    if query.period is Period.WEEK:
        year, week, _ = start.date().isocalendar()
        return f"{year}-W{week:02d}"
    return f"{start.year:04d}-{start.month:02d}"


def grid_of(location: str) -> str:
    """The location cut at the grid level (the whole path when it stops above the grid)."""
    try:
        return escalation_target(location, "grid")
    except ValueError:
        return location.strip().strip("/")


class _Tallies:
    """The tallies by group key of one computation."""

    def __init__(self, query: KpiQuery) -> None:
        self.query = query
        self.groups: dict[_Key, _Tally] = {}
        self._zone = query.zone
        self._category = Dimension.CATEGORY in query.by
        self._grid = Dimension.GRID in query.by
        self._company = Dimension.COMPANY in query.by
        self._period = Dimension.PERIOD in query.by
        self._grids: dict[str, str] = {}
        self._periods: dict[date, datetime] = {}

    def of(self, order: OrderRow, when: datetime, company: str | None = None) -> _Tally:
        """The tally of `order`'s group at `when` (in the row of `company` when given)."""
        grid: str | None = None
        if self._grid:
            grid = self._grids.get(order.location)
            if grid is None:
                grid = self._grids[order.location] = grid_of(order.location)
        start: datetime | None = None
        if self._period:
            day = when.astimezone(self._zone).date()
            start = self._periods.get(day)
            if start is None:
                start = self._periods[day] = _period_start(day, self.query.period, self._zone)
        key: _Key = (
            order.category if self._category else None,
            grid,
            (company or order.company) if self._company else None,
            start,
        )
        tally = self.groups.get(key)
        if tally is None:
            tally = self.groups[key] = _Tally()
        return tally


def _measure(
    order: OrderRow, history: Sequence[EventRow], policy: SlaPolicy, tallies: _Tallies
) -> None:
    """Count one order's figures (its `history` is ordered and cut at the query's end)."""
    query = tallies.query
    opened = next((e for e in history if e.action == OPEN_ACTION), None)
    if opened is None:
        return
    runs = stage_runs(order, history, policy)
    if order.lender_only is not None:
        _count_lent(order, history, runs, tallies)
        return
    if query.covers(opened.at):
        tallies.of(order, opened.at).opened += 1
    cancel = next((e for e in history if e.to_state == State.CANCELLED.value), None)
    if cancel is not None:
        if query.covers(cancel.at):
            tallies.of(order, cancel.at).cancelled += 1
        return
    _count_runs(order, history, runs, tallies)
    accept = next((e for e in history if e.action == Action.ACCEPT.value), None)
    if accept is not None and query.covers(accept.at):
        tally = tallies.of(order, accept.at)
        tally.accepted += 1
        tally.accept_s += (accept.at - opened.at).total_seconds()
    closures = [e for e in history if e.to_state == State.CLOSED.value]
    if closures and query.covers(closures[-1].at):
        _count_closure(
            order, history, runs, (opened, closures[-1]), tallies.of(order, closures[-1].at)
        )


def _count_lent(
    order: OrderRow, history: Sequence[EventRow], runs: Sequence[StageRun], tallies: _Tallies
) -> None:
    """An order seen only as the lender's: its handlings by the lender's technician."""
    for run in runs:
        ended = run.ended
        if run.stage is Stage.HANDLING and run.completed and ended is not None:
            lender = _lender(order, history, ended.seq)
            if lender == order.lender_only and tallies.query.covers(ended.at):
                tallies.of(order, ended.at, lender).lent += 1


def _count_runs(
    order: OrderRow, history: Sequence[EventRow], runs: Sequence[StageRun], tallies: _Tallies
) -> None:
    """Completed stages (on time or not), overdue runs still going, and lent handlings."""
    for run in runs:
        ended = run.ended
        if ended is None:
            if run.due is not None and tallies.query.covers(run.due):
                tallies.of(order, run.due).overdue[run.stage] += 1
            continue
        if not (run.completed and tallies.query.covers(ended.at)) or run.due is None:
            continue
        tally = tallies.of(order, ended.at)
        tally.ended[run.stage] += 1
        tally.on_time[run.stage] += run.on_time
        if run.stage is Stage.HANDLING:
            lender = _lender(order, history, ended.seq)
            if lender is not None:
                tally.borrowed += 1
                tallies.of(order, ended.at, lender).lent += 1


def _count_closure(
    order: OrderRow,
    history: Sequence[EventRow],
    runs: Sequence[StageRun],
    span: tuple[EventRow, EventRow],
    tally: _Tally,
) -> None:
    opened, closure = span
    tally.closed += 1
    tally.repair_s += (closure.at - opened.at).total_seconds()
    stages_on_time = all(
        r.on_time for r in runs if r.ended is not None and r.ended.seq <= closure.seq
    )
    deadline = order.external_deadline
    own_deadline = deadline is not None and closure.at <= deadline
    tally.closed_on_time += stages_on_time or own_deadline
    tally.reworked += any(e.to_state == State.REWORK.value for e in history)
    ratings = [
        r for e in history if e.action == Action.RATE.value and (r := _rating(e)) is not None
    ]
    if ratings:
        tally.rated += 1
        tally.satisfied += ratings[-1] >= SATISFIED_MIN
        tally.rating_sum += ratings[-1]
    tally.followed_up += any(e.action == Action.FOLLOW_UP.value for e in history)


# --- the whole computation ----------------------------------------------------------------------


def compute(
    orders: Iterable[OrderRow],
    events: Iterable[EventRow],
    policy: SlaPolicy,
    query: KpiQuery,
) -> list[KpiRow]:
    """The KPI rows of `orders` from their `events`, grouped as `query` says (see the module text).

    Events of orders not in `orders`, and events at or after `query.end`, are ignored. Rows come
    sorted by their group, dimension by dimension in the order of `query.by`; a group without any
    figure is left out, except that an ungrouped query always has its one row.
    """
    histories: dict[int, list[EventRow]] = defaultdict(list)
    for event in events:
        if event.at < query.end:
            histories[event.order_id].append(event)
    tallies = _Tallies(query)
    for order in orders:
        history = sorted(histories.get(order.id, ()), key=lambda e: e.seq)
        if history:
            _measure(order, history, policy, tallies)
    if not query.by and not tallies.groups:
        tallies.groups[(None, None, None, None)] = _Tally()
    ordered = sorted(tallies.groups.items(), key=lambda item: _sort_key(item[0], query.by))
    return [_row(key, tally, query) for key, tally in ordered]


def _sort_key(key: _Key, by: Sequence[Dimension]) -> tuple[str, ...]:
    """The group's values in the order of `by` (a period by its start, which sorts as text)."""
    category, grid, company, start = key
    values = {
        Dimension.CATEGORY: category or "",
        Dimension.GRID: grid or "",
        Dimension.COMPANY: company or "",
        Dimension.PERIOD: "" if start is None else start.astimezone(UTC).isoformat(),
    }
    return tuple(values[d] for d in by)


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


def _row(key: _Key, tally: _Tally, query: KpiQuery) -> KpiRow:
    category, grid, company, start = key
    return KpiRow(
        category=category,
        grid=grid,
        company=company,
        period=None if start is None else _period_label(start, query),
        period_start=start,
        period_end=None if start is None else _period_after(start, query),
        opened=tally.opened,
        cancelled=tally.cancelled,
        accepted=tally.accepted,
        closed=tally.closed,
        stages={
            stage: StageKpi(tally.on_time[stage], tally.ended[stage], tally.overdue[stage])
            for stage in Stage
        },
        closure=Ratio(tally.closed_on_time, tally.closed),
        rework=Ratio(tally.reworked, tally.closed),
        satisfaction=Ratio(tally.satisfied, tally.rated),
        mean_rating=_mean(tally.rating_sum, tally.rated),
        follow_up=Ratio(tally.followed_up, tally.closed),
        mtta_s=_mean(tally.accept_s, tally.accepted),
        mttr_s=_mean(tally.repair_s, tally.closed),
        lent_handled=tally.lent,
        borrowed_handled=tally.borrowed,
    )
