"""Rule files: the YAML rule language, its validation, and the loader.

A rule file holds `timezone`, `rules` and `maintenance_windows`; `docs/rules.md` describes every key.
Validation collects every problem as `file:line: message` and loads nothing if there is any.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final, Literal, Self

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StrictInt,
    ValidationError,
    model_validator,
)

from core.metrics import CATALOG, Metric, MetricKind
from core.site import LEVELS, DeviceKind, SitePath
from core.types import ENVELOPE_LIMITS, Priority, Severity
from core.yaml_located import Located, YamlError, load_file, load_located
from core.zones import check_zone
from rules.errors import RuleFileError
from rules.parsing import DailyRange, parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in a rule file as `30s`, `10m`, `1h30m` or a bare number of seconds."""

RuleType = Literal["threshold", "no_data", "composite"]
Aggregate = Literal["mean", "min", "max", "rate", "count_true", "forecast_hours", "mad_score"]
ScopeLevel = Literal["district", "street", "community", "grid", "compound", "building", "unit"]

_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


def _daily_range(value: object) -> DailyRange:
    return value if isinstance(value, DailyRange) else DailyRange.parse(value)


MAX_THRESHOLD: Final = 1e9
"""Thresholds and window targets lie within plus or minus this."""


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


DailyRangeField = Annotated[DailyRange, BeforeValidator(_daily_range)]
SitePathField = Annotated[SitePath, BeforeValidator(_site_path)]
Threshold = Annotated[float, PlainValidator(_number)]
"""A finite number within plus or minus `MAX_THRESHOLD`."""
EqualsValue = Annotated[bool | float, PlainValidator(_equals_value)]
ZoneName = Annotated[str, AfterValidator(check_zone)]
Count = Annotated[StrictInt, Field(ge=1, le=1_000_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Match(_Strict):
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


class Condition(_Strict):
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


class Window(_Strict):
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


class Escalation(_Strict):
    """Raise the severity while an alarm keeps firing."""

    after: Duration
    to: Severity


class WorkOrder(_Strict):
    """The work-order hint carried on the rule's events."""

    category: str = Field(min_length=1, max_length=ENVELOPE_LIMITS.category)
    priority: Priority


class Rule(_Strict):
    """One alarm rule; see docs/rules.md for the meaning of each key."""

    id: str = Field(pattern=_ID_PATTERN, max_length=ENVELOPE_LIMITS.rule_id)
    description: str = Field(default="", max_length=ENVELOPE_LIMITS.description)
    type: RuleType = "threshold"
    match: Match
    above: Threshold | None = None
    below: Threshold | None = None
    equals: EqualsValue | None = None
    clear: Condition | None = None
    window: Window | None = None
    for_: Duration = Field(default=0.0, alias="for")
    clear_for: Duration = 0.0
    keep_firing_for: Duration = 0.0
    severity: Severity = Severity.WARNING
    escalate: Escalation | None = None
    raises: Literal["firing", "fault"] = "firing"
    work_order: WorkOrder | None = None
    armed: DailyRangeField | None = None
    entry_delay: Duration = 0.0
    active_hours: DailyRangeField | None = None
    timezone: ZoneName | None = None
    no_data_factor: Annotated[float, Strict(), AllowInfNan(allow_inf_nan=False)] = Field(
        default=3.0, gt=1.0, le=1000.0
    )
    resend: Duration = 60.0
    inhibited_by: tuple[str, ...] = ()
    scope: ScopeLevel | None = None
    within: Duration | None = None
    min_devices: Count | None = None
    min_events: Count | None = None

    @property
    def condition(self) -> Condition | None:
        """The firing condition, or `None` for a `no_data` rule."""
        if self.above is None and self.below is None and self.equals is None:
            return None
        return Condition(above=self.above, below=self.below, equals=self.equals)

    @property
    def version(self) -> str:
        """A short hash of the rule's content; changes whenever the rule does."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]

    def _equals_problems(self, *, boolean: bool) -> list[str]:
        """`equals` compares like with like: a boolean metric's raw value, or a number."""
        metric = self.match.metric
        if metric is None:
            return []
        flags = boolean and self.window is None  # a window's aggregate is a number
        problems = []
        clear_equals = self.clear.equals if self.clear is not None else None
        for where, value in (("equals", self.equals), ("clear.equals", clear_equals)):
            if value is None:
                continue
            if flags and not isinstance(value, bool):
                problems.append(f"{metric} is boolean: {where} takes true or false")
            elif not flags and isinstance(value, bool):
                problems.append(f"{where} compares a number here: give a number, not {value}")
        return problems

    @model_validator(mode="after")
    def _check(self) -> Self:  # noqa: C901, PLR0912 - one place lists every cross-field rule
        problems: list[str] = []
        has_cond = any(v is not None for v in (self.above, self.below, self.equals))
        if self.type == "no_data":
            if has_cond or self.window or self.clear:
                problems.append("a no_data rule takes no condition, clear or window")
        else:
            if self.match.metric is None:
                problems.append("match.metric is required")
            try:
                Condition(above=self.above, below=self.below, equals=self.equals)
            except ValidationError:
                problems.append("give exactly one of above, below, equals")
        metric = self.match.metric
        boolean = metric is not None and CATALOG[metric].kind is MetricKind.BOOLEAN
        if boolean and self.window is None and (self.above is not None or self.below is not None):
            problems.append(f"{metric} is boolean: use equals: true/false (or a count_true window)")
        problems.extend(self._equals_problems(boolean=boolean))
        if self.window is not None:
            if self.window.agg == "count_true" and not boolean:
                problems.append("window agg count_true needs a boolean metric")
            if self.window.agg != "count_true" and boolean:
                problems.append(f"window agg {self.window.agg} needs a numeric metric")
        if self.type == "composite":
            if self.scope is None or self.within is None:
                problems.append("a composite rule needs scope and within")
            if (self.min_devices is None) == (self.min_events is None):
                problems.append("a composite rule needs exactly one of min_devices, min_events")
            if self.window is not None:
                problems.append("a composite rule takes no window")
        elif self.scope or self.within or self.min_devices or self.min_events:
            problems.append("scope, within, min_devices and min_events are for composite rules")
        if self.entry_delay and self.armed is None:
            problems.append("entry_delay needs an armed schedule")
        if self.escalate is not None and self.escalate.to.rank <= self.severity.rank:
            problems.append("escalate.to must be more severe than severity")
        if self.resend <= 0:
            problems.append("resend must be positive")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class MaintenanceWindow(_Strict):
    """A planned period in which matching alarms are flagged suppressed (reason and end are required)."""

    id: str = Field(pattern=_ID_PATTERN)
    reason: str = Field(min_length=1)
    starts: datetime
    ends: datetime
    rules: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    location: SitePathField = SitePath()

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.starts.tzinfo is None or self.ends.tzinfo is None:
            raise ValueError("starts and ends need a time zone (e.g. 2026-05-01T08:00:00+08:00)")
        if self.ends <= self.starts:
            raise ValueError("ends must be after starts")
        return self


class NotAlarmed(_Strict):
    """Metrics a pack deliberately raises no alarm on (for devices of `kinds`, or any), and why.

    `edge-agent check` warns about every metric a device reports that no rule watches; an entry here
    says the pack's authors looked at that metric and decided it is telemetry, not an incident.
    """

    metrics: tuple[Metric, ...] = Field(min_length=1)
    kinds: tuple[DeviceKind, ...] = ()
    reason: str = Field(min_length=1)

    def covers(self, metric: Metric, kind: DeviceKind) -> bool:
        """Whether this entry says `metric` of a device of `kind` is not alarmed on."""
        return metric in self.metrics and (not self.kinds or kind in self.kinds)


class RuleFile(_Strict):
    """The top level of one rule file."""

    timezone: ZoneName | None = None
    """The zone of schedules in this file; without it, the site's zone given to the loader."""
    rules: tuple[Rule, ...] = ()
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    not_alarmed: tuple[NotAlarmed, ...] = ()


def _site_zone(name: str) -> str:
    try:
        return check_zone(name)
    except ValueError as err:
        raise RuleFileError([f"<site>:0: {err}"]) from None


@dataclass(frozen=True, slots=True)
class LoadedRule:
    """A validated rule with where it came from and the time zone it runs in."""

    rule: Rule
    timezone: str
    source: str
    line: int


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule and maintenance window of a set of files, validated as a whole."""

    rules: tuple[LoadedRule, ...] = ()
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    sources: tuple[str, ...] = ()
    not_alarmed: tuple[NotAlarmed, ...] = ()

    def rule(self, rule_id: str) -> Rule:
        """Return a rule by id; raises `KeyError` if there is none."""
        for loaded in self.rules:
            if loaded.rule.id == rule_id:
                return loaded.rule
        raise KeyError(rule_id)


def _parse_one(
    loaded: Located | YamlError, filename: str, errors: list[str]
) -> tuple[RuleFile, Located] | None:
    if isinstance(loaded, YamlError):
        errors.extend(yaml_errors(loaded, "rule file"))
        return None
    document = loaded.data if loaded.data is not None else {}
    if not isinstance(document, dict):
        errors.append(
            f"{filename}:{loaded.line_of(())}: a rule file is a mapping with a 'rules' list"
        )
        return None
    try:
        parsed = RuleFile.model_validate(document)
    except ValidationError as err:
        for problem in err.errors():
            loc = tuple(problem["loc"])
            where = ".".join(str(p) for p in loc if not _is_union_tag(p))
            message = problem["msg"].removeprefix("Value error, ")
            errors.append(f"{filename}:{loaded.line_of(loc)}: {where}: {message}")
        return None
    return parsed, loaded


def yaml_errors(err: YamlError, what: str) -> list[str]:
    """`file:line: message` for each problem of a YAML file that could not be read or parsed."""
    return [
        f"{issue.file}:{issue.line}: "
        + (
            f"cannot read {what}: {issue.message.removeprefix('cannot read: ')}"
            if issue.message.startswith("cannot read: ")
            else issue.message
        )
        for issue in err.issues
    ]


def _read(path: str | Path) -> Located | YamlError:
    try:
        return load_file(path)
    except YamlError as err:
        return err


def _parse_text(text: str, filename: str) -> Located | YamlError:
    try:
        return load_located(text, filename)
    except YamlError as err:
        return err


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and (part in {"float", "bool", "int", "str"} or "[" in part)


def _collect(files: Iterable[tuple[str, Located | YamlError]], timezone: str) -> RuleSet:
    errors: list[str] = []
    loaded: list[LoadedRule] = []
    windows: list[MaintenanceWindow] = []
    not_alarmed: list[NotAlarmed] = []
    sources: list[str] = []
    seen: dict[str, str] = {}
    for filename, source in files:
        sources.append(filename)
        result = _parse_one(source, filename, errors)
        if result is None:
            continue
        parsed, document = result
        for index, rule in enumerate(parsed.rules):
            line = document.line_of(("rules", index))
            where = f"{filename}:{line}"
            if rule.id in seen:
                errors.append(
                    f"{where}: rules.{index}: duplicate rule id {rule.id!r} (first at {seen[rule.id]})"
                )
                continue
            seen[rule.id] = where
            loaded.append(
                LoadedRule(rule, rule.timezone or parsed.timezone or timezone, filename, line)
            )
        windows.extend(parsed.maintenance_windows)
        not_alarmed.extend(parsed.not_alarmed)
    for item in loaded:
        errors.extend(
            f"{item.source}:{item.line}: rules.{item.rule.id}: inhibited_by names unknown rule {name!r}"
            for name in item.rule.inhibited_by
            if name not in seen
        )
    if errors:
        raise RuleFileError(errors)
    return RuleSet(tuple(loaded), tuple(windows), tuple(sources), tuple(not_alarmed))


def parse_rules(text: str, filename: str = "<rules>", *, timezone: str = "UTC") -> RuleSet:
    """Validate rules given as text (e.g. pushed over MQTT); raise `RuleFileError` listing every error.

    `timezone` is the site's zone, used by files that name none.
    """
    return _collect([(filename, _parse_text(text, filename))], _site_zone(timezone))


def load_rule_files(paths: Iterable[str | Path], *, timezone: str = "UTC") -> RuleSet:
    """Read and validate rule files as one set; raise `RuleFileError` listing every error of every file.

    `timezone` is the site's zone, used by files that name none.
    """
    zone = _site_zone(timezone)
    return _collect([(str(path), _read(path)) for path in paths], zone)


__all__ = [
    "LEVELS",
    "Condition",
    "Escalation",
    "LoadedRule",
    "MaintenanceWindow",
    "Match",
    "Rule",
    "RuleFile",
    "RuleSet",
    "Window",
    "WorkOrder",
    "load_rule_files",
    "parse_rules",
]
