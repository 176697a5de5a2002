"""Faults, composable and seeded: each is a pure transform of samples or emissions.

Value faults act on `Sample`s before encoding (a sensor that sticks or spikes, a skewed device clock, a
device that goes silent). Byte faults act on `Emission`s after encoding (drop, duplicate, reorder, bit
flips, truncation, split writes, garbage between frames). Link faults are windows the runner acts on
(a serial device unplugged and replugged, the broker connection lost); offline they drop what the
device could not send.

Every fault has an optional device filter and time window, and draws randomness only from the
generator it is given, so the same seed gives the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from core.metrics import CATALOG, Metric
from simulators.emission import Emission, Sample

Rng = np.random.Generator


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Which devices and which time window a fault applies to (empty devices = all)."""

    devices: tuple[str, ...] = ()
    start: float = 0.0
    end: float = float("inf")

    def covers(self, device_id: str, t: float) -> bool:
        """Whether the fault applies to this device at this time."""
        in_devices = not self.devices or device_id in self.devices
        return in_devices and self.start <= t < self.end


# --- value faults -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Stuck:
    """The sensor keeps reporting the value `metric` had when the window opened."""

    kind: ClassVar[str] = "stuck"
    metric: str
    scope: Scope = field(default_factory=Scope)

    def apply(self, samples: Sequence[Sample], rng: Rng) -> list[Sample]:  # noqa: ARG002
        """Freeze `metric` inside the window."""
        held: dict[str, object] = {}
        out: list[Sample] = []
        for s in samples:
            if self.scope.covers(s.device_id, s.t) and self.metric in s.values:
                value = held.setdefault(s.device_id, s.values[self.metric])
                s = s.with_values(**{self.metric: value})  # type: ignore[arg-type]  # noqa: PLW2901
            out.append(s)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Spike:
    """With probability `p`, `metric` jumps by `magnitude` (sign random) for one sample.

    The spiked value stays inside the metric's valid range (`core.metrics.CATALOG`).
    """

    kind: ClassVar[str] = "spike"
    metric: str
    p: float = 0.05
    magnitude: float = 1000.0
    scope: Scope = field(default_factory=Scope)

    def apply(self, samples: Sequence[Sample], rng: Rng) -> list[Sample]:
        """Add occasional spikes to a numeric metric."""
        out: list[Sample] = []
        for s in samples:
            value = s.values.get(self.metric)
            if (
                self.scope.covers(s.device_id, s.t)
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and rng.random() < self.p
            ):
                sign = 1.0 if rng.random() < 0.5 else -1.0  # noqa: PLR2004 - a fair coin
                spiked = _clamp(self.metric, value + sign * self.magnitude)
                s = s.with_values(**{self.metric: type(value)(spiked)})  # noqa: PLW2901
            out.append(s)
        return out


def _clamp(metric: str, value: float) -> float:
    """Keep a spiked value inside the metric's valid range (a sensor cannot report beyond it)."""
    try:
        spec = CATALOG[Metric(metric)]
    except ValueError:
        return value
    return min(max(value, spec.minimum), spec.maximum)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSkew:
    """The device clock is off by `offset_s` plus `drift_ppm` per simulated second."""

    kind: ClassVar[str] = "clock_skew"
    offset_s: float = 0.0
    drift_ppm: float = 0.0
    scope: Scope = field(default_factory=Scope)

    def apply(self, samples: Sequence[Sample], rng: Rng) -> list[Sample]:  # noqa: ARG002
        """Shift the device's own time (`device_t`), not the time of sending."""
        return [
            replace(s, device_t=s.clock + self.offset_s + s.t * self.drift_ppm * 1e-6)
            if self.scope.covers(s.device_id, s.t)
            else s
            for s in samples
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Silent:
    """The device sends nothing inside the window (dead battery, radio shadow)."""

    kind: ClassVar[str] = "silent"
    scope: Scope = field(default_factory=Scope)

    def apply(self, samples: Sequence[Sample], rng: Rng) -> list[Sample]:  # noqa: ARG002
        """Remove every sample inside the window."""
        return [s for s in samples if not self.scope.covers(s.device_id, s.t)]


# --- byte faults --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Drop:
    """Each emission is lost with probability `p`."""

    kind: ClassVar[str] = "drop"
    p: float = 0.1
    scope: Scope = field(default_factory=Scope)

    def apply(self, emissions: Sequence[Emission], rng: Rng) -> list[Emission]:
        """Remove emissions at random."""
        return [
            e
            for e in emissions
            if not (self.scope.covers(e.device_id, e.t) and rng.random() < self.p)
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Duplicate:
    """Each emission is sent twice with probability `p` (the copy `gap_s` later)."""

    kind: ClassVar[str] = "duplicate"
    p: float = 0.1
    gap_s: float = 0.05
    scope: Scope = field(default_factory=Scope)

    def apply(self, emissions: Sequence[Emission], rng: Rng) -> list[Emission]:
        """Repeat emissions at random."""
        out: list[Emission] = []
        for e in emissions:
            out.append(e)
            if self.scope.covers(e.device_id, e.t) and rng.random() < self.p:
                out.append(e.tagged("duplicate", t=e.t + self.gap_s))
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Reorder:
    """With probability `p`, an emission swaps payload with the next one of the same device."""

    kind: ClassVar[str] = "reorder"
    p: float = 0.1
    scope: Scope = field(default_factory=Scope)

    def apply(self, emissions: Sequence[Emission], rng: Rng) -> list[Emission]:
        """Swap neighbours (times stay in order; the contents arrive out of order)."""
        out = list(emissions)
        last_index: dict[str, int] = {}
        for i, e in enumerate(out):
            j = last_index.get(e.device_id)
            last_index[e.device_id] = i
            if j is None or not self.scope.covers(e.device_id, e.t) or rng.random() >= self.p:
                continue
            prev = out[j]
            if "reorder" in prev.tags:
                continue
            out[j] = prev.tagged("reorder", payload=e.payload, topic=e.topic)
            out[i] = e.tagged("reorder", payload=prev.payload, topic=prev.topic)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class BitFlip:
    """With probability `p`, `bits` random bits of an emission are inverted."""

    kind: ClassVar[str] = "bit_flip"
    p: float = 0.05
    bits: int = 1
    scope: Scope = field(default_factory=Scope)

    def apply(self, emissions: Sequence[Emission], rng: Rng) -> list[Emission]:
        """Corrupt bits at random."""
        out: list[Emission] = []
        for e in emissions:
            if e.payload and self.scope.covers(e.device_id, e.t) and rng.random() < self.p:
                data = bytearray(e.payload)
                positions = rng.choice(
                    len(data) * 8, size=min(self.bits, len(data) * 8), replace=False
                )
                for pos in positions:
                    data[int(pos) // 8] ^= 1 << (int(pos) % 8)
                e = e.tagged("bit_flip", payload=bytes(data))  # noqa: PLW2901
            out.append(e)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Truncate:
    """With probability `p`, an emission loses a random tail (at least one byte is kept)."""

    kind: ClassVar[str] = "truncate"
    p: float = 0.05
    scope: Scope = field(default_factory=Scope)

    def apply(self, emissions: Sequence[Emission], rng: Rng) -> list[Emission]:
        """Cut emissions short at random."""
        out: list[Emission] = []
        for e in emissions:
            if len(e.payload) > 1 and self.scope.covers(e.device_id, e.t) and rng.random() < self.p:
                keep = int(rng.integers(1, len(e.payload)))
                e = e.tagged("truncate", payload=e.payload[:keep])  # noqa: PLW2901
            out.append(e)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitWrites:
    """Each emission is written in pieces of 1..`max_chunk` bytes, `gap_s` apart (serial streams)."""

    kind: ClassVar[str] = "split_writes"
    max_chunk: int = 4
    gap_s: float = 0.002
    scope: Scope = field(default_factory=Scope)

    def apply(self, emissions: Sequence[Emission], rng: Rng) -> list[Emission]:
        """Split every covered emission into several writes."""
        out: list[Emission] = []
        busy_until: dict[
            str, float
        ] = {}  # pieces of one device never interleave with the next write
        for e in emissions:
            if len(e.payload) <= 1 or not self.scope.covers(e.device_id, e.t):
                out.append(e)
                continue
            t = max(e.t, busy_until.get(e.device_id, e.t))
            pos = 0
            while pos < len(e.payload):
                size = int(rng.integers(1, self.max_chunk + 1))
                chunk = e.payload[pos : pos + size]
                out.append(e.tagged("split_writes", payload=chunk, t=t))
                pos += size
                t += self.gap_s
            busy_until[e.device_id] = t
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Garbage:
    """With probability `p`, 1..`max_len` random bytes are written before an emission."""

    kind: ClassVar[str] = "garbage"
    p: float = 0.1
    max_len: int = 16
    scope: Scope = field(default_factory=Scope)

    def apply(self, emissions: Sequence[Emission], rng: Rng) -> list[Emission]:
        """Insert line noise between frames."""
        out: list[Emission] = []
        for e in emissions:
            if self.scope.covers(e.device_id, e.t) and rng.random() < self.p:
                size = int(rng.integers(1, self.max_len + 1))
                noise = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
                out.append(
                    Emission(e.t, e.device_id, noise, ("garbage",), topic=e.topic, meta=e.meta)
                )
            out.append(e)
        return out


# --- link faults --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Unplug:
    """A serial device is unplugged for the window and plugged in again after it."""

    kind: ClassVar[str] = "unplug"
    scope: Scope = field(default_factory=Scope)

    def apply(self, emissions: Sequence[Emission], rng: Rng) -> list[Emission]:  # noqa: ARG002
        """Offline: what the device wrote while unplugged never arrives."""
        return [e for e in emissions if not self.scope.covers(e.device_id, e.t)]


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerDisconnect:
    """The simulator's MQTT connection is lost for the window (QoS 0 traffic in it is lost)."""

    kind: ClassVar[str] = "broker_disconnect"
    scope: Scope = field(default_factory=Scope)

    def apply(self, emissions: Sequence[Emission], rng: Rng) -> list[Emission]:  # noqa: ARG002
        """Offline: what was published while disconnected never arrives."""
        return [e for e in emissions if not self.scope.covers(e.device_id, e.t)]


ValueFault = Stuck | Spike | ClockSkew | Silent
ByteFault = Drop | Duplicate | Reorder | BitFlip | Truncate | SplitWrites | Garbage
LinkFault = Unplug | BrokerDisconnect
Fault = ValueFault | ByteFault | LinkFault

VALUE_FAULTS: tuple[type[ValueFault], ...] = (Stuck, Spike, ClockSkew, Silent)
BYTE_FAULTS: tuple[type[ByteFault | LinkFault], ...] = (
    Drop,
    Duplicate,
    Reorder,
    BitFlip,
    Truncate,
    SplitWrites,
    Garbage,
    Unplug,
    BrokerDisconnect,
)
FAULT_TYPES: dict[str, type[Fault]] = {cls.kind: cls for cls in (*VALUE_FAULTS, *BYTE_FAULTS)}
"""Fault classes by the `type` name used in scenario files."""


def fault_rng(seed: int, index: int) -> Rng:
    """The generator of the `index`-th fault of a run: independent of the other faults' draws."""
    return np.random.default_rng([seed, 0xFA, index])


def apply_value_faults(
    samples: Sequence[Sample], faults: Sequence[Fault], seed: int
) -> list[Sample]:
    """Apply every value fault in order (each with its own seeded generator)."""
    out = list(samples)
    for i, f in enumerate(faults):
        if isinstance(f, VALUE_FAULTS):
            out = f.apply(out, fault_rng(seed, i))
    return out


def apply_byte_faults(
    emissions: Sequence[Emission], faults: Sequence[Fault], seed: int
) -> list[Emission]:
    """Apply every byte and link fault in order, then sort stably by time."""
    out = list(emissions)
    for i, f in enumerate(faults):
        if isinstance(f, BYTE_FAULTS):
            out = f.apply(out, fault_rng(seed, i))
    out.sort(key=lambda e: e.t)
    return out
