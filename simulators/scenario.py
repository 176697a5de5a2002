"""Scenario files: a site tree, its devices, and a timeline of incidents and faults (YAML, pydantic).

Every validation error names `file:line`. See docs/simulators.md for the format and
simulators/scenarios/ for examples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, Self

import numpy as np
from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    ValidationError,
    model_validator,
)

from core.durations import parse_duration
from core.issues import Issue
from core.schema_issues import schema_issues
from core.site import LEVELS, SitePath
from core.yaml_located import Loc, Located, YamlError, load_file, load_located
from firmware_adapters.registry import CODECS
from simulators.faults import FAULT_TYPES, Fault, Scope
from simulators.models import make_model

MAX_DURATION_S = 366 * 86_400.0
"""The longest duration a scenario may name."""


Duration = Annotated[
    float, BeforeValidator(functools.partial(parse_duration, max_s=MAX_DURATION_S))
]
"""Seconds, as a number or a duration such as `45s`, `30m`, `2h`, `7d` (`core.durations`)."""
Number = Annotated[float, Strict(), AllowInfNan(allow_inf_nan=False)]
"""A finite number written as one (not `true`, `.inf` or `.nan`)."""
Integer = Annotated[StrictInt, Field(ge=-(2**53), le=2**53)]
Transport = Literal["lorawan", "zigbee2mqtt", "modbus", "serial", "ip"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Building(_Strict):
    """A building and its units."""

    id: str
    units: list[str] = Field(default_factory=list)


class Compound(_Strict):
    """A compound (residential estate) and its buildings."""

    id: str
    buildings: list[Building] = Field(default_factory=list)


class Site(_Strict):
    """Where the compounds sit: `path` down to the grid level, then the compound tree."""

    path: str = ""
    compounds: list[Compound] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_path(self) -> Self:
        parts = SitePath.parse(self.path).parts
        if len(parts) > LEVELS.index("grid") + 1:
            raise ValueError("site.path stops at the grid level; compounds come below it")
        return self

    def known_paths(self) -> set[str]:
        """Every location (relative to `path`) the tree declares."""
        out: set[str] = set()
        for c in self.compounds:
            out.add(c.id)
            for b in c.buildings:
                out.add(f"{c.id}/{b.id}")
                out.update(f"{c.id}/{b.id}/{u}" for u in b.units)
        return out


class Device(_Strict):
    """One simulated device: what it is, how it talks, where it sits, how often it reports."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: str
    codec: str = Field(pattern=r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$")
    transport: Transport
    location: str
    interval: Duration = 300.0
    tick: Duration | None = None
    params: dict[str, Integer | Number | list[Number]] = Field(default_factory=dict)
    address: dict[str, str | int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_transport(self) -> Self:
        if self.codec.split(".", 1)[0] != self.transport:
            raise ValueError(
                f"codec {self.codec!r} does not belong to transport {self.transport!r}"
            )
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        return self


class TimelineEntry(_Strict):
    """An incident on one device, or a fault on some devices, from `at` for `duration`."""

    at: Duration
    duration: Duration | None = None
    incident: str | None = None
    fault: str | None = None
    device: str | None = None
    devices: list[str] = Field(default_factory=list)
    params: dict[str, Integer | Number | str] = Field(default_factory=dict)
    detect_within: Duration | None = None
    """How soon after `at` an agent should raise the incident's alarm (default: the device's
    reporting interval); for incidents that take time to become visible, such as a slow flood."""

    @model_validator(mode="after")
    def _check_kind(self) -> Self:
        if (self.incident is None) == (self.fault is None):
            raise ValueError("a timeline entry has exactly one of 'incident' or 'fault'")
        if self.incident is not None and self.device is None:
            raise ValueError("an incident names its 'device'")
        if self.fault is not None and self.fault not in FAULT_TYPES:
            raise ValueError(
                f"unknown fault {self.fault!r}; known: {', '.join(sorted(FAULT_TYPES))}"
            )
        return self

    @property
    def end(self) -> float:
        """When the entry stops applying (never, without a duration)."""
        return float("inf") if self.duration is None else self.at + self.duration

    def targets(self) -> tuple[str, ...]:
        """The devices the entry names (empty for a fault on every device)."""
        return tuple(self.devices) + ((self.device,) if self.device else ())


class Scenario(_Strict):
    """A whole scenario file."""

    name: str
    description: str = ""
    seed: StrictInt = Field(default=0, ge=0, lt=2**63)
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    duration: Duration = 3600.0
    gateway_id: str = "gw-sim"
    site: Site
    devices: list[Device] = Field(min_length=1)
    timeline: list[TimelineEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_refs(self) -> Self:
        if self.start.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2026-01-05T00:00:00+08:00")
        ids = [d.id for d in self.devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"device ids used twice: {', '.join(dupes)}")
        return self

    def device(self, device_id: str) -> Device:
        """The device with this id."""
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def location(self, device: Device) -> SitePath:
        """A device's full location path."""
        return SitePath.parse(f"{self.site.path}/{device.location}".strip("/"))


class ScenarioError(ValueError):
    """A scenario file is invalid; `issues` lists every problem with file:line."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        """Keep every issue; the message lists them one per line."""
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in issues))


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        ScenarioError: with every problem found, each carrying file:line.
    """
    try:
        doc = load_file(path)
    except YamlError as err:
        raise ScenarioError(err.issues) from None
    return _validate(doc, str(path))


def parse_scenario(text: str, filename: str = "<scenario>") -> Scenario:
    """Validate scenario text; see `load_scenario`."""
    try:
        doc = load_located(text, filename)
    except YamlError as err:
        raise ScenarioError(err.issues) from None
    return _validate(doc, filename)


def _validate(doc: Located, filename: str) -> Scenario:
    if doc.data is None:
        raise ScenarioError([Issue(filename, 1, "the file is empty: a scenario is a mapping")])
    if not isinstance(doc.data, dict):
        raise ScenarioError([Issue(filename, doc.line_of(()), "a scenario is a mapping")])
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as err:
        issues = list(schema_issues(err.errors(include_url=False), doc, filename, Scenario))
        raise ScenarioError(issues) from err
    issues = _cross_check(scenario, filename, doc.line_of)
    if issues:
        raise ScenarioError(issues)
    return scenario


def _cross_check(scenario: Scenario, filename: str, line_of: Callable[[Loc], int]) -> list[Issue]:
    issues: list[Issue] = []
    known = scenario.site.known_paths()
    ids = {d.id for d in scenario.devices}
    for i, d in enumerate(scenario.devices):
        if d.location.strip("/") not in known:
            line = line_of(("devices", i, "location"))
            issues.append(
                Issue(
                    filename,
                    line,
                    f"device {d.id}: location {d.location!r} is not in the site tree",
                )
            )
        issues.extend(
            Issue(filename, line_of(("devices", i, key)), f"device {d.id}: {problem}")
            for key, problem in _device_problems(d)
        )
    for i, entry in enumerate(scenario.timeline):
        for target in entry.targets():
            if target not in ids:
                key = "device" if target == entry.device else "devices"
                issues.append(
                    Issue(filename, line_of(("timeline", i, key)), f"unknown device {target!r}")
                )
        if entry.fault is not None:
            try:
                build_fault(entry)
            except (TypeError, ValueError) as err:
                issues.append(
                    Issue(
                        filename, line_of(("timeline", i, "params")), f"fault {entry.fault}: {err}"
                    )
                )
        if entry.at > scenario.duration:
            issues.append(
                Issue(filename, line_of(("timeline", i, "at")), "starts after the scenario ends")
            )
    return issues


def _device_problems(device: Device) -> list[tuple[str, str]]:
    """Problems only the codec registry and the behaviour models can spot: (key, message)."""
    problems: list[tuple[str, str]] = []
    if device.codec not in CODECS:
        problems.append(("codec", f"no codec {device.codec!r} is registered"))
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in device.params.items()}
    try:
        make_model(device.kind, np.random.default_rng(0), params)
    except ValueError as err:
        problems.append(("kind", str(err)))
    except TypeError as err:
        problems.append(("params", f"model parameters: {err}"))
    return problems


def build_fault(entry: TimelineEntry) -> Fault:
    """Make the fault object a timeline entry describes (its window and devices as its scope)."""
    cls = FAULT_TYPES[entry.fault or ""]
    scope = Scope(devices=entry.targets(), start=entry.at, end=entry.end)
    return cls(scope=scope, **entry.params)  # type: ignore[arg-type]
