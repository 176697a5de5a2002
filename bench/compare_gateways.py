"""Side by side: Steward's agent, ThingsBoard IoT Gateway and the broker alone, under the same load.

`.venv/bin/python bench/compare_gateways.py [--quick] [--only NAME ...]` from the repository root.
Zigbee2MQTT-style JSON goes to a local Mosquitto; each gateway forwards it to an uplink Mosquitto,
where a receiver decodes what arrives. Prints one table and writes every run's figures as JSON under
bench/results/. See bench/README.md ("gateways") for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gateways.payloads import DeviceSet
from bench.gateways.scenarios import (
    RunResult,
    freeze,
    max_sustained,
    outage,
    pairs,
    steady,
)
from bench.gateways.targets import Target, all_targets

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Mode:
    """Durations of one benchmark mode."""

    step_s: float
    latency_s: float
    fault_run_s: float
    outage_s: float
    freeze_run_s: float
    freeze_s: float
    fault_rate: float = 200.0
    latency_rate: float = 1000.0


QUICK = Mode(step_s=3, latency_s=5, fault_run_s=20, outage_s=10, freeze_run_s=20, freeze_s=10)
FULL = Mode(step_s=10, latency_s=30, fault_run_s=60, outage_s=30, freeze_run_s=240, freeze_s=150)
START_RATE = {"broker only": 5000.0, "steward": 2000.0, "thingsboard": 250.0}
MAX_RATE = 160_000.0


def _log(result: RunResult) -> None:
    d = result.delivery
    sys.stderr.write(
        f"  {result.target:12} {result.scenario:14} {result.rate:>8.0f}/s "
        f"(sent at {result.achieved_rate:>8.0f}/s) loss {d.loss_ratio:7.3%} "
        f"late {d.late:>6} reordered {d.reorder_ratio:6.2%} p50 {d.latency_p50_ms:8.1f} ms "
        f"p99 {d.latency_p99_ms:8.1f} ms {'ok' if result.sustained else 'NOT sustained'}"
    )
    dropped = result.notes.get("local_broker_dropped")
    if dropped:
        sys.stderr.write(f" (local broker dropped {dropped:.0f})")
    sys.stderr.write("\n")


def measure(target: Target, mode: Mode) -> dict[str, object]:
    """Every figure of one target."""
    devices = DeviceSet(200)
    figures: dict[str, object] = {}
    runs: list[RunResult] = []
    sys.stderr.write(f"{target.name}: searching the sustained rate\n")
    best, search = max_sustained(
        target,
        devices,
        start_rate=START_RATE[target.name],
        seconds=mode.step_s,
        max_rate=MAX_RATE,
        log=_log,
    )
    runs += search
    figures["max_sustained_per_s"] = best
    at_best = [r for r in search if r.rate == best]
    if at_best:
        figures["cpu_s_per_10k_at_max"] = at_best[-1].cpu_s_per_10k
        figures["peak_rss_mb_at_max"] = at_best[-1].peak_rss_mb

    def run(name: str, fn: Callable[[], RunResult]) -> RunResult:
        result = fn()
        _log(result)
        runs.append(result)
        figures[name] = result.as_dict()
        return result

    latency = run(
        "at_1k",
        lambda: steady(target, mode.latency_rate, mode.latency_s, DeviceSet(200, smoke=20)),
    )
    figures["p50_ms_at_1k"] = latency.delivery.latency_p50_ms
    figures["p99_ms_at_1k"] = latency.delivery.latency_p99_ms
    figures["cpu_s_per_10k_at_1k"] = latency.cpu_s_per_10k
    figures["peak_rss_mb_at_1k"] = latency.peak_rss_mb
    figures["alarm_p99_ms_at_1k"] = latency.alarm_p99_ms
    overload_rate = max(2 * best, 2 * START_RATE[target.name])
    overload = run(
        "overload", lambda: steady(target, overload_rate, mode.step_s, devices, "overload")
    )
    figures["overload_reorder_ratio"] = overload.delivery.reorder_ratio
    figures["overload_loss_ratio"] = overload.delivery.loss_ratio
    figures["overload_lost_past_local_broker_ratio"] = overload.notes.get(
        "lost_past_local_broker_ratio"
    )
    same_ms = run("same_ms", lambda: pairs(target, mode.fault_rate, mode.step_s, devices))
    figures["same_ms_kept_ratio"] = 1 - same_ms.delivery.loss_ratio
    if not target.same_broker:
        down = run(
            "outage",
            lambda: outage(target, mode.fault_rate, mode.fault_run_s, devices, mode.outage_s),
        )
        figures["outage_loss_ratio"] = down.delivery.loss_ratio
        frozen = run(
            "frozen",
            lambda: freeze(target, mode.fault_rate, mode.freeze_run_s, devices, mode.freeze_s),
        )
        figures["frozen_loss_ratio"] = frozen.delivery.loss_ratio
    peaks = [r.peak_rss_mb for r in runs if r.peak_rss_mb is not None]
    figures["peak_rss_mb"] = max(peaks) if peaks else None
    figures["runs"] = [r.as_dict() for r in runs]
    return figures


def _fmt(value: object, spec: str, scale: float = 1.0) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return format(value * scale, spec)


ROWS: tuple[tuple[str, str, str, float], ...] = (
    ("sustained msg/s (< 0.1 % loss)", "max_sustained_per_s", ",.0f", 1),
    ("latency p50 at 1k msg/s (ms)", "p50_ms_at_1k", ".1f", 1),
    ("latency p99 at 1k msg/s (ms)", "p99_ms_at_1k", ".1f", 1),
    ("alarm p99 at 1k msg/s (ms)", "alarm_p99_ms_at_1k", ".1f", 1),
    ("CPU s per 10k msgs at 1k msg/s", "cpu_s_per_10k_at_1k", ".2f", 1),
    ("CPU s per 10k msgs at max", "cpu_s_per_10k_at_max", ".2f", 1),
    ("peak RSS (MB)", "peak_rss_mb", ".1f", 1),
    ("loss, uplink outage (%)", "outage_loss_ratio", ".2f", 100),
    ("loss, frozen uplink (%)", "frozen_loss_ratio", ".2f", 100),
    ("reordered under 2x overload (%)", "overload_reorder_ratio", ".2f", 100),
    ("loss under 2x overload (%)", "overload_loss_ratio", ".2f", 100),
    (
        "of it lost past the local broker (%)",
        "overload_lost_past_local_broker_ratio",
        ".2f",
        100,
    ),
    ("same-ms readings kept (%)", "same_ms_kept_ratio", ".1f", 100),
)


def table(results: dict[str, dict[str, object]]) -> str:
    """The comparison as a Markdown table."""
    names = list(results)
    lines = ["| figure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, key, spec, scale in ROWS:
        cells = [_fmt(results[n].get(key), spec, scale) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs (about 3-5 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        choices=["broker", "steward", "thingsboard"],
        help="measure only these targets (repeatable)",
    )
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    wanted = {"broker": "broker only", "steward": "steward", "thingsboard": "thingsboard"}
    only = {wanted[o] for o in args.only} if args.only else None
    started = time.monotonic()
    results: dict[str, dict[str, object]] = {}
    for target in all_targets():
        if only is None or target.name in only:
            results[target.name] = measure(target, mode)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"gateways-{'quick' if args.quick else 'full'}-{stamp}.json"
    doc = {"mode": mode.__dict__, "elapsed_s": time.monotonic() - started, "results": results}
    out.write_text(json.dumps(doc, indent=2, default=float))
    sys.stdout.write(table(results) + f"\n\n({time.monotonic() - started:.0f} s; {out})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
