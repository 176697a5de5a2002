"""Rule files: the file-level keys, the loader, and where each problem is (`file:line`).

A rule file holds `timezone`, `rules`, `maintenance_windows` and `not_alarmed`; `docs/rules.md`
describes every key. The kinds of rule are the models of `rules.models`, the value types those of
`rules.fields`. Validation collects every problem as an `Issue` (file, line, message) and loads
nothing if there is any.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

from pydantic import Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from core.issues import Issue
from core.metrics import Metric
from core.site import LEVELS, DeviceKind, SitePath
from core.yaml_located import Loc, Located, YamlError, load_file, load_located
from core.zones import check_zone
from rules.errors import RuleFileError
from rules.fields import (
    ID_PATTERN,
    Condition,
    Duration,
    Escalation,
    Match,
    SitePathField,
    StrictModel,
    Window,
    WorkOrder,
    ZoneName,
)
from rules.models import (
    RULE_KINDS,
    CompositeRule,
    NoDataRule,
    Rule,
    RuleKind,
    ThresholdRule,
    unknown_key_message,
    unknown_type_message,
)


class MaintenanceWindow(StrictModel):
    """A planned period in which matching alarms are flagged suppressed (reason and end are required)."""

    id: str = Field(pattern=ID_PATTERN)
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


class NotAlarmed(StrictModel):
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


class RuleFile(StrictModel):
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
        raise RuleFileError([Issue("<site>", 0, str(err))]) from None


@dataclass(frozen=True, slots=True)
class LoadedRule:
    """A validated rule with where it came from and the time zone it runs in."""

    rule: RuleKind
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

    def rule(self, rule_id: str) -> RuleKind:
        """Return a rule by id; raises `KeyError` if there is none."""
        for loaded in self.rules:
            if loaded.rule.id == rule_id:
                return loaded.rule
        raise KeyError(rule_id)


def _parse_one(
    loaded: Located | YamlError, filename: str, issues: list[Issue]
) -> tuple[RuleFile, Located] | None:
    if isinstance(loaded, YamlError):
        issues.extend(yaml_issues(loaded, "rule file"))
        return None
    document = loaded.data if loaded.data is not None else {}
    if not isinstance(document, dict):
        issues.append(
            Issue(filename, loaded.line_of(()), "a rule file is a mapping with a 'rules' list")
        )
        return None
    try:
        parsed = RuleFile.model_validate(document)
    except ValidationError as err:
        issues.extend(validation_issues(err, loaded, filename))
        return None
    return parsed, loaded


def validation_issues(err: ValidationError, document: Located, filename: str) -> Iterator[Issue]:
    """One `Issue` per problem pydantic found, at the line of the key it concerns."""
    for problem in err.errors():
        loc, message = _explain(problem)
        where = ".".join(str(part) for part in loc) or "(document)"
        yield Issue(filename, document.line_of(loc), f"{where}: {message}")


def _explain(problem: ErrorDetails) -> tuple[Loc, str]:
    """Where a problem is (without pydantic's union tags) and what to tell the author."""
    raw = tuple(problem["loc"])
    kind = None
    if len(raw) >= 3 and raw[0] == "rules" and isinstance(raw[1], int) and raw[2] in RULE_KINDS:  # noqa: PLR2004
        kind = str(raw[2])
        raw = raw[:2] + raw[3:]
    loc = tuple(part for part in raw if not _is_union_tag(part))
    kind_error = problem["type"] in {"union_tag_invalid", "union_tag_not_found"}
    if kind_error and loc[:1] == ("rules",) and len(loc) == 2:  # noqa: PLR2004
        given = problem["input"]
        if isinstance(given, dict):
            return (*loc, "type"), unknown_type_message(given.get("type"))
        return loc, f"a rule is a mapping of keys (id, match, ...), not {type(given).__name__}"
    if kind is not None and len(loc) == 3:  # noqa: PLR2004 - a key of the rule itself
        if problem["type"] == "extra_forbidden":
            return loc, unknown_key_message(kind, str(loc[2]))
        if problem["type"] == "missing":
            return loc, f"required for a {kind} rule"
    return loc, problem["msg"].removeprefix("Value error, ")


def yaml_issues(err: YamlError, what: str) -> list[Issue]:
    """The problems of a YAML file that could not be read or parsed, saying what it was read as."""
    return [
        Issue(
            issue.file,
            issue.line,
            f"cannot read {what}: {issue.message.removeprefix('cannot read: ')}"
            if issue.message.startswith("cannot read: ")
            else issue.message,
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
    issues: list[Issue] = []
    loaded: list[LoadedRule] = []
    windows: list[MaintenanceWindow] = []
    not_alarmed: list[NotAlarmed] = []
    sources: list[str] = []
    seen: dict[str, str] = {}
    for filename, source in files:
        sources.append(filename)
        result = _parse_one(source, filename, issues)
        if result is None:
            continue
        parsed, document = result
        for index, rule in enumerate(parsed.rules):
            line = document.line_of(("rules", index))
            if rule.id in seen:
                issues.append(
                    Issue(
                        filename,
                        line,
                        f"rules.{index}: duplicate rule id {rule.id!r} (first at {seen[rule.id]})",
                    )
                )
                continue
            seen[rule.id] = f"{filename}:{line}"
            loaded.append(
                LoadedRule(rule, rule.timezone or parsed.timezone or timezone, filename, line)
            )
        windows.extend(parsed.maintenance_windows)
        not_alarmed.extend(parsed.not_alarmed)
    for item in loaded:
        issues.extend(
            Issue(
                item.source,
                item.line,
                f"rules.{item.rule.id}: inhibited_by names unknown rule {name!r}",
            )
            for name in item.rule.inhibited_by
            if name not in seen
        )
    if issues:
        raise RuleFileError(issues)
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
    "CompositeRule",
    "Condition",
    "Duration",
    "Escalation",
    "LoadedRule",
    "MaintenanceWindow",
    "Match",
    "NoDataRule",
    "Rule",
    "RuleFile",
    "RuleKind",
    "RuleSet",
    "SitePathField",
    "ThresholdRule",
    "Window",
    "WorkOrder",
    "ZoneName",
    "load_rule_files",
    "parse_rules",
]
