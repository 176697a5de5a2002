"""The value types of the rule language and the small mappings every kind of rule shares.

Durations, thresholds, schedules, zones and counts are validated here, once, with the messages a
rule file's author sees (`not a duration: ...`, `expected a finite number ...`).
"""

from __future__ import annotations

import math
from typing import Annotated, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    model_validator,
)

from core.durations import parse_duration
from core.metrics import Metric
from core.site import DeviceKind, SitePath
from core.types import ENVELOPE_LIMITS, Priority, Severity
from core.zones import check_zone
from rules.daily_range import DailyRange

ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_.-]*$"
"""Rule and maintenance window ids."""

MAX_THRESHOLD: Final = 1e9
"""Thresholds and window targets lie within plus or minus this."""

Aggregate = Literal["mean", "min", "max", "rate", "count_true", "forecast_hours", "mad_score"]
ScopeLevel = Literal["district", "street", "community", "grid", "compound", "building", "unit"]


def _daily_range(value: object) -> DailyRange:
    return value if isinstance(value, DailyRange) else DailyRange.parse(value)


def _number(value: object) -> float:
    """A finite number within `MAX_THRESHOLD`, written as a number (not `true`, not text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        short = isinstance(value, str) and len(value) <= 40  # noqa: PLR2004
        shown = repr(value) if short else type(value).__name__
        raise ValueError(f"expected a number, got {shown}")  # noqa: TRY004 - pydantic reports ValueError
    if isinstance(value, int) and abs(value) > MAX_THRESHOLD:
        raise ValueError(f"a threshold lies within -{MAX_THRESHOLD:g}..{MAX_THRESHOLD:g}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("expected a finite number (not .inf or .nan)")
    if abs(number) > MAX_THRESHOLD:
        raise ValueError(f"a threshold lies within -{MAX_THRESHOLD:g}..{MAX_THRESHOLD:g}")
    return number


def _equals_value(value: object) -> bool | float:
    """`true`/`false` for a boolean metric, a number (as `_number`) for a numeric one."""
    return value if isinstance(value, bool) else _number(value)


def _site_path(value: object) -> SitePath:
    return value if isinstance(value, SitePath) else SitePath.parse(str(value))


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in a rule file as `30s`, `10m`, `1h30m` or a bare number of seconds."""
DailyRangeField = Annotated[DailyRange, BeforeValidator(_daily_range)]
SitePathField = Annotated[SitePath, BeforeValidator(_site_path)]
Threshold = Annotated[float, PlainValidator(_number)]
"""A finite number within plus or minus `MAX_THRESHOLD`."""
EqualsValue = Annotated[bool | float, PlainValidator(_equals_value)]
ZoneName = Annotated[str, AfterValidator(check_zone)]
Count = Annotated[StrictInt, Field(ge=1, le=1_000_000)]


class StrictModel(BaseModel):
    """Frozen, and every key not declared is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Match(StrictModel):
    """Which readings a rule looks at: a metric, and optionally device kinds, ids, labels, location."""

    metric: Metric | None = None
    kinds: tuple[DeviceKind, ...] = ()
    devices: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    location: SitePathField = SitePath()

    @property
    def needs_device_info(self) -> bool:
        """Whether matching needs what the gateway knows of a device (kind, labels, location)."""
        return bool(self.kinds or self.labels or self.location.parts)


class Condition(StrictModel):
    """One comparison: exactly one of `above`, `below`, `equals`."""

    above: Threshold | None = None
    below: Threshold | None = None
    equals: EqualsValue | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [v for v in (self.above, self.below, self.equals) if v is not None]
        if len(given) != 1:
            raise ValueError("a condition needs exactly one of above, below, equals")
        return self


class Window(StrictModel):
    """Evaluate an aggregate over recent samples of the matched metric instead of the last value."""

    agg: Aggregate
    over: Duration
    min_samples: Count = 1
    min_span: Duration = 0.0
    """The samples must cover at least this long (first to last) before the aggregate counts."""
    target: Threshold | None = None
    """For `forecast_hours`: the level whose predicted crossing is measured (e.g. 100 % full)."""
    reset_drop: Annotated[Threshold, Field(gt=0)] | None = None
    """For `forecast_hours`: a fall larger than this starts a new trend (a bin was emptied)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.over <= 0:
            raise ValueError("window.over must be positive")
        if self.agg == "forecast_hours" and self.target is None:
            raise ValueError("window agg forecast_hours needs a target")
        if self.agg != "forecast_hours" and (self.target is not None or self.reset_drop):
            raise ValueError("window.target and reset_drop only apply to agg forecast_hours")
        return self


class Escalation(StrictModel):
    """Raise the severity while an alarm keeps firing."""

    after: Duration
    to: Severity


class WorkOrder(StrictModel):
    """The work-order hint carried on the rule's events."""

    category: str = Field(min_length=1, max_length=ENVELOPE_LIMITS.category)
    priority: Priority
