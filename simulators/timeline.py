"""Offline generation: a scenario in simulated time -> time-ordered emissions and the ground truth.

Nothing sleeps; weeks of data come out in seconds. The same scenario and seed give the same bytes.
Each device is sampled every `tick` (default: the smaller of its interval and 30 s); it reports every
`interval` (with a little jitter), and at once when one of its boolean values changes, as battery
devices do on an alarm.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from core.types import RawFrame
from simulators.emission import Emission, Sample
from simulators.encoding import DeviceEncoder
from simulators.faults import Fault, Unplug, apply_byte_faults, apply_value_faults
from simulators.models import make_model
from simulators.scenario import Device, Scenario, build_fault
from simulators.truth import TruthRecord

DEFAULT_TICK_S = 30.0


@dataclass(slots=True)
class Generated:
    """The output of one offline run."""

    emissions: list[Emission] = field(default_factory=list)
    truth: list[TruthRecord] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def device_rng(seed: int, index: int, purpose: int) -> np.random.Generator:
    """The generator for one device and one purpose (0 model, 1 timing, 2 radio)."""
    return np.random.default_rng([seed, index, purpose])


def scenario_faults(scenario: Scenario) -> list[Fault]:
    """The fault objects of a scenario's timeline, in file order."""
    return [build_fault(e) for e in scenario.timeline if e.fault is not None]


def sample_device(
    scenario: Scenario, index: int, device: Device, seed: int, duration: float
) -> tuple[list[Sample], list[tuple[float, str]]]:
    """Run one device's model over `duration`; return its reports and spontaneous incidents."""
    model = make_model(device.kind, device_rng(seed, index, 0), _model_params(device))
    timing = device_rng(seed, index, 1)
    tick = device.tick or min(device.interval, DEFAULT_TICK_S)
    incidents = [e for e in scenario.timeline if e.incident is not None and e.device == device.id]
    start = scenario.start
    offset_h = (start.hour + start.minute / 60 + start.second / 3600) % 24
    t = float(timing.uniform(0, min(tick, device.interval)))
    next_report = t
    last: dict[str, bool] | None = None
    samples: list[Sample] = []
    while t < duration:
        hour = (offset_h + t / 3600) % 24
        active = {e.incident or "": e.at for e in incidents if e.at <= t < e.end}
        values = model.sample(t, hour, active)
        flags = {k: v for k, v in values.items() if isinstance(v, bool)}
        changed = last is not None and flags != last
        if t >= next_report or changed:
            samples.append(Sample(t, device.id, values))
            next_report = t + device.interval * float(timing.uniform(0.98, 1.02))
        last = flags
        t += tick
    return samples, list(model.spontaneous)


def _model_params(device: Device) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in device.params.items():
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def generate(
    scenario: Scenario, *, seed: int | None = None, duration: float | None = None
) -> Generated:
    """Generate a whole scenario offline (see the module docstring)."""
    seed = scenario.seed if seed is None else seed
    duration = scenario.duration if duration is None else duration
    out = Generated()
    for index, device in enumerate(scenario.devices):
        samples, spontaneous = sample_device(scenario, index, device, seed, duration)
        out.samples.extend(samples)
        out.truth.extend(
            _truth(scenario, device, t, name, None, "model", None) for t, name in spontaneous
        )
    for entry in scenario.timeline:
        if entry.incident is not None and entry.device is not None and entry.at < duration:
            device = scenario.device(entry.device)
            out.truth.append(
                _truth(
                    scenario,
                    device,
                    entry.at,
                    entry.incident,
                    entry.duration,
                    "timeline",
                    entry.detect_within,
                )
            )
    faults = scenario_faults(scenario)
    out.truth.extend(_link_losses(scenario, faults, duration))
    out.truth.sort(key=lambda r: (r.t_s, r.device))
    out.samples.sort(key=lambda s: (s.t, s.device_id))
    faulty = apply_value_faults(out.samples, faults, seed)
    encoders = {
        d.id: DeviceEncoder(scenario, d, device_rng(seed, i, 2))
        for i, d in enumerate(scenario.devices)
    }
    emissions = [e for s in faulty for e in encoders[s.device_id].encode(s)]
    out.emissions = apply_byte_faults(emissions, faults, seed)
    return out


def _link_losses(scenario: Scenario, faults: list[Fault], duration: float) -> list[TruthRecord]:
    """An unplugged wired device is an incident the gateway can see: its link is lost."""
    wired = [d for d in scenario.devices if d.transport in {"serial", "modbus"}]
    return [
        _truth(scenario, d, f.scope.start, "link_lost", _length(f), "fault", None)
        for f in faults
        if isinstance(f, Unplug) and f.scope.start < duration
        for d in wired
        if not f.scope.devices or d.id in f.scope.devices
    ]


def _length(fault: Fault) -> float | None:
    length = fault.scope.end - fault.scope.start
    return None if math.isinf(length) else length


def _truth(  # noqa: PLR0917 - a private record builder
    scenario: Scenario,
    device: Device,
    t: float,
    incident: str,
    length: float | None,
    source: str,
    detect_within: float | None,
) -> TruthRecord:
    start = scenario.start.astimezone(UTC)
    return TruthRecord(
        t=start + timedelta(seconds=t),
        t_s=t,
        device=device.id,
        incident=incident,
        until=None if length is None else start + timedelta(seconds=t + length),
        location=str(scenario.location(device)),
        kind=device.kind,
        source=source,
        detect_within_s=device.interval if detect_within is None else detect_within,
    )


def raw_frames(scenario: Scenario, generated: Generated) -> Iterator[tuple[datetime, RawFrame]]:
    """The emissions as `(time, RawFrame)`, as a source on the gateway would see them."""
    start = scenario.start.astimezone(UTC)
    codec_of = {d.id: d.codec for d in scenario.devices}
    for e in generated.emissions:
        at = start + timedelta(seconds=e.t)
        meta = {"device_id": e.device_id, **e.meta}
        if e.topic:
            meta["topic"] = e.topic
        yield at, RawFrame(e.device_id, codec_of[e.device_id], e.payload, at, meta)
