"""The pure time logic of work orders: clocks, working-hours calendars, SLA limits and escalation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_ingest.clock import Clock, ManualClock, SystemClock
from cloud_ingest.work_orders.calendar import (
    CN_2026,
    WALL_TIME,
    CalendarError,
    WorkingCalendar,
    WorkingWeek,
    default_calendar,
    load_calendar,
)
from cloud_ingest.work_orders.escalation import (
    breach_key,
    escalate_on_breach,
    escalation_due,
    escalation_target,
    next_level,
)
from cloud_ingest.work_orders.sla import (
    SLA_DEFAULTS,
    ClockMode,
    SlaError,
    Stage,
    breached,
    default_policy,
    due,
    load_sla,
    remaining,
)

SH = ZoneInfo("Asia/Shanghai")


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Shanghai wall time."""
    return datetime(year, month, day, hour, minute, tzinfo=SH)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- clocks ---


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(sh(2026, 3, 2, 9, 0))
    assert isinstance(clock, Clock)
    assert clock.now() == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    assert clock.advance(timedelta(minutes=5)) == datetime(2026, 3, 2, 1, 5, tzinfo=UTC)
    assert clock.now() == datetime(2026, 3, 2, 1, 5, tzinfo=UTC)
    assert clock.set(sh(2026, 1, 1, 8, 0)) == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="tz-aware"):
        ManualClock(datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time is the point
    with pytest.raises(ValueError, match="tz-aware"):
        clock.set(datetime(2026, 1, 1))  # noqa: DTZ001


def test_system_clock_is_aware_utc() -> None:
    clock: Clock = SystemClock()
    now = clock.now()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)


# --- the shipped calendar ---


def test_shipped_calendar_has_the_2026_holidays_and_makeup_days() -> None:
    cal = default_calendar()
    assert cal.timezone == SH
    for day in (date(2026, 1, 1), date(2026, 2, 17), date(2026, 4, 6), date(2026, 5, 5)):
        assert not cal.is_working_day(day), day
    for day in (date(2026, 6, 19), date(2026, 9, 25), date(2026, 10, 1), date(2026, 10, 7)):
        assert not cal.is_working_day(day), day
    # 调休: weekend days worked, with the ordinary hours
    for day in (date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9)):
        assert day.weekday() >= 5, day
        assert cal.is_working_day(day), day
    assert cal.is_working_day(date(2026, 9, 20))
    assert cal.is_working_day(date(2026, 10, 10))
    assert cal.periods(date(2026, 9, 20)) == ((540, 720), (780, 1080))
    assert not cal.is_working_day(date(2026, 3, 7))  # an ordinary Saturday
    assert cal.is_working_time(sh(2026, 3, 2, 9, 0))
    assert not cal.is_working_time(sh(2026, 3, 2, 12, 30))  # lunch
    assert not cal.is_working_time(sh(2026, 3, 2, 18, 0))
    assert len(cal.holidays) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert cal.names[date(2026, 2, 17)].startswith("Spring Festival")


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (sh(2026, 3, 6, 17, 0), timedelta(hours=2), sh(2026, 3, 9, 10, 0)),  # Fri -> Mon
        (sh(2026, 3, 2, 11, 30), timedelta(hours=1), sh(2026, 3, 2, 13, 30)),  # over lunch
        (sh(2026, 3, 2, 17, 0), timedelta(hours=1), sh(2026, 3, 2, 18, 0)),  # due at 18:00
        (sh(2026, 3, 2, 11, 0), timedelta(hours=1), sh(2026, 3, 2, 12, 0)),  # due at lunch
        (sh(2026, 3, 7, 20, 0), timedelta(minutes=30), sh(2026, 3, 9, 9, 30)),  # from a Saturday
        (sh(2026, 3, 2, 6, 0), timedelta(hours=3), sh(2026, 3, 2, 12, 0)),  # before opening
        (sh(2026, 2, 13, 17, 0), timedelta(hours=2), sh(2026, 2, 14, 10, 0)),  # make-up Saturday
        (sh(2026, 2, 14, 17, 0), timedelta(hours=2), sh(2026, 2, 24, 10, 0)),  # Spring Festival
        (sh(2026, 9, 30, 17, 0), timedelta(hours=4), sh(2026, 10, 8, 12, 0)),  # National Day
        (sh(2026, 3, 2, 20, 0), timedelta(0), sh(2026, 3, 2, 20, 0)),  # zero: unchanged
    ],
)
def test_add_working_time_examples(
    start: datetime, duration: timedelta, expected: datetime
) -> None:
    result = default_calendar().add_working_time(start, duration)
    assert result == expected
    assert result.tzinfo is UTC


def test_working_time_between_examples() -> None:
    cal = default_calendar()
    # Fri 13 Feb 09:00 -> Mon 2 Mar 09:00: Fri, make-up Sat 14, four days after the festival,
    # make-up Sat 28
    assert cal.working_time_between(sh(2026, 2, 13, 9), sh(2026, 3, 2, 9)) == timedelta(hours=56)
    assert cal.working_time_between(sh(2026, 10, 1, 0), sh(2026, 10, 8, 0)) == timedelta(0)
    assert cal.working_time_between(sh(2026, 3, 2, 18), sh(2026, 3, 2, 11)) == -timedelta(hours=6)
    assert cal.working_time_between(sh(2026, 3, 2, 12, 10), sh(2026, 3, 2, 12, 50)) == timedelta(0)


def test_daylight_saving_changes_count_real_time() -> None:
    assert BERLIN.working_time_between(
        datetime(2026, 3, 29, tzinfo=UTC) - timedelta(hours=1), datetime(2026, 3, 29, 6, tzinfo=UTC)
    ) == timedelta(hours=2)  # 01:00 CET to 04:00 CEST
    assert BERLIN.working_time_between(
        datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 6, tzinfo=UTC)
    ) == timedelta(hours=4)  # 01:00 CEST to 04:00 CET


def test_wall_time_counts_every_minute() -> None:
    assert WALL_TIME.add_working_time(sh(2026, 10, 1, 23), timedelta(hours=2)) == sh(2026, 10, 2, 1)
    assert WALL_TIME.working_time_between(sh(2026, 10, 1), sh(2026, 10, 2)) == timedelta(days=1)


def test_calendar_refuses_naive_times_and_negative_durations() -> None:
    cal = default_calendar()
    with pytest.raises(ValueError, match="tz-aware"):
        cal.add_working_time(datetime(2026, 3, 2, 9), timedelta(hours=1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="tz-aware"):
        cal.working_time_between(sh(2026, 3, 2), datetime(2026, 3, 3))  # noqa: DTZ001
    for calendar in (cal, WALL_TIME):
        with pytest.raises(ValueError, match="negative"):
            calendar.add_working_time(sh(2026, 3, 2), timedelta(seconds=-1))
    with pytest.raises(ValueError, match="does not fit"):
        cal.add_working_time(sh(2026, 3, 2), timedelta(days=2000))
    with pytest.raises(ValueError, match="at least one working day"):
        WorkingCalendar(week=WorkingWeek(((),) * 7))


# --- properties ---

# Daylight saving time: Sunday's 01:00-04:00 shift spans the clock change in March and October.
BERLIN = WorkingCalendar(
    week=WorkingWeek(
        (*WorkingWeek.standard(lunch=None).days[:5], ((0, 120), (1380, 1440)), ((60, 240),))
    ),
    timezone=ZoneInfo("Europe/Berlin"),
    holidays=frozenset({date(2026, 3, 30), date(2026, 10, 26), date(2026, 12, 24)}),
    makeup_days=frozenset({date(2026, 12, 27)}),
)
CALENDARS = st.sampled_from([default_calendar(), BERLIN])
INSTANTS = st.datetimes(
    min_value=datetime(2025, 12, 20),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2027, 1, 10),  # noqa: DTZ001
    timezones=st.just(UTC),
)
DURATIONS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=12))


@settings(max_examples=300, deadline=None)
@given(cal=CALENDARS, start=INSTANTS, duration=DURATIONS)
def test_between_undoes_add(cal: WorkingCalendar, start: datetime, duration: timedelta) -> None:
    end = cal.add_working_time(start, duration)
    assert end >= start
    assert cal.working_time_between(start, end) == duration
    assert cal.working_time_between(end, start) == -duration


@settings(max_examples=300, deadline=None)
@given(cal=CALENDARS, a=INSTANTS, b=INSTANTS)
def test_add_after_between_lands_on_the_last_working_instant(
    cal: WorkingCalendar, a: datetime, b: datetime
) -> None:
    a, b = min(a, b), max(a, b)
    worked = cal.working_time_between(a, b)
    assert worked >= timedelta(0)
    reached = cal.add_working_time(a, worked)
    assert a <= reached <= b
    assert cal.working_time_between(reached, b) == timedelta(0)


@settings(max_examples=300, deadline=None)
@given(cal=CALENDARS, start=INSTANTS, d1=DURATIONS, d2=DURATIONS, shift=DURATIONS)
def test_add_is_monotonic_and_additive(
    cal: WorkingCalendar, start: datetime, d1: timedelta, d2: timedelta, shift: timedelta
) -> None:
    small, large = min(d1, d2), max(d1, d2)
    assert cal.add_working_time(start, small) <= cal.add_working_time(start, large)
    later = start + shift
    assert cal.add_working_time(start, d1) <= cal.add_working_time(later, d1)
    assert cal.add_working_time(cal.add_working_time(start, d1), d2) == cal.add_working_time(
        start, d1 + d2
    )
    mid = cal.add_working_time(start, d1)
    end = cal.add_working_time(start, d1 + d2)
    assert cal.working_time_between(start, mid) + cal.working_time_between(
        mid, end
    ) == cal.working_time_between(start, end)


@settings(max_examples=300, deadline=None)
@given(cal=CALENDARS, start=INSTANTS, duration=DURATIONS)
def test_add_skips_holidays_and_days_off(
    cal: WorkingCalendar, start: datetime, duration: timedelta
) -> None:
    duration += timedelta(microseconds=1)
    end = cal.add_working_time(start, duration)
    just_before = end - timedelta(microseconds=1)
    assert cal.is_working_time(just_before)
    day = just_before.astimezone(cal.timezone).date()
    assert day not in cal.holidays
    assert cal.is_working_day(day)


@settings(max_examples=100, deadline=None)
@given(cal=CALENDARS, day=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)))
def test_a_day_off_holds_no_working_time(cal: WorkingCalendar, day: date) -> None:
    start = datetime.combine(day, datetime.min.time(), tzinfo=cal.timezone)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=cal.timezone)
    worked = cal.working_time_between(start, end)
    if not cal.is_working_day(day):
        assert worked == timedelta(0)
    else:
        assert worked > timedelta(0)


# --- calendar files ---


def test_calendar_file_defaults_and_options(tmp_path: Path) -> None:
    cal = load_calendar(write(tmp_path, "empty.yaml", "# nothing\n"))
    assert cal.name == "empty"
    assert cal.timezone == SH
    assert cal.periods(date(2026, 3, 2)) == ((540, 720), (780, 1080))
    assert cal.periods(date(2026, 3, 7)) == ()
    text = (
        "timezone: Europe/Berlin\nworking_days: [mon, tue, wed, thu, fri, sat]\n"
        'hours: "08:00-24:00"\nlunch: null\nholidays:\n  - {date: 2026-12-25, name: Christmas}\n'
    )
    other = load_calendar(write(tmp_path, "berlin.yaml", text))
    assert other.periods(date(2026, 3, 7)) == ((480, 1440),)
    assert other.periods(date(2026, 12, 25)) == ()
    assert other.names[date(2026, 12, 25)] == "Christmas"
    assert other.add_working_time(
        datetime(2026, 3, 2, 23, 30, tzinfo=other.timezone), timedelta(hours=1)
    ) == datetime(2026, 3, 3, 8, 30, tzinfo=other.timezone)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("hours: 25:00-26:00\n", 1, "hours: not a time of day"),
        ('name: x\nhours: "18:00-09:00"\n', 2, "ends before it starts"),
        ('lunch: "08:00-09:30"\n', 1, "lunch break must start after"),
        ("timezone: Mars/Olympus\n", 1, "unknown time zone"),
        ("working_days: [mon, funday]\n", 1, "working_days.1"),
        ("holdays: []\n", 1, "did you mean holidays?"),
        ("holidays:\n  - {date: 2026-01-01}\n  - {date: 2026-13-01}\n", 3, ""),
        ("holidays:\n  - {from: 2026-01-03, to: 2026-01-01}\n", 2, "to is before from"),
        ("holidays:\n  - {from: 2026-01-03}\n", 2, "give a date, or both from and to"),
        (
            "holidays:\n  - {from: 2026-01-01, to: 2026-01-03}\n  - {date: 2026-01-02}\n",
            3,
            "2026-01-02 is listed twice",
        ),
        (
            "holidays:\n  - {date: 2026-01-02}\nmakeup_days:\n  - {date: 2026-01-02}\n",
            4,
            "also listed as a holiday",
        ),
        ("working_days: []\n", 1, "no working day at all"),
        ("- a list\n", 1, "expected a mapping"),
        ("hours: [09:00\n", 2, "YAML syntax"),
    ],
)
def test_calendar_file_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, "cal.yaml", text)
    with pytest.raises(CalendarError) as caught:
        load_calendar(path)
    where = f"{path}:{line}:"
    assert any(str(issue).startswith(where) for issue in caught.value.issues), caught.value
    assert message in str(caught.value)


def test_shipped_calendar_file_is_the_default() -> None:
    assert load_calendar(CN_2026) == default_calendar()


# --- SLA ---


def test_fire_runs_on_wall_time() -> None:
    start = sh(2026, 10, 1, 23, 0)  # a public holiday, at night
    assert default_policy().for_category("fire").clock is ClockMode.WALL
    assert due(Stage.ACCEPTANCE, "fire", start) == sh(2026, 10, 1, 23, 2)
    assert due("dispatch", "fire", start) == sh(2026, 10, 1, 23, 5)
    assert due("arrival", "fire", start) == sh(2026, 10, 1, 23, 15)
    assert due("handling", "fire", start) == sh(2026, 10, 2, 1, 0)
    assert due("verification", "fire", start) == sh(2026, 10, 2, 23, 0)
    assert due("handling", "manhole_cover", start) == sh(2026, 10, 2, 5, 0)


def test_bin_overflow_runs_on_working_hours() -> None:
    start = sh(2026, 3, 6, 17, 30)  # Friday
    assert default_policy().for_category("sanitation").clock is ClockMode.WORKING
    assert due("acceptance", "sanitation", start) == sh(2026, 3, 6, 18, 0)
    assert due("handling", "sanitation", start) == sh(2026, 3, 9, 13, 30)  # Mon, after lunch
    assert due("handling", "sanitation", start, priority="low") == sh(2026, 3, 9, 17, 30)


def test_breached_and_remaining() -> None:
    start = sh(2026, 3, 6, 17, 30)
    when = due("acceptance", "sanitation", start)
    assert not breached("acceptance", "sanitation", start, when)
    assert breached("acceptance", "sanitation", start, when + timedelta(microseconds=1))
    assert remaining("acceptance", "sanitation", start, start) == timedelta(minutes=30)
    # overdue by working time only: Friday evening to Monday 10:00 is one hour late
    assert remaining("acceptance", "sanitation", start, sh(2026, 3, 9, 10, 0)) == -timedelta(
        hours=1
    )
    fire = sh(2026, 3, 6, 17, 30)
    assert remaining("acceptance", "fire", fire, fire + timedelta(minutes=5)) == -timedelta(
        minutes=3
    )
    assert not breached("acceptance", "fire", fire, fire + timedelta(minutes=2))


def test_unknown_category_uses_default_and_priorities_override() -> None:
    policy = default_policy()
    assert policy.for_category("no-such-category").category == "default"
    assert policy.limit("handling", "no-such-category") == timedelta(hours=16)  # 2 working days
    assert policy.limit("acceptance", "water") == timedelta(minutes=15)
    assert policy.limit("acceptance", "water", "urgent") == timedelta(minutes=5)
    assert policy.limit("verification", "water", "urgent") == timedelta(hours=8)  # inherited
    with pytest.raises(ValueError, match="not a valid Stage"):
        policy.limit("lunch", "water")


def test_hotline_deadline_replaces_the_handling_limit() -> None:
    start = sh(2026, 3, 2, 9, 0)
    deadline = sh(2026, 3, 5, 17, 0)
    assert due("handling", "hotline_12345", start, deadline=deadline) == deadline
    assert due("acceptance", "hotline_12345", start, deadline=deadline) == sh(2026, 3, 2, 10, 0)
    # 13 working days when the hotline gives no deadline
    assert due("handling", "hotline_12345", start) == sh(2026, 3, 18, 18, 0)
    # another category ignores an outside deadline
    assert due("handling", "sanitation", start, deadline=deadline) == sh(2026, 3, 2, 14, 0)
    assert breached("handling", "hotline_12345", start, sh(2026, 3, 5, 17, 1), deadline=deadline)


def test_every_shipped_category_has_every_stage() -> None:
    policy = default_policy()
    assert {"fire", "manhole_cover", "sanitation", "security", "resident_repair"} <= set(
        policy.categories
    )
    for name, sla in policy.categories.items():
        assert set(sla.limits) == set(Stage), name
        assert all(limit > timedelta(0) for limit in sla.limits.values()), name
    assert policy.for_category("fire").clock is ClockMode.WALL
    assert policy.for_category("manhole_cover").clock is ClockMode.WALL
    assert policy.for_category("resident_repair").clock is ClockMode.WORKING


def test_sla_file_with_its_own_calendar(tmp_path: Path) -> None:
    write(tmp_path, "cal.yaml", 'hours: "08:00-12:00"\nlunch: null\n')
    text = (
        "calendar: cal.yaml\ncategories:\n  default:\n    acceptance: 1h\n    dispatch: 1h\n"
        "    arrival: 1h\n    handling: 1wd\n    verification: 2wd\n"
    )
    policy = load_sla(write(tmp_path, "sla.yaml", text))
    assert policy.limit("handling", "x") == timedelta(hours=4)
    assert policy.limit("verification", "x") == timedelta(hours=8)
    other = load_sla(write(tmp_path, "sla.yaml", text), calendar=default_calendar())
    assert other.limit("handling", "x") == timedelta(hours=8)


_DEFAULT = (
    "categories:\n  default:\n    acceptance: 1h\n    dispatch: 1h\n    arrival: 1h\n"
    "    handling: 1h\n    verification: 1h\n"
)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("categories:\n  fire: {acceptance: 2m}\n", 1, "needs a 'default' entry"),
        ("categories:\n  default:\n    acceptance: 1h\n", 2, "needs a limit for dispatch"),
        (_DEFAULT + "  fire:\n    clock: wall\n    handling: 2wd\n", 10, "working days need"),
        (_DEFAULT + "  fire:\n    acceptance: soon\n", 9, "not a duration: 'soon'"),
        (_DEFAULT + "  fire:\n    acceptance: 0s\n", 9, "longer than 0"),
        (_DEFAULT + "  fire:\n    acceptence: 2m\n", 9, "did you mean acceptance?"),
        (_DEFAULT + "  fire:\n    clock: sometimes\n", 9, "categories.fire.clock"),
        (_DEFAULT + "  fire:\n    priorities:\n      p1: {handling: 1h}\n", 10, "p1"),
        (_DEFAULT + "  fire:\n    deadline_stage: lunch\n", 9, "deadline_stage"),
        (_DEFAULT + "  fire:\n    handling: 300wd\n", 9, "at most 250"),
        ("calendar: missing.yaml\n" + _DEFAULT, 1, "calendar: "),
        ("categories: []\n", 1, "categories"),
        ("just text\n", 1, "expected a mapping"),
        ("categories:\n  default: {acceptance: 1h}\n  default: {}\n", 3, "duplicate"),
    ],
)
def test_sla_file_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, "sla.yaml", text)
    with pytest.raises(SlaError) as caught:
        load_sla(path)
    where = f"{path}:{line}:"
    assert any(str(issue).startswith(where) for issue in caught.value.issues), caught.value
    assert message in str(caught.value)


def test_shipped_sla_file_loads() -> None:
    assert load_sla(SLA_DEFAULTS) == default_policy()


# --- escalation ---


def test_levels_climb_grid_community_street_district() -> None:
    assert next_level("grid") == "community"
    assert next_level("community") == "street"
    assert next_level("street") == "district"
    assert next_level("district") is None
    assert next_level("compound") == "grid"
    assert next_level("unit") == "grid"
    with pytest.raises(ValueError, match="unknown level"):
        next_level("planet")


def test_escalation_target_cuts_the_path_at_the_level() -> None:
    path = "huangpu/nanjing-rd/xinhua/g03/c1/b2/u1"
    assert escalation_target(path, "grid") == "huangpu/nanjing-rd/xinhua/g03"
    assert escalation_target(path, "community") == "huangpu/nanjing-rd/xinhua"
    assert escalation_target(path, "street") == "huangpu/nanjing-rd"
    assert escalation_target(path, "district") == "huangpu"
    assert escalation_target("huangpu/nanjing-rd", "grid") == "huangpu/nanjing-rd"
    with pytest.raises(ValueError, match="empty segment"):
        escalation_target("huangpu//x", "street")


def test_escalate_on_breach_decides_one_step() -> None:
    step = escalate_on_breach("grid", "handling")
    assert (step.stage, step.from_level, step.to_level, step.exhausted) == (
        Stage.HANDLING,
        "grid",
        "community",
        False,
    )
    assert step.target("d/s/c/g") == "d/s/c"
    assert step.key(42) == "42:handling:grid"
    assert "grid to community" in step.reason
    top = escalate_on_breach("district", Stage.ARRIVAL)
    assert top.exhausted
    assert top.to_level == "district"
    assert "last level" in top.reason
    with pytest.raises(ValueError, match="not a valid Stage"):
        escalate_on_breach("grid", "coffee")


def test_breach_keys_are_distinct_per_order_stage_and_level() -> None:
    keys = {
        breach_key(order, stage, level)
        for order in (1, 2, "a-1")
        for stage in Stage
        for level in ("grid", "community", "street", "district")
    }
    assert len(keys) == 3 * len(Stage) * 4
    assert breach_key(7, Stage.HANDLING, "grid") == breach_key("7", "handling", "grid")
    with pytest.raises(ValueError, match="without ':'"):
        breach_key("a:b", "handling", "grid")


def test_scheduler_in_two_processes_escalates_one_level_per_limit_and_once() -> None:
    """Two schedulers tick every minute over an unhandled fire; a set stands for the UNIQUE key."""
    clock = ManualClock(sh(2026, 3, 2, 20, 0))
    policy = default_policy()
    started = clock.now()
    stored: set[str] = set()  # the unique constraint
    levels: list[tuple[str, datetime]] = []
    level, escalated_at = "grid", None
    for _ in range(10 * 60):
        clock.advance(timedelta(minutes=1))
        for _process in range(2):
            when = escalation_due(policy, "handling", "fire", started, escalated_at=escalated_at)
            if clock.now() <= when:
                continue
            step = escalate_on_breach(level, "handling")
            key = step.key(99)
            if key in stored:  # the other process committed this escalation
                continue
            stored.add(key)
            if not step.exhausted:
                level = step.to_level
                levels.append((level, clock.now()))
            escalated_at = clock.now()
    # then one more notice at the district (exhausted), once: its key is stored
    assert [name for name, _ in levels] == ["community", "street", "district"]
    assert escalated_at == sh(2026, 3, 3, 4, 4)
    # handling for fire is 2 h: the first escalation one minute after it, then one per 2 h
    assert [at for _, at in levels] == [
        sh(2026, 3, 2, 22, 1),
        sh(2026, 3, 3, 0, 2),
        sh(2026, 3, 3, 2, 3),
    ]
    assert stored == {
        "99:handling:grid",
        "99:handling:community",
        "99:handling:street",
        "99:handling:district",
    }


def test_escalation_due_uses_the_outside_deadline_only_before_the_first_escalation() -> None:
    policy = default_policy()
    start = sh(2026, 3, 2, 9, 0)
    deadline = sh(2026, 3, 3, 9, 0)
    first = escalation_due(policy, "handling", "hotline_12345", start, deadline=deadline)
    assert first == deadline
    after = escalation_due(
        policy,
        "handling",
        "hotline_12345",
        start,
        escalated_at=sh(2026, 3, 3, 9, 1),
        deadline=deadline,
    )
    assert after == policy.calendar.add_working_time(sh(2026, 3, 3, 9, 1), timedelta(hours=104))
