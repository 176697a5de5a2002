"""The telemetry query: a request's time window and step, and the bucketing SQL.

Buckets are computed in SQL on both dialects: the reading's time as whole epoch seconds
(PostgreSQL: `floor(extract(epoch from ts))` of the `timestamptz`; SQLite: `strftime('%s', ts)`
of the naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff` that `UtcDateTime` and the ingest's raw insert
both store), integer-divided by the step and multiplied back. Buckets start at multiples of the
step since the epoch, so a chart that moves its window keeps its buckets. The window is compared
on the stored column itself (`ts >= from AND ts < to`), so the `(device_id, metric, ts)` index
serves it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import BigInteger, ColumnElement, Integer, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.infra.schema import readings
from core.durations import parse_duration

DEFAULT_SPAN: Final = timedelta(hours=24)
"""The window when a request gives neither `from` nor `to`."""
TARGET_POINTS: Final = 500
"""The default step gives at most about this many buckets."""
MAX_BUCKETS: Final = 10_000
"""A request asking for more buckets than this is refused."""
NICE_STEPS_S: Final = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
)  # fmt: skip
"""Default steps, in seconds: the smallest that keeps a window under `TARGET_POINTS` buckets."""


class WindowError(ValueError):
    """A request's `from`, `to` or `step` is not usable (the API answers `400`)."""


@dataclass(frozen=True, slots=True)
class Window:
    """The buckets asked for: `start` (a bucket's start) up to `end` (exclusive), `step_s` each."""

    start: datetime
    end: datetime
    step_s: int

    @property
    def buckets(self) -> int:
        """How many buckets the window spans."""
        return math.ceil((self.end - self.start).total_seconds() / self.step_s)


def parse_time(name: str, text: str) -> datetime:
    """An ISO 8601 time with its offset, in UTC; `WindowError` otherwise."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WindowError(f"'{name}' is not an ISO 8601 time: {text!r}") from None
    if value.utcoffset() is None:
        raise WindowError(f"'{name}' needs an offset (such as +00:00 or Z): {text!r}")
    return value.astimezone(UTC)


def default_step_s(span_s: float) -> int:
    """The smallest nice step that cuts `span_s` into at most `TARGET_POINTS` buckets."""
    wanted = span_s / TARGET_POINTS
    for step in NICE_STEPS_S:
        if step >= wanted:
            return step
    return math.ceil(wanted / 86400) * 86400


def window(start: str | None, end: str | None, step: str | None, *, now: datetime) -> Window:
    """The window of a request's `from`, `to` and `step` (defaults: the last 24 h, ~500 points)."""
    stop = parse_time("to", end) if end is not None else now
    begin = parse_time("from", start) if start is not None else stop - DEFAULT_SPAN
    if begin >= stop:
        raise WindowError("'from' must be before 'to'")
    if step is None:
        step_s = default_step_s((stop - begin).total_seconds())
    else:
        try:
            seconds = parse_duration(step)
        except ValueError as err:
            raise WindowError(f"'step': {err}") from None
        if seconds < 1 or seconds != int(seconds):
            raise WindowError(f"'step' must be a whole number of seconds, 1s or more: {step!r}")
        step_s = int(seconds)
    epoch = int(begin.timestamp())
    aligned = datetime.fromtimestamp(epoch - epoch % step_s, UTC)
    found = Window(aligned, stop, step_s)
    if found.buckets > MAX_BUCKETS:
        raise WindowError(
            f"{found.buckets} buckets of {step_s} s asked for; at most {MAX_BUCKETS}: "
            "use a larger 'step' or a shorter window"
        )
    return found


def epoch_seconds(dialect: str) -> ColumnElement[int]:
    """`readings.ts` as whole seconds since the epoch, in SQL of `dialect`."""
    ts = readings.c.ts
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", ts)), BigInteger)
    if dialect == "sqlite":
        return cast(func.strftime("%s", ts), Integer)
    raise WindowError(f"unsupported database dialect {dialect!r}")


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket's aggregates (`last` is the value of its latest reading)."""

    start_s: int
    avg: float
    min: float
    max: float
    count: int
    last: float


async def buckets(conn: AsyncConnection, device: str, metric: str, span: Window) -> list[Bucket]:
    """The buckets of `device`'s `metric` in `span` that hold readings, oldest first."""
    t = readings.c
    step = span.step_s
    bucket = (epoch_seconds(conn.dialect.name) // step * step).label("bucket")
    latest_first = func.row_number().over(partition_by=bucket, order_by=(t.ts.desc(), t.id.desc()))
    rows = (
        select(bucket, t.value, latest_first.label("rank"))
        .where(t.device_id == device, t.metric == metric, t.ts >= span.start, t.ts < span.end)
        .subquery()
    )
    query = (
        select(
            rows.c.bucket,
            func.avg(rows.c.value),
            func.min(rows.c.value),
            func.max(rows.c.value),
            func.count(),
            func.max(case((rows.c.rank == 1, rows.c.value))),
        )
        .group_by(rows.c.bucket)
        .order_by(rows.c.bucket)
    )
    result = await conn.execute(query)
    return [
        Bucket(int(b), float(avg), float(low), float(high), int(n), float(last))
        for b, avg, low, high, n, last in result
    ]
