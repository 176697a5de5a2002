"""Readings per second through `RuleEngine` with 5,000 devices and the default pack, and memory per state.

`.venv/bin/python -m bench.rules [seconds]` from the repository root (run as `-m`: a script named
`rules.py` would shadow the `rules` package). Figures are ratios against a baseline loop measured in
the same run (a dict lookup per reading: the floor of any per-reading dispatch in Python).
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from core.metrics import Metric
from core.site import DeviceInfo, DeviceKind, SitePath
from core.types import Reading
from rules.engine import RuleEngine
from rules.packs import default_pack
from rules.spec import load_rule_files

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
SPACING_S = 0.5
"""Simulated seconds between readings: 100,000 readings cover about 14 h, so windows fill."""
TICK_EVERY = 10_000
"""Readings between ticks; far more ticks than real time would give at 50k readings/s."""
MIX = {  # kind: (devices, metrics and a value generator)
    DeviceKind.SMOKE: 2000,
    DeviceKind.MANHOLE: 800,
    DeviceKind.BIN: 800,
    DeviceKind.PERIMETER: 1000,
    DeviceKind.METER: 400,
}
METRICS = {
    DeviceKind.SMOKE: (Metric.SMOKE, Metric.BATTERY_PCT),
    DeviceKind.MANHOLE: (Metric.TILT_DEG, Metric.WATER_LEVEL_MM, Metric.COVER_MOVED),
    DeviceKind.BIN: (Metric.FILL_PCT, Metric.TEMPERATURE_C),
    DeviceKind.PERIMETER: (Metric.INTRUSION, Metric.TAMPER),
    DeviceKind.METER: (Metric.WATER_FLOW_LPH, Metric.BATTERY_PCT),
}


def _value(rng: random.Random, metric: Metric) -> float | bool:
    if metric in {Metric.SMOKE, Metric.COVER_MOVED, Metric.INTRUSION, Metric.TAMPER}:
        return rng.random() < 0.01
    ranges = {
        Metric.BATTERY_PCT: (5, 100),
        Metric.TILT_DEG: (0, 25),
        Metric.WATER_LEVEL_MM: (0, 900),
        Metric.FILL_PCT: (0, 100),
        Metric.TEMPERATURE_C: (0, 62),
        Metric.WATER_FLOW_LPH: (0, 40),
    }
    low, high = ranges[metric]
    return rng.uniform(low, high)


def build(seed: int = 7) -> tuple[RuleEngine, list[Reading]]:
    """An engine with 5,000 devices and 100,000 readings spread over them."""
    rng = random.Random(seed)
    devices: dict[str, DeviceInfo] = {}
    for kind, count in MIX.items():
        for i in range(count):
            device_id = f"{kind.value}-{i}"
            path = SitePath(
                ("d", "s", "c", f"g{i % 20}", f"c{i % 50}", f"b{i % 10}", f"u{i % 200}")
            )
            devices[device_id] = DeviceInfo(device_id, kind, path, expected_interval_s=3600)
    engine = RuleEngine(
        load_rule_files(default_pack(), timezone="Asia/Shanghai"), devices, site="bench"
    )
    ids = list(devices)
    readings = []
    for n in range(100_000):
        info = devices[ids[rng.randrange(len(ids))]]
        metric = rng.choice(METRICS[info.kind])
        readings.append(
            Reading(
                info.device_id, metric, _value(rng, metric), T0 + timedelta(seconds=n * SPACING_S)
            )
        )
    return engine, readings


def _throughput(
    engine: RuleEngine, readings: list[Reading], seconds: float, passes: int = 0
) -> tuple[float, int, int]:
    """Feed the readings again and again, each pass shifted in time so windows keep moving."""
    done = events = 0
    span = timedelta(seconds=len(readings) * SPACING_S)
    start = time.perf_counter()
    while True:
        shift = span * passes
        for n, reading in enumerate(readings):
            now = reading.ts + shift
            events += len(engine.observe(reading, now))
            if n % TICK_EVERY == 0:
                events += len(engine.tick(now))
        done += len(readings)
        passes += 1
        if time.perf_counter() - start >= seconds:
            break
    return done / (time.perf_counter() - start), events, passes


def _baseline(readings: list[Reading], seconds: float) -> float:
    table: dict[str, int] = {}
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for reading in readings:
            table[reading.device_id] = table.get(reading.device_id, 0) + 1
        done += len(readings)
    return done / (time.perf_counter() - start)


def _memory_per_state() -> tuple[float, float]:
    """Bytes per matched (rule, device) pair at rest, and per firing alarm instance."""
    engine, readings = build(seed=11)
    for reading in readings[:1000]:
        engine.observe(reading, reading.ts)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for reading in readings:
        engine.observe(reading, reading.ts)
    at_rest = tracemalloc.get_traced_memory()[0] - before
    plans = engine._plans.values()  # noqa: SLF001 - the bench counts matched pairs
    pairs = sum(len(plan[0]) for per_device in plans for plan in per_device.values())
    before = tracemalloc.get_traced_memory()[0]
    when = readings[-1].ts
    for i in range(2000):
        engine.observe(Reading(f"smoke-{i}", Metric.SMOKE, value=True, ts=when), when)
    firing = (tracemalloc.get_traced_memory()[0] - before) / 2000
    tracemalloc.stop()
    return at_rest / max(pairs, 1), firing


def run(seconds: float) -> dict[str, float]:
    """Measure for about `seconds` in total; return the figures."""
    engine, readings = build()
    share = max(seconds / 4, 0.5)
    _, _, passes = _throughput(engine, readings, 0.0)  # warm up: plans built, windows filling
    ours, events, _ = _throughput(engine, readings, share, passes)
    threshold_only = [
        r for r in readings if r.metric not in {Metric.FILL_PCT, Metric.WATER_FLOW_LPH}
    ]
    engine2, _ = build()
    _, _, passes = _throughput(engine2, threshold_only, 0.0)
    simple, _, _ = _throughput(engine2, threshold_only, share, passes)
    baseline = _baseline(readings, share)
    per_pair, per_firing = _memory_per_state()
    return {
        "readings_per_s": ours,
        "readings_per_s_without_window_rules": simple,
        "baseline_dict_update_per_s": baseline,
        "ratio_ours_to_baseline": ours / baseline,
        "events_emitted": float(events),
        "windows_out_of_order": float(engine.counters["window_out_of_order"]),
        "bytes_per_rule_device_pair_at_rest": per_pair,
        "bytes_per_firing_instance": per_firing,
    }


if __name__ == "__main__":
    figures = run(float(sys.argv[1]) if len(sys.argv) > 1 else 6.0)
    width = max(map(len, figures))
    for name, value in figures.items():
        shown = f"{value:>14.3e}" if "ratio" in name else f"{value:>14,.2f}"
        print(f"{name:<{width}}  {shown}")
