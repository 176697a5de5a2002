"""Rule unit tests as data (promtool style): devices, input series, expected alarm events over time.

A test file names rule files, a start time, devices, and tests; each test feeds input series through a
fresh `RuleEngine` (readings at their times, a tick every `tick`) and compares the events it emits with
`expected_events`. Re-sends are left out unless a test sets `include_resends`. See docs/rules.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from core.derived import Derivation, DerivationError, FlagMemory, derive, parse_derivations
from core.durations import format_duration
from core.issues import Issue
from core.metrics import CATALOG, Metric, MetricKind, quality_of
from core.site import DeviceInfo, DeviceKind, SitePath
from core.types import AlarmEvent, AlarmState, Reading, Severity
from core.yaml_located import YamlError, load_file
from rules.engine import RuleEngine
from rules.errors import RuleFileError
from rules.spec import (
    Duration,
    SitePathField,
    ZoneName,
    load_rule_files,
    validation_issues,
    yaml_issues,
)

_NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
_SERIES_TOKEN: Final = re.compile(rf"^({_NUMBER}|true|false|_)(?:([+-])({_NUMBER}))?(?:x(\d+))?$")
MAX_SERIES_VALUES: Final = 100_000
"""The most values one input series may expand to."""
_COUNT_DIGITS: Final = len(str(MAX_SERIES_VALUES)) + 1
MAX_STEPS: Final = 1_000_000
"""The most ticks one test may run (its duration divided by its tick)."""


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be longer than 0s")
    return seconds


Tick = Annotated[Duration, AfterValidator(_positive)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _derivations(raw: object) -> tuple[Derivation, ...]:
    if isinstance(raw, tuple) and all(isinstance(d, Derivation) for d in raw):
        return raw  # already parsed (a model built in code)
    try:
        return parse_derivations(raw)
    except DerivationError as err:
        raise ValueError(str(err)) from None


class TestDevice(_Strict):
    """A device as the test's engine knows it; `derive` as in a gateway's device binding."""

    kind: DeviceKind
    location: SitePathField = SitePath()
    labels: dict[str, str] = Field(default_factory=dict)
    expected_interval: Duration | None = None
    derive: Annotated[tuple[Derivation, ...], PlainValidator(_derivations)] = ()


class Series(_Strict):
    """Values of one metric of one device, one every `interval` from `start` (relative)."""

    device: str
    metric: Metric
    values: str
    interval: Duration = 60.0
    start: Duration = 0.0


class ExpectedEvent(_Strict):
    """An event the test expects; `severity` and `suppressed` are compared only when given."""

    at: Duration
    rule: str
    device: str
    state: AlarmState
    severity: Severity | None = None
    suppressed: tuple[str, ...] | None = None


class RuleTest(_Strict):
    """One scenario."""

    name: str
    input_series: tuple[Series, ...] = ()
    expected_events: tuple[ExpectedEvent, ...] = ()
    duration: Duration | None = None
    tick: Tick | None = None
    include_resends: bool = False


class RuleTestFile(_Strict):
    """The top level of a test file."""

    rule_files: tuple[str, ...] = Field(min_length=1)
    site: str = "test-site"
    timezone: ZoneName = "UTC"
    start: datetime
    tick: Tick = 1.0
    devices: dict[str, TestDevice] = Field(default_factory=dict)
    tests: tuple[RuleTest, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """What one test found: `diff` lists missing and unexpected events, empty when it passed."""

    __test__ = False  # not a pytest test class

    file: str
    name: str
    diff: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """Whether the emitted events matched the expected ones."""
        return not self.diff


def expand_values(text: str, boolean: bool) -> list[float | bool | None]:  # noqa: FBT001
    """Expand promtool series notation: `1 2 3`, `0+10x5`, `100-5x3`, `_x4` (gaps), `true false`, `1x3`."""
    out: list[float | bool | None] = []
    for token in text.split():
        m = _SERIES_TOKEN.match(token)
        if m is None:
            raise ValueError(f"bad series token {_clip(token)}")
        base, sign, step, count = m.groups()
        repeat = int(count) + 1 if count is not None and len(count) < _COUNT_DIGITS else 1
        if count is not None and (
            len(count) >= _COUNT_DIGITS or len(out) + repeat > MAX_SERIES_VALUES
        ):
            raise ValueError(f"series expands to more than {MAX_SERIES_VALUES} values")
        if base == "_" or base in {"true", "false"}:
            if step is not None:
                raise ValueError(f"bad series token {token!r}: no step on {base}")
            value: float | bool | None = None if base == "_" else base == "true"
            out.extend([value] * repeat)
            continue
        start = float(base)
        delta = float(step or 0) * (-1 if sign == "-" else 1)
        values = [start + delta * i for i in range(repeat)]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"series token {_clip(token)} gives a number too large")
        out.extend(values)
    if len(out) > MAX_SERIES_VALUES:
        raise ValueError(f"series expands to more than {MAX_SERIES_VALUES} values")
    if boolean:
        return [v if v is None or isinstance(v, bool) else bool(v) for v in out]
    return [float(v) if isinstance(v, bool) else v for v in out]


def _clip(token: str) -> str:
    return repr(token if len(token) <= 40 else token[:40] + "...")  # noqa: PLR2004


def _readings(series: Series, start: datetime) -> list[tuple[float, Reading]]:
    boolean = CATALOG[series.metric].kind is MetricKind.BOOLEAN
    out: list[tuple[float, Reading]] = []
    for index, value in enumerate(expand_values(series.values, boolean)):
        if value is None:
            continue
        offset = series.start + index * series.interval
        ts = start + timedelta(seconds=offset)
        quality = quality_of(series.metric, value)
        out.append((offset, Reading(series.device, series.metric, value, ts, quality, "test")))
    return out


def _describe(at: float, rule: str, device: str, state: str, extra: str) -> str:
    return f"+{format_duration(at)} {rule} {device} {state}{extra}"


def _run(test: RuleTest, spec: RuleTestFile, engine: RuleEngine) -> list[tuple[float, AlarmEvent]]:
    start = spec.start
    tick = test.tick or spec.tick
    feed = sorted(
        (item for series in test.input_series for item in _readings(series, start)),
        key=lambda item: item[0],
    )
    last_input = feed[-1][0] if feed else 0.0
    last_expected = max((e.at for e in test.expected_events), default=0.0)
    duration = test.duration if test.duration is not None else max(last_input, last_expected) + tick
    events: list[tuple[float, AlarmEvent]] = []
    memory: FlagMemory = {}
    index = 0
    steps = int(duration // tick) + 1
    for step in range(steps):
        now_offset = step * tick
        while index < len(feed) and feed[index][0] <= now_offset:
            offset, reading = feed[index]
            when = start + timedelta(seconds=offset)
            device = spec.devices.get(reading.device_id)
            derived = derive(reading, device.derive, memory) if device is not None else []
            for each in (reading, *derived):  # as the gateway's pipeline does
                events.extend((offset, e) for e in engine.observe(each, when))
            index += 1
        when = start + timedelta(seconds=now_offset)
        events.extend((now_offset, e) for e in engine.tick(when))
    return events


def _drop_resends(events: list[tuple[float, AlarmEvent]]) -> list[tuple[float, AlarmEvent]]:
    last: dict[str, tuple[AlarmState, Severity]] = {}
    kept = []
    for at, event in events:
        key = (event.state, event.severity)
        if last.get(event.fingerprint) != key:
            kept.append((at, event))
        last[event.fingerprint] = key
    return kept


def _compare(test: RuleTest, events: list[tuple[float, AlarmEvent]]) -> tuple[str, ...]:
    remaining = list(events)
    diff: list[str] = []
    for exp in test.expected_events:
        for i, (at, ev) in enumerate(remaining):
            if (
                abs(at - exp.at) < 1e-6  # noqa: PLR2004
                and ev.rule_id == exp.rule
                and ev.device_id == exp.device
                and ev.state is exp.state
                and (exp.severity is None or ev.severity is exp.severity)
                and (exp.suppressed is None or ev.suppressed == exp.suppressed)
            ):
                del remaining[i]
                break
        else:
            extra = f" severity={exp.severity}" if exp.severity else ""
            if exp.suppressed is not None:
                extra += f" suppressed={list(exp.suppressed)}"
            diff.append(
                "- missing:    " + _describe(exp.at, exp.rule, exp.device, exp.state, extra)
            )
    for at, ev in remaining:
        extra = f" severity={ev.severity}"
        if ev.suppressed:
            extra += f" suppressed={list(ev.suppressed)}"
        diff.append("+ unexpected: " + _describe(at, ev.rule_id, ev.device_id, ev.state, extra))
    return tuple(diff)


def load_test_file(path: str | Path) -> RuleTestFile:
    """Read and validate a test file; raise `RuleFileError` with `file:line` messages."""
    name = str(path)
    try:
        document = load_file(path)
    except YamlError as err:
        raise RuleFileError(yaml_issues(err, "test file")) from None
    issues: list[Issue] = []
    try:
        parsed = RuleTestFile.model_validate(document.data)
    except ValidationError as err:
        raise RuleFileError(list(validation_issues(err, document, name))) from None
    for t_index, test in enumerate(parsed.tests):
        last_input = 0.0
        for s_index, series in enumerate(test.input_series):
            try:
                count = len(expand_values(series.values, boolean=False))
            except ValueError as err:
                line = document.line_of(("tests", t_index, "input_series", s_index, "values"))
                issues.append(Issue(name, line, str(err)))
                continue
            last_input = max(last_input, series.start + series.interval * count)
        last_expected = max((e.at for e in test.expected_events), default=0.0)
        duration = max(last_input, last_expected) if test.duration is None else test.duration
        if duration / (test.tick or parsed.tick) > MAX_STEPS:
            issues.append(
                Issue(
                    name,
                    document.line_of(("tests", t_index)),
                    f"tests.{t_index}: runs more than {MAX_STEPS} ticks "
                    "(shorten the test or lengthen its tick)",
                )
            )
    if issues:
        raise RuleFileError(issues)
    return parsed


def run_test_file(path: str | Path) -> list[TestOutcome]:
    """Run every test of a file; raise `RuleFileError` if the test file or its rule files are invalid."""
    spec = load_test_file(path)
    base = Path(path).parent
    rules = load_rule_files([base / name for name in spec.rule_files], timezone=spec.timezone)
    devices = {
        device_id: DeviceInfo(
            device_id,
            d.kind,
            d.location,
            d.labels,
            expected_interval_s=d.expected_interval,
            derive=d.derive,
        )
        for device_id, d in spec.devices.items()
    }
    outcomes = []
    for test in spec.tests:
        engine = RuleEngine(rules, devices, site=spec.site)
        events = _run(test, spec, engine)
        if not test.include_resends:
            events = _drop_resends(events)
        outcomes.append(TestOutcome(str(path), test.name, _compare(test, events)))
    return outcomes
