"""The telemetry API's response models: one series of time buckets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cloud_ingest.paging import IsoTime


class Point(BaseModel):
    """One bucket of a series: the readings with `t <= ts < t + step_s`.

    For a boolean metric `avg`, `min` and `max` are of its values as 0 and 1 (so `avg` is the
    share of the bucket's readings that were true) and `last` is its latest value; for a numeric
    metric `last` is null.
    """

    t: IsoTime
    """The bucket's start (a multiple of `step_s` since 1970-01-01 UTC)."""
    avg: float
    min: float
    max: float
    count: int
    last: bool | None = None


class Series(BaseModel):
    """A device's metric between `from` and `to`, in buckets of `step_s` seconds (empty ones left out)."""

    device: str
    metric: str
    unit: str
    """The metric's canonical unit (empty for a boolean)."""
    step_s: int
    from_: IsoTime = Field(alias="from")
    """The window's start, rounded down to a bucket's start."""
    to: IsoTime
    """The window's end (exclusive)."""
    points: list[Point]

    model_config = ConfigDict(populate_by_name=True)
