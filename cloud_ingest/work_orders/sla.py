"""SLA limits: how long each stage of a work order may take, per category, and when it falls due.

A work order passes five timed stages (`Stage`): acceptance (from creation to 受理), dispatch (from
acceptance to 派单), arrival (from dispatch to on site), handling (from arrival to the result) and
verification (from the result to 核查). Each category has a limit per stage and a clock: `wall`
(24/7: fire, an open manhole) or `working` (the working-hours calendar, holidays skipped). A
category may tighten or loosen limits per priority, and may name the stage an outside deadline
replaces (a 12345 complaint arrives with the hotline's own deadline for handling).

The table is read from YAML (`sla_defaults.yaml` next to this module is the shipped one):

    calendar: calendars/cn-2026.yaml     # the working calendar, relative to this file
    categories:
      default:                           # required; any category not listed uses it
        acceptance: 30m                  # a duration (45s, 30m, 2h, 1d) ...
        handling: 2wd                    # ... or working days (the length of an ordinary working day)
      fire:
        clock: wall                      # wall | working (default: working)
        acceptance: 2m                   # stages not given come from `default`
        priorities: {low: {handling: 8h}}
      hotline_12345:
        deadline_stage: handling         # an order's own deadline replaces this stage's limit

Every problem in the file is reported as `FILE:LINE: key: reason` (`SlaError`). The functions are
pure: time is always an argument.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cloud_ingest.work_orders.calendar import (
    WALL_TIME,
    Calendar,
    CalendarError,
    WorkingCalendar,
    default_calendar,
    load_calendar,
)
from core.durations import parse_duration
from core.issues import Issue
from core.schema_issues import schema_issues
from core.types import Priority
from core.yaml_located import Located, YamlError, load_file

__all__ = [
    "DEFAULT_CATEGORY",
    "SLA_DEFAULTS",
    "CategorySla",
    "ClockMode",
    "SlaError",
    "SlaPolicy",
    "Stage",
    "breached",
    "default_policy",
    "due",
    "load_sla",
    "remaining",
]

SLA_DEFAULTS: Final = Path(__file__).with_name("sla_defaults.yaml")
DEFAULT_CATEGORY: Final = "default"
"""The entry that unlisted categories use, and from which listed ones inherit missing stages."""
MAX_WORKING_DAYS: Final = 250.0
_WORKING_DAYS: Final = re.compile(r"^(\d+(?:\.\d+)?)wd$")


class Stage(StrEnum):
    """A timed stage of a work order, named by what ends it."""

    ACCEPTANCE = "acceptance"
    DISPATCH = "dispatch"
    ARRIVAL = "arrival"
    HANDLING = "handling"
    VERIFICATION = "verification"


class ClockMode(StrEnum):
    """How a category's limits are counted."""

    WALL = "wall"
    """Around the clock."""
    WORKING = "working"
    """Working hours of the calendar only (holidays and nights do not count)."""


class SlaError(ValueError):
    """An SLA table could not be loaded; `issues` locate each problem (file:line)."""

    def __init__(self, issues: list[Issue] | tuple[Issue, ...]) -> None:
        """Keep every problem; the message lists them one per line."""
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


@dataclass(frozen=True, slots=True)
class CategorySla:
    """The limits of one category, every stage filled in."""

    category: str
    clock: ClockMode
    limits: Mapping[Stage, timedelta]
    priority_limits: Mapping[str, Mapping[Stage, timedelta]] = field(default_factory=dict)
    deadline_stage: Stage | None = None
    """The stage whose limit an order's own deadline (e.g. from the 12345 hotline) replaces."""

    def limit(self, stage: Stage | str, priority: str | None = None) -> timedelta:
        """The limit of `stage`, for `priority` where the category sets one."""
        step = Stage(stage)
        override = self.priority_limits.get(priority or "", {})
        return override.get(step, self.limits[step])


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """The SLA table and the working calendar its `working` categories count on."""

    categories: Mapping[str, CategorySla]
    calendar: WorkingCalendar

    def __post_init__(self) -> None:
        """Refuse a table without the `default` entry."""
        if DEFAULT_CATEGORY not in self.categories:
            msg = f"an SLA table needs a {DEFAULT_CATEGORY!r} category"
            raise ValueError(msg)

    def for_category(self, category: str) -> CategorySla:
        """The limits of `category`, or of `default` when it is not listed."""
        return self.categories.get(category) or self.categories[DEFAULT_CATEGORY]

    def calendar_for(self, category: str) -> Calendar:
        """The calendar a category's limits are counted on."""
        wall = self.for_category(category).clock is ClockMode.WALL
        return WALL_TIME if wall else self.calendar

    def limit(self, stage: Stage | str, category: str, priority: str | None = None) -> timedelta:
        """The limit of a stage for a category (and priority)."""
        return self.for_category(category).limit(stage, priority)

    def due(
        self,
        stage: Stage | str,
        category: str,
        started_at: datetime,
        *,
        priority: str | None = None,
        deadline: datetime | None = None,
    ) -> datetime:
        """When `stage`, begun at `started_at`, falls due (UTC).

        `deadline` (tz-aware), where given, replaces the limit of the category's `deadline_stage`
        and is ignored for other stages and categories.
        """
        sla = self.for_category(category)
        step = Stage(stage)
        if deadline is not None and step is sla.deadline_stage:
            return WALL_TIME.add_working_time(deadline, timedelta(0))
        return self.calendar_for(category).add_working_time(started_at, sla.limit(step, priority))

    def breached(
        self,
        stage: Stage | str,
        category: str,
        started_at: datetime,
        now: datetime,
        *,
        priority: str | None = None,
        deadline: datetime | None = None,
    ) -> bool:
        """Whether `stage`, begun at `started_at` and not finished, is overdue at `now`.

        An order is on time up to and including its due instant.
        """
        when = self.due(stage, category, started_at, priority=priority, deadline=deadline)
        return WALL_TIME.working_time_between(when, now) > timedelta(0)

    def remaining(
        self,
        stage: Stage | str,
        category: str,
        started_at: datetime,
        now: datetime,
        *,
        priority: str | None = None,
        deadline: datetime | None = None,
    ) -> timedelta:
        """The time left at `now` until the stage falls due, on the category's calendar.

        Negative once overdue (by how much working time, for a `working` category).
        """
        when = self.due(stage, category, started_at, priority=priority, deadline=deadline)
        return self.calendar_for(category).working_time_between(now, when)


# --- the YAML file ---


@dataclass(frozen=True, slots=True)
class _Limit:
    """A limit as written: seconds, or working days (converted once the calendar is known)."""

    amount: float
    working_days: bool

    def as_timedelta(self, calendar: WorkingCalendar) -> timedelta:
        if self.working_days:
            return calendar.week.workday_length * self.amount
        return timedelta(seconds=self.amount)


def _limit(value: object) -> object:
    if isinstance(value, _Limit):
        return value
    if isinstance(value, str) and (match := _WORKING_DAYS.match(value.strip())):
        days = float(match.group(1))
        if not 0 < days <= MAX_WORKING_DAYS:
            msg = f"working days must be more than 0 and at most {MAX_WORKING_DAYS:g}: {value!r}"
            raise ValueError(msg)
        return _Limit(days, working_days=True)
    seconds = parse_duration(value)
    if seconds <= 0 or not math.isfinite(seconds):
        msg = f"a limit must be longer than 0: {value!r}"
        raise ValueError(msg)
    return _Limit(seconds, working_days=False)


Limit = Annotated[_Limit, BeforeValidator(_limit)]


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    acceptance: Limit | None = None
    dispatch: Limit | None = None
    arrival: Limit | None = None
    handling: Limit | None = None
    verification: Limit | None = None


class _Category(_Limits):
    clock: ClockMode | None = None
    deadline_stage: Stage | None = None
    priorities: dict[Priority, _Limits] = Field(default_factory=dict)


class _SlaFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calendar: str | None = None
    categories: dict[str, _Category]


def load_sla(path: str | os.PathLike[str], *, calendar: WorkingCalendar | None = None) -> SlaPolicy:
    """Read an SLA table (see the module docstring for the format).

    `calendar` replaces the file's `calendar` (the shipped one when neither names any).

    Raises:
        SlaError: the file or its calendar cannot be read, or breaks the schema; every problem is
            reported at its line.
    """
    filename = os.fspath(path)
    try:
        doc = load_file(path)
    except YamlError as err:
        raise SlaError(err.issues) from None
    if not isinstance(doc.data, dict):
        raise SlaError([Issue(filename, doc.line_of(()), "expected a mapping with `categories`")])
    try:
        spec = _SlaFile.model_validate(doc.data)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        raise SlaError(list(schema_issues(errors, doc, filename, _SlaFile))) from None
    if calendar is None:
        calendar = _file_calendar(spec, doc, filename)
    categories, issues = _categories(spec, doc, filename, calendar)
    if issues:
        raise SlaError(issues)
    return SlaPolicy(categories, calendar)


def _file_calendar(spec: _SlaFile, doc: Located, filename: str) -> WorkingCalendar:
    if spec.calendar is None:
        return default_calendar()
    where = Path(filename).parent / spec.calendar
    try:
        return load_calendar(where)
    except CalendarError as err:
        line = doc.line_of(("calendar",))
        problems = "; ".join(str(issue) for issue in err.issues)
        raise SlaError([Issue(filename, line, f"calendar: {problems}")]) from None


def _categories(
    spec: _SlaFile, doc: Located, filename: str, calendar: WorkingCalendar
) -> tuple[dict[str, CategorySla], list[Issue]]:
    issues: list[Issue] = []
    base = spec.categories.get(DEFAULT_CATEGORY)
    if base is None:
        message = f"categories: needs a {DEFAULT_CATEGORY!r} entry (used for unlisted categories)"
        return {}, [Issue(filename, doc.line_of(("categories",)), message)]
    for stage in Stage:
        if getattr(base, stage.value) is None:
            where = ("categories", DEFAULT_CATEGORY)
            message = f"categories.{DEFAULT_CATEGORY}: needs a limit for {stage.value}"
            issues.append(Issue(filename, doc.line_of(where), message))
    if issues:
        return {}, issues
    result: dict[str, CategorySla] = {}
    for name, entry in spec.categories.items():
        clock = entry.clock or base.clock or ClockMode.WORKING
        for loc, limits in _written(name, entry):
            for stage in Stage:
                value = getattr(limits, stage.value)
                if value is not None and value.working_days and clock is ClockMode.WALL:
                    message = (
                        f"{'.'.join(map(str, (*loc, stage.value)))}: working days need "
                        "clock: working (this category runs on wall time)"
                    )
                    issues.append(Issue(filename, doc.line_of((*loc, stage.value)), message))
        result[name] = CategorySla(
            category=name,
            clock=clock,
            limits={
                stage: (getattr(entry, stage.value) or getattr(base, stage.value)).as_timedelta(
                    calendar
                )
                for stage in Stage
            },
            priority_limits={
                str(priority): {
                    stage: value.as_timedelta(calendar)
                    for stage in Stage
                    if (value := getattr(limits, stage.value)) is not None
                }
                for priority, limits in entry.priorities.items()
            },
            deadline_stage=entry.deadline_stage,
        )
    return result, issues


def _written(name: str, entry: _Category) -> list[tuple[tuple[str | int, ...], _Limits]]:
    """Each block of limits of a category with its location in the document."""
    blocks: list[tuple[tuple[str | int, ...], _Limits]] = [(("categories", name), entry)]
    blocks += [
        (("categories", name, "priorities", str(priority)), limits)
        for priority, limits in entry.priorities.items()
    ]
    return blocks


@functools.cache
def default_policy() -> SlaPolicy:
    """The shipped table (`SLA_DEFAULTS`) on the shipped calendar, read once."""
    return load_sla(SLA_DEFAULTS)


def due(
    stage: Stage | str,
    category: str,
    started_at: datetime,
    *,
    priority: str | None = None,
    deadline: datetime | None = None,
    policy: SlaPolicy | None = None,
) -> datetime:
    """`SlaPolicy.due` on `policy` (default: the shipped table)."""
    table = policy or default_policy()
    return table.due(stage, category, started_at, priority=priority, deadline=deadline)


def breached(
    stage: Stage | str,
    category: str,
    started_at: datetime,
    now: datetime,
    *,
    priority: str | None = None,
    deadline: datetime | None = None,
    policy: SlaPolicy | None = None,
) -> bool:
    """`SlaPolicy.breached` on `policy` (default: the shipped table)."""
    table = policy or default_policy()
    return table.breached(stage, category, started_at, now, priority=priority, deadline=deadline)


def remaining(
    stage: Stage | str,
    category: str,
    started_at: datetime,
    now: datetime,
    *,
    priority: str | None = None,
    deadline: datetime | None = None,
    policy: SlaPolicy | None = None,
) -> timedelta:
    """`SlaPolicy.remaining` on `policy` (default: the shipped table)."""
    table = policy or default_policy()
    return table.remaining(stage, category, started_at, now, priority=priority, deadline=deadline)
