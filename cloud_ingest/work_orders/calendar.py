"""Working-hours calendars: how much working time lies between two instants, and when it runs out.

A `WorkingCalendar` knows the working hours of a week in one time zone (by default Monday to Friday
09:00-18:00 with a lunch break 12:00-13:00, Asia/Shanghai), the public holidays (no working time)
and the make-up working days (调休: a Saturday or Sunday worked in exchange for a holiday, with the
hours of an ordinary working day). `WALL_TIME` is the 24/7 calendar of categories that run on wall
time (fire, an open manhole). Both answer the same two questions:

- `add_working_time(start, duration)`: the instant at which `duration` of working time, counted
  from `start`, has passed. A zero duration gives `start`; otherwise the result always lies inside
  a working period or at its end (a limit that runs out at 18:00 is due at 18:00, not at 09:00 the
  next working day).
- `working_time_between(a, b)`: the working time in `[a, b]`; negative when `b` is before `a`.

For `d >= 0`, `working_time_between(s, add_working_time(s, d)) == d`. Every instant taken and
returned is tz-aware; results are in UTC. Nothing here reads a clock.

Calendars are read from YAML (`load_calendar`); `cn-2026.yaml` next to this module holds the 2026
public holidays of mainland China. A broken file gives a `CalendarError` whose lines are `FILE:LINE:
key: reason`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Final, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from core.issues import Issue
from core.schema_issues import schema_issues
from core.yaml_located import YamlError, load_file

__all__ = [
    "CN_2026",
    "DEFAULT_TIMEZONE",
    "WALL_TIME",
    "Calendar",
    "CalendarError",
    "WallTime",
    "WorkingCalendar",
    "WorkingWeek",
    "default_calendar",
    "load_calendar",
]

DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
CN_2026: Final = Path(__file__).with_name("calendars") / "cn-2026.yaml"
"""The shipped calendar: mainland China, 2026 (国办发明电 of 2025-11-04)."""
MAX_SPAN_DAYS: Final = 3 * 366
"""How many calendar days `add_working_time` searches before it refuses (a duration too long)."""

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ZERO: Final = timedelta(0)
_MAX_SPAN_ENTRY_DAYS: Final = 366
_HHMM: Final = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


class CalendarError(ValueError):
    """A calendar file could not be loaded; `issues` locate each problem (file:line)."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        """Keep every problem; the message lists them one per line."""
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class Calendar(Protocol):
    """What SLA arithmetic needs of a calendar: working time forwards and between two instants."""

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of working time counted from `start` has passed."""
        ...

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """The working time from `a` to `b` (negative when `b` is before `a`)."""
        ...


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        msg = f"a calendar needs tz-aware times (e.g. +08:00 or UTC), not {when.isoformat()}"
        raise ValueError(msg)
    return when.astimezone(UTC)


def _non_negative(duration: timedelta) -> None:
    if duration < _ZERO:
        msg = f"a duration of working time cannot be negative: {duration}"
        raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class WallTime:
    """The 24/7 calendar: every instant is working time."""

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """`start + duration`, in UTC."""
        _non_negative(duration)
        return _utc(start) + duration

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """`b - a`."""
        return _utc(b) - _utc(a)


WALL_TIME: Final = WallTime()
"""The wall-time calendar, for categories that are urgent around the clock."""


Period = tuple[int, int]
"""Working time within a day: from-minute and to-minute after local midnight (to may be 1440)."""


@dataclass(frozen=True, slots=True)
class WorkingWeek:
    """The working periods of an ordinary week, by weekday (Monday = 0), in minutes of the day."""

    days: tuple[tuple[Period, ...], ...]

    @classmethod
    def standard(
        cls,
        *,
        working_days: Iterable[int] = range(5),
        hours: Period = (9 * 60, 18 * 60),
        lunch: Period | None = (12 * 60, 13 * 60),
    ) -> WorkingWeek:
        """The same hours on each of `working_days`, minus `lunch` (which must lie inside them)."""
        periods = _split(hours, lunch)
        wanted = set(working_days)
        return cls(tuple(periods if day in wanted else () for day in range(7)))

    @property
    def workday(self) -> tuple[Period, ...]:
        """The hours of a make-up working day: those of the first weekday that has any."""
        return next((p for p in self.days if p), ())

    @property
    def workday_length(self) -> timedelta:
        """The working time of one ordinary working day (what "1 working day" means in a limit)."""
        return timedelta(minutes=sum(end - start for start, end in self.workday))


def _split(hours: Period, lunch: Period | None) -> tuple[Period, ...]:
    start, end = hours
    if not 0 <= start < end <= 24 * 60:
        msg = "working hours must start before they end, within one day"
        raise ValueError(msg)
    if lunch is None:
        return ((start, end),)
    lunch_start, lunch_end = lunch
    if not start < lunch_start < lunch_end < end:
        msg = "the lunch break must start after the working hours start and end before they end"
        raise ValueError(msg)
    return ((start, lunch_start), (lunch_end, end))


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """Working hours of a week in a time zone, with public holidays and make-up working days."""

    week: WorkingWeek = field(default_factory=WorkingWeek.standard)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    holidays: frozenset[date] = frozenset()
    """Days without working time, whatever their weekday."""
    makeup_days: frozenset[date] = frozenset()
    """Days worked with the hours of an ordinary working day, whatever their weekday (调休)."""
    name: str = ""
    names: Mapping[date, str] = field(default_factory=dict)
    """What each listed holiday or make-up day is for (for display)."""

    def __post_init__(self) -> None:
        """Refuse a calendar without any working time (nothing would ever fall due)."""
        if not any(self.week.days) and not self.makeup_days:
            msg = "a working calendar needs at least one working day a week"
            raise ValueError(msg)
        both = self.holidays & self.makeup_days
        if both:
            msg = f"a day cannot be both a holiday and a make-up working day: {min(both)}"
            raise ValueError(msg)

    def periods(self, day: date) -> tuple[Period, ...]:
        """The working periods of a local calendar day (empty on holidays and days off)."""
        if day in self.holidays:
            return ()
        if day in self.makeup_days:
            return self.week.workday
        return self.week.days[day.weekday()]

    def is_working_day(self, day: date) -> bool:
        """Whether a local calendar day has any working time."""
        return bool(self.periods(day))

    def is_working_time(self, when: datetime) -> bool:
        """Whether `when` lies inside a working period (start included, end excluded)."""
        at = _utc(when)
        return any(s <= at < e for s, e in self._intervals(at.astimezone(self.timezone).date()))

    def _intervals(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The working periods of `day` as UTC instants, in order."""
        midnight = datetime.combine(day, time(0), tzinfo=self.timezone)
        for start, end in self.periods(day):
            begin = _local(midnight, start, self.timezone)
            finish = _local(midnight, end, self.timezone)
            if finish > begin:  # a period swallowed by a daylight-saving jump is skipped
                yield begin, finish

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` (not negative) of working time from `start` has passed.

        Raises `ValueError` for a naive `start`, a negative duration, or one that does not fit in
        `MAX_SPAN_DAYS` calendar days.
        """
        _non_negative(duration)
        cursor = _utc(start)
        if duration == _ZERO:
            return cursor
        left = duration
        day = cursor.astimezone(self.timezone).date()
        for _ in range(MAX_SPAN_DAYS):
            for begin, finish in self._intervals(day):
                if finish <= cursor:
                    continue
                opens = max(begin, cursor)
                available = finish - opens
                if left <= available:
                    return opens + left
                left -= available
            day += timedelta(days=1)
        msg = f"{duration} of working time does not fit in {MAX_SPAN_DAYS} days from {start}"
        raise ValueError(msg)

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """The working time from `a` to `b`; negative when `b` is before `a`."""
        first, last = _utc(a), _utc(b)
        if last < first:
            return -self.working_time_between(last, first)
        total = _ZERO
        day = first.astimezone(self.timezone).date()
        end_day = last.astimezone(self.timezone).date()
        while day <= end_day:
            for begin, finish in self._intervals(day):
                overlap = min(finish, last) - max(begin, first)
                if overlap > _ZERO:
                    total += overlap
            day += timedelta(days=1)
        return total


def _local(midnight: datetime, minutes: int, zone: ZoneInfo) -> datetime:
    """`minutes` after local midnight as a UTC instant (24:00 is the next midnight)."""
    if minutes >= 24 * 60:
        next_day = midnight.date() + timedelta(days=1)
        return datetime.combine(next_day, time(0), tzinfo=zone).astimezone(UTC)
    wall = midnight.replace(hour=minutes // 60, minute=minutes % 60)
    return wall.astimezone(UTC)


# --- the YAML file ---


def _minutes(text: str) -> int:
    match = _HHMM.match(text.strip())
    if match is None or (match.group(1) == "24" and match.group(2) != "00"):
        msg = f"not a time of day: {text!r} (use HH:MM, e.g. 09:00; 24:00 ends a day)"
        raise ValueError(msg)
    return int(match.group(1)) * 60 + int(match.group(2))


def _period(value: object) -> object:
    if not isinstance(value, str):
        return value
    start, dash, end = value.partition("-")
    if not dash:
        msg = f"not a span of time: {value!r} (use HH:MM-HH:MM, e.g. 09:00-18:00)"
        raise ValueError(msg)
    first, last = _minutes(start), _minutes(end)
    if first >= last:
        msg = f"{value!r} ends before it starts"
        raise ValueError(msg)
    return (first, last)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Span = Annotated[tuple[int, int], BeforeValidator(_period)]


class _Day(BaseModel):
    """A holiday or make-up day: one `date`, or `from` .. `to` (both included)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=False)

    name: str = ""
    date_: date | None = Field(default=None, alias="date")
    from_: date | None = Field(default=None, alias="from")
    to: date | None = None

    @model_validator(mode="after")
    def _one_form(self) -> _Day:
        if self.date_ is not None and (self.from_ is not None or self.to is not None):
            msg = "give either date or from/to, not both"
            raise ValueError(msg)
        if self.date_ is None and (self.from_ is None or self.to is None):
            msg = "give a date, or both from and to"
            raise ValueError(msg)
        if self.from_ is not None and self.to is not None:
            if self.to < self.from_:
                msg = "to is before from"
                raise ValueError(msg)
            if (self.to - self.from_).days > _MAX_SPAN_ENTRY_DAYS:
                msg = "a span of days is at most a year"
                raise ValueError(msg)
        return self

    def days(self) -> Iterator[date]:
        if self.date_ is not None:
            yield self.date_
            return
        day, last = self.from_, self.to
        while day is not None and last is not None and day <= last:
            yield day
            day += timedelta(days=1)


def _mon_to_fri() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


class _CalendarFile(BaseModel):
    """The schema of a calendar file."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    timezone: str = DEFAULT_TIMEZONE
    working_days: list[Weekday] = Field(default_factory=_mon_to_fri)
    hours: Span = (9 * 60, 18 * 60)
    lunch: Span | None = (12 * 60, 13 * 60)
    holidays: list[_Day] = Field(default_factory=list)
    makeup_days: list[_Day] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> _CalendarFile:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {self.timezone!r} (an IANA name such as Asia/Shanghai)"
            raise ValueError(msg) from None
        _split(self.hours, self.lunch)
        return self


def load_calendar(path: str | os.PathLike[str]) -> WorkingCalendar:
    """Read a calendar file (see `calendars/cn-2026.yaml` for the format).

    Raises:
        CalendarError: the file is unreadable, not YAML, or breaks the schema; every problem is
            reported at its line.
    """
    filename = os.fspath(path)
    try:
        doc = load_file(path)
    except YamlError as err:
        raise CalendarError(err.issues) from None
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise CalendarError([Issue(filename, doc.line_of(()), "expected a mapping")])
    try:
        spec = _CalendarFile.model_validate(data)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        raise CalendarError(schema_issues(errors, doc, filename, _CalendarFile)) from None
    issues: list[Issue] = []
    holidays = _collect(spec.holidays, "holidays", doc.line_of, filename, issues)
    makeup = _collect(spec.makeup_days, "makeup_days", doc.line_of, filename, issues)
    for day in sorted(holidays.keys() & makeup.keys()):
        line = doc.line_of(("makeup_days", makeup[day][1]))
        issues.append(Issue(filename, line, f"{day} is also listed as a holiday"))
    week = WorkingWeek.standard(
        working_days=(WEEKDAYS.index(d) for d in spec.working_days),
        hours=spec.hours,
        lunch=spec.lunch,
    )
    if not any(week.days) and not makeup:
        issues.append(Issue(filename, doc.line_of(("working_days",)), "no working day at all"))
    if issues:
        raise CalendarError(issues)
    return WorkingCalendar(
        week=week,
        timezone=ZoneInfo(spec.timezone),
        holidays=frozenset(holidays),
        makeup_days=frozenset(makeup),
        name=spec.name or Path(filename).stem,
        names={day: name for day, (name, _) in (holidays | makeup).items()},
    )


def _collect(
    entries: list[_Day],
    key: str,
    line_of: _LineOf,
    filename: str,
    issues: list[Issue],
) -> dict[date, tuple[str, int]]:
    """Each listed day with its name and entry index; a day listed twice is an issue."""
    seen: dict[date, tuple[str, int]] = {}
    for index, entry in enumerate(entries):
        for day in entry.days():
            if day in seen:
                message = f"{key}: {day} is listed twice"
                issues.append(Issue(filename, line_of((key, index)), message))
            seen[day] = (entry.name, index)
    return seen


class _LineOf(Protocol):
    def __call__(self, loc: tuple[str | int, ...], /) -> int: ...


@functools.cache
def default_calendar() -> WorkingCalendar:
    """The shipped calendar (`CN_2026`), read once."""
    return load_calendar(CN_2026)
