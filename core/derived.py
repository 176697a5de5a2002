"""Derived readings: how a device's raw metric becomes the quantity the rules reason about.

An ultrasonic bin sensor measures the distance down to the rubbish, not how full the bin is; a well
sensor measures the distance down to the water, not the water level; a door contact on a fence says
`contact_open`, and on that fence an open contact *is* an intrusion. How to turn one into the other
depends on where and how the device is mounted, so it is declared per device binding:

```yaml
derive:
  fill_pct: {from: distance_mm, empty_mm: 1350, full_mm: 150}   # sensor to bin floor / to the full line
  water_level_mm: {from: distance_mm, depth_mm: 2500}           # sensor to the floor of the well
  intrusion: {from: [contact_open, occupancy]}                  # true while any is (`invert: true`)
```

`parse_derivations(mapping)` validates such a mapping (every problem, each with the key it is
about); `derive(reading, derivations)` returns the derived readings of one reading. Both are pure.
A derived reading keeps the source reading's device, time, codec and quality and names its source
metric in `derived_from`, so the telemetry says where the number came from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from core.metrics import CATALOG, Metric, MetricKind
from core.types import Reading


@dataclass(frozen=True, slots=True)
class FillFromDistance:
    """Fill level of a container from the distance between a top-mounted sensor and the contents.

    `empty_mm` is the distance to the floor of the empty container (the mounting height), `full_mm`
    the distance at the full line. The fill is linear between them and clamped to 0..100 %.
    """

    empty_mm: float
    full_mm: float
    target: Metric = Metric.FILL_PCT
    sources: tuple[Metric, ...] = (Metric.DISTANCE_MM,)

    def compute(self, value: float) -> float:
        """Return the fill in percent, one decimal."""
        fill = (self.empty_mm - value) / (self.empty_mm - self.full_mm) * 100
        return round(min(100.0, max(0.0, fill)), 1)


@dataclass(frozen=True, slots=True)
class LevelFromDistance:
    """Water level above the floor of a well, from a sensor under the cover looking down.

    `depth_mm` is the distance from the sensor to the floor of the well; the level is never below 0.
    """

    depth_mm: float
    target: Metric = Metric.WATER_LEVEL_MM
    sources: tuple[Metric, ...] = (Metric.DISTANCE_MM,)

    def compute(self, value: float) -> float:
        """Return the level in millimetres."""
        return round(max(0.0, self.depth_mm - value), 1)


@dataclass(frozen=True, slots=True)
class AnyFlag:
    """A flag that is true while any of its source flags last reported true.

    `intrusion: {from: contact_open}` takes one flag over under another name (a fence contact
    open is an intrusion); `intrusion: {from: [contact_open, occupancy]}` is true while the contact
    is open *or* the PIR sees motion, so a PIR going quiet does not clear an open gate. `invert`
    negates the result.
    """

    sources: tuple[Metric, ...]
    target: Metric
    invert: bool = False

    def compute(self, latest: Mapping[Metric, bool]) -> bool:
        """Return the flag from the latest value of each source seen so far."""
        return any(latest.get(source, False) for source in self.sources) is not self.invert


Derivation = FillFromDistance | LevelFromDistance | AnyFlag
"""One way to derive a metric from another."""

_NUMERIC: Final = {
    (Metric.FILL_PCT, Metric.DISTANCE_MM): ("empty_mm", "full_mm"),
    (Metric.WATER_LEVEL_MM, Metric.DISTANCE_MM): ("depth_mm",),
}
"""Numeric derivations: (target, source) -> the mounting parameters they need, in order."""


class DerivationError(ValueError):
    """A `derive` mapping is wrong; `problems` holds `(key path, message)` for every problem."""

    def __init__(self, problems: Sequence[tuple[tuple[str, ...], str]]) -> None:
        """Keep every problem; the message lists them all."""
        self.problems = tuple(problems)
        super().__init__(
            "; ".join(
                f"{'.'.join(path)}: {message}" if path else message for path, message in problems
            )
        )


def supported() -> list[str]:
    """Human-readable list of what can be derived from what."""
    numeric = [
        f"{target.value} from {source.value} ({', '.join(params)})"
        for (target, source), params in _NUMERIC.items()
    ]
    return [*numeric, "a flag from one or more flags (true while any is; invert: optional)"]


def _is_flag(metric: Metric) -> bool:
    return CATALOG[metric].kind is MetricKind.BOOLEAN


def _number(raw: Mapping[str, object], key: str) -> float | str:
    """A finite non-negative number at `raw[key]`, or the problem with it."""
    value = raw.get(key)
    if value is None:
        return "required"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"must be a number of millimetres, not {value!r}"
    if value < 0:
        return "must not be negative"
    return float(value)


def _metric(name: object) -> Metric | None:
    try:
        return Metric(str(name))
    except ValueError:
        return None


def _parse_one(  # noqa: C901, PLR0911, PLR0912 - one branch per shape, each with its own message
    target_name: object, raw: object, problems: list[tuple[tuple[str, ...], str]]
) -> Derivation | None:
    key = str(target_name)
    target = _metric(key)
    if target is None:
        problems.append(((key,), f"unknown metric {key!r}"))
        return None
    if not isinstance(raw, Mapping):
        problems.append(((key,), "must be a mapping like {from: METRIC, ...}"))
        return None
    names = raw.get("from")
    listed = names if isinstance(names, list) else [names]
    found = [_metric(name) for name in listed]
    bad = [name for name, metric in zip(listed, found, strict=True) if metric is None]
    if bad or not listed:
        problems.append(((key, "from"), f"unknown metric {bad[0] if bad else None!r}"))
        return None
    sources = tuple(m for m in found if m is not None)
    if target in sources:
        problems.append(((key, "from"), "a metric cannot be derived from itself"))
        return None
    params = _NUMERIC.get((target, sources[0])) if len(sources) == 1 else None
    if params is not None:
        extra = sorted(set(map(str, raw)) - {"from", *params})
        if extra:
            problems.append(((key, extra[0]), f"unknown key; expected {', '.join(params)}"))
        values: list[float] = []
        for name in params:
            value = _number(raw, name)
            if isinstance(value, str):
                problems.append(((key, name), value))
            else:
                values.append(value)
        if len(values) != len(params):
            return None
        if target is Metric.FILL_PCT:
            empty, full = values
            if full >= empty:
                problems.append(
                    (
                        (key, "full_mm"),
                        "the full line must be nearer the sensor than the empty floor",
                    )
                )
                return None
            return FillFromDistance(empty_mm=empty, full_mm=full)
        return LevelFromDistance(depth_mm=values[0])
    if _is_flag(target) and all(_is_flag(source) for source in sources):
        extra = sorted(set(map(str, raw)) - {"from", "invert"})
        if extra:
            problems.append(((key, extra[0]), "unknown key; expected invert"))
        invert = raw.get("invert", False)
        if not isinstance(invert, bool):
            problems.append(((key, "invert"), "must be true or false"))
            return None
        return AnyFlag(sources=sources, target=target, invert=invert)
    named = ", ".join(source.value for source in sources)
    problems.append(
        ((key,), f"cannot derive {target.value} from {named}; supported: {'; '.join(supported())}")
    )
    return None


def parse_derivations(raw: object) -> tuple[Derivation, ...]:
    """Validate a `derive` mapping (target metric -> how); raises `DerivationError` listing all."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise DerivationError([((), "derive must be a mapping of metric -> {from: METRIC, ...}")])
    problems: list[tuple[tuple[str, ...], str]] = []
    out = [
        d for target, spec in raw.items() if (d := _parse_one(target, spec, problems)) is not None
    ]
    if problems:
        raise DerivationError(problems)
    return tuple(out)


FlagMemory = dict[tuple[str, Metric], dict[Metric, bool]]
"""The latest value of each source flag per (device, derived metric), kept by the caller."""


def derive(
    reading: Reading, derivations: Iterable[Derivation], memory: FlagMemory | None = None
) -> list[Reading]:
    """Return the readings derived from `reading` (none when no derivation takes its metric).

    Flags derived from several sources need `memory`, which the caller keeps for as long as the
    devices keep reporting (the pipeline keeps one; without it only this reading's flag counts). A
    number given for a flag, or a flag for a number, derives nothing: the source reading is already
    flagged out of range by the catalog check.
    """
    out: list[Reading] = []
    value = reading.value
    metric = reading.metric
    for d in derivations:
        if metric not in d.sources:
            continue
        if isinstance(d, AnyFlag):
            if value.__class__ is not bool:
                continue
            if memory is None:
                latest: dict[Metric, bool] = {metric: bool(value)}
            else:
                latest = memory.setdefault((reading.device_id, d.target), {})
                latest[metric] = bool(value)
            derived: float | bool = d.compute(latest)
        else:
            if value.__class__ is bool or value != value:  # noqa: PLR0124 - NaN derives nothing
                continue
            derived = d.compute(float(value))
        out.append(  # built directly: dataclasses.replace costs several times as much
            Reading(
                reading.device_id,
                d.target,
                derived,
                reading.ts,
                reading.quality,
                reading.codec_id,
                metric,
            )
        )
    return out


def sources(derivations: Iterable[Derivation]) -> frozenset[Metric]:
    """The metrics these derivations read."""
    return frozenset(source for d in derivations for source in d.sources)


def targets(derivations: Iterable[Derivation]) -> frozenset[Metric]:
    """The metrics these derivations produce."""
    return frozenset(d.target for d in derivations)
