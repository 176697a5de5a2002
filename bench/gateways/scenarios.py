"""The runs: one rate through one target, the sustained-rate search, and the fault runs.

Every run gets fresh brokers, a fresh gateway process and a fresh receiver (`Rig`), so runs do not
see each other's sessions or queues. The gateway is probed until it forwards a message before the
load starts, and its CPU and memory are sampled from then on.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from bench.gateways.broker_counters import SYS_INTERVAL_CONFIG, broker_dropped
from bench.gateways.load import LoadPlan, load_sent, probe, run_load
from bench.gateways.payloads import DeviceSet
from bench.gateways.procstat import ProcSampler, ProcUsage
from bench.gateways.receiver import PROBE_BASE, ReceiverSpec, load_received, run_receiver
from bench.gateways.stats import Delivery, Received, Sent, alarm_latencies, analyse, percentile_ms
from bench.gateways.targets import Target, remove_tree
from simulators.services import Mosquitto

CTX: Final = mp.get_context("spawn")
LATE_AFTER_S: Final = 1.0
"""A message that takes longer than this counts as not kept up with (the gateway fell behind)."""
SUSTAINED_LOSS: Final = 0.001


@dataclass
class RunResult:
    """Figures of one run of one target."""

    target: str
    scenario: str
    rate: float
    seconds: float
    achieved_rate: float
    delivery: Delivery
    cpu_s: float | None
    peak_rss_mb: float | None
    alarm_p50_ms: float | None = None
    alarm_p99_ms: float | None = None
    alarms: int = 0
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_s_per_10k(self) -> float | None:
        """Gateway CPU seconds per 10,000 messages sent."""
        if self.cpu_s is None or not self.delivery.sent:
            return None
        return self.cpu_s / self.delivery.sent * 10_000

    @property
    def sustained(self) -> bool:
        """Under 0.1 % of the messages lost or later than 1 s, and the generator reached the rate."""
        return (
            self.delivery.on_time_loss_ratio < SUSTAINED_LOSS
            and self.achieved_rate >= 0.95 * self.rate
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {
            "target": self.target,
            "scenario": self.scenario,
            "rate": self.rate,
            "seconds": self.seconds,
            "achieved_rate": float(self.achieved_rate),
            "sustained": bool(self.sustained),
            "cpu_s": self.cpu_s,
            "cpu_s_per_10k": self.cpu_s_per_10k,
            "peak_rss_mb": self.peak_rss_mb,
            "alarm_p50_ms": self.alarm_p50_ms,
            "alarm_p99_ms": self.alarm_p99_ms,
            "alarms": self.alarms,
            **self.delivery.as_dict(),
            **self.notes,
        }


class Rig:
    """Brokers, the target, the receiver and the sampler of one run."""

    def __init__(self, target: Target, devices: DeviceSet) -> None:
        """Prepare; `start()` launches everything."""
        self.target = target
        self.devices = devices
        self.workdir = Path(tempfile.mkdtemp(prefix="steward-gwbench-"))
        self.uplink = Mosquitto([SYS_INTERVAL_CONFIG])
        self.local = self.uplink if target.same_broker else Mosquitto([SYS_INTERVAL_CONFIG])
        self.stop_event = CTX.Event()
        self.progress = CTX.Array("q", 3, lock=False)
        self.receiver: mp.process.BaseProcess | None = None
        self.sampler: ProcSampler | None = None
        self.usage: ProcUsage | None = None
        self.local_dropped: int | None = None
        """Messages the local broker dropped during the run (its queue for the gateway was full)."""

    def start(self, ready_timeout_s: float = 90.0) -> None:
        """Start brokers, receiver and gateway; return once a probe came through."""
        self.uplink.start()
        if self.local is not self.uplink:
            self.local.start()
        spec = ReceiverSpec(
            self.uplink.port, self.target.uplink_topic, self.target.decoder, self.devices
        )
        self.receiver = CTX.Process(
            target=run_receiver,
            args=(spec, self.workdir / "received.npz", self.stop_event, self.progress),
            daemon=True,
        )
        self.receiver.start()
        self.target.start(self.local.port, self.uplink.port, self.workdir, self.devices)
        deadline = time.monotonic() + ready_timeout_s
        attempt = 0
        while self.progress[2] == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.target.name}: no probe forwarded in {ready_timeout_s} s")
            probe(self.local.port, self.devices, PROBE_BASE + attempt)
            attempt += 1
            time.sleep(0.5)
        pid = self.target.pid()
        if pid is None and self.uplink.proc is not None:
            pid = self.uplink.proc.pid  # no gateway: the broker does the forwarding
        if pid is not None:
            self.sampler = ProcSampler(pid).start()

    def load(
        self, plan_rate: float, seconds: float, *, pairs: bool = False
    ) -> mp.process.BaseProcess:
        """Start the load generator process (join it, then call `sent()`)."""
        plan = LoadPlan(self.local.port, self.devices, plan_rate, seconds, pairs=pairs)
        proc = CTX.Process(target=run_load, args=(plan, self.workdir / "sent.npz"), daemon=True)
        proc.start()
        return proc

    def sent(self) -> Sent:
        """What the last load generator sent."""
        return load_sent(self.workdir / "sent.npz")

    def drain(self, idle_s: float, max_s: float, expected: int | None = None) -> None:
        """Wait until `expected` messages arrived, or nothing arrived for `idle_s`, or `max_s` passed.

        Idle time counts from the later of the last arrival and the call, so a gateway that is still
        reconnecting after a fault (nothing arrived for a while) gets the whole `idle_s` to deliver.
        """
        start = time.monotonic_ns()
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            if expected is not None and self.progress[0] >= expected:
                return
            last = max(self.progress[1], start)
            if time.monotonic_ns() - last > idle_s * 1e9:
                return
            time.sleep(0.1)

    def finish(self) -> tuple[Received, Received]:
        """Stop sampling and the receiver; return readings and alarm arrivals."""
        if self.sampler is not None:
            self.usage = self.sampler.stop()
        if self.local.proc is not None and self.local.proc.poll() is None:
            time.sleep(1.1)  # one `sys_interval`: the counter includes the end of the run
            self.local_dropped = broker_dropped(self.local.port)
        self.stop_event.set()
        if self.receiver is not None:
            self.receiver.join(30)
        readings, alarms, _errors = load_received(self.workdir / "received.npz")
        return readings, alarms

    def close(self) -> None:
        """Stop everything and remove the working directory."""
        self.target.stop()
        if self.receiver is not None and self.receiver.is_alive():
            self.receiver.kill()
        self.uplink.close()
        if self.local is not self.uplink:
            self.local.close()
        remove_tree(self.workdir)


@contextmanager
def rig(target: Target, devices: DeviceSet) -> Iterator[Rig]:
    """A started `Rig`, closed on exit."""
    r = Rig(target, devices)
    try:
        r.start()
        yield r
    finally:
        r.close()


def _result(
    r: Rig, scenario: str, rate: float, seconds: float, *, sent: Sent, received: Received
) -> RunResult:
    sensors = sent.device < r.devices.sensors
    sensor_sent = Sent(sent.device[sensors], sent.seq[sensors], sent.sent_ns[sensors])
    delivery = analyse(sensor_sent, received, int(LATE_AFTER_S * 1e9))
    span_s = (sent.sent_ns.max() - sent.sent_ns.min()) / 1e9 if sent.sent_ns.size > 1 else 0.0
    achieved = (sent.sent_ns.size - 1) / span_s if span_s > 0 else 0.0
    usage = r.usage
    result = RunResult(
        target=r.target.name,
        scenario=scenario,
        rate=rate,
        seconds=seconds,
        achieved_rate=achieved,
        delivery=delivery,
        cpu_s=None if usage is None else usage.cpu_s,
        peak_rss_mb=None if usage is None else usage.peak_rss_bytes / 2**20,
    )
    if r.local_dropped is not None and delivery.sent:
        # What the local broker dropped never reached the gateway; the rest was lost past it.
        result.notes["local_broker_dropped"] = float(r.local_dropped)
        past_broker = max(0, delivery.lost - r.local_dropped)
        result.notes["lost_past_local_broker_ratio"] = past_broker / delivery.sent
    return result


def steady(
    target: Target, rate: float, seconds: float, devices: DeviceSet, scenario: str = "steady"
) -> RunResult:
    """One rate for `seconds`; alarm latency too when `devices` has smoke detectors."""
    with rig(target, devices) as r:
        r.load(rate, seconds).join()
        r.drain(idle_s=3.0, max_s=60.0)
        readings, alarms = r.finish()
        sent = r.sent()
        result = _result(r, scenario, rate, seconds, sent=sent, received=readings)
        if devices.smoke:
            alarming = (sent.device >= devices.sensors) & (sent.seq % 2 == 1)
            latency = alarm_latencies(sent, alarms, alarming)
            result.alarms = int(latency.size)
            result.alarm_p50_ms = percentile_ms(latency, 50)
            result.alarm_p99_ms = percentile_ms(latency, 99)
            result.notes["alarm_messages_sent"] = float(np.count_nonzero(alarming))
        return result


def pairs(target: Target, rate: float, seconds: float, devices: DeviceSet) -> RunResult:
    """Each device sends two messages in the same millisecond: are both kept?"""
    with rig(target, devices) as r:
        r.load(rate, seconds, pairs=True).join()
        r.drain(idle_s=3.0, max_s=60.0)
        readings, _ = r.finish()
        return _result(r, "same_ms_pairs", rate, seconds, sent=r.sent(), received=readings)


def with_fault(
    target: Target,
    rate: float,
    seconds: float,
    devices: DeviceSet,
    *,
    scenario: str,
    fault_at_s: float,
    fault_s: float,
    begin: Callable[[Mosquitto], None],
    end: Callable[[Mosquitto], None],
) -> RunResult:
    """Load for `seconds`; the uplink broker suffers `begin`..`end` for `fault_s` from `fault_at_s`."""
    with rig(target, devices) as r:
        load = r.load(rate, seconds)
        time.sleep(fault_at_s)
        begin(r.uplink)
        time.sleep(fault_s)
        end(r.uplink)
        load.join()
        # A gateway may reconnect well after the broker is back (exponential backoff, 60 s at most
        # for Steward): wait for every message, or for longer than that backoff without an arrival.
        r.drain(idle_s=75.0, max_s=300.0, expected=len(r.sent().seq))
        readings, _ = r.finish()
        result = _result(r, scenario, rate, seconds, sent=r.sent(), received=readings)
        result.notes["fault_s"] = fault_s
        return result


def _start(broker: Mosquitto) -> None:
    broker.start()


def outage(
    target: Target, rate: float, seconds: float, devices: DeviceSet, fault_s: float
) -> RunResult:
    """The uplink broker is stopped for `fault_s` (connection refused), then started again."""
    return with_fault(
        target,
        rate,
        seconds,
        devices,
        scenario="uplink_outage",
        fault_at_s=min(5.0, seconds / 4),
        fault_s=fault_s,
        begin=Mosquitto.stop,
        end=_start,
    )


def freeze(
    target: Target, rate: float, seconds: float, devices: DeviceSet, fault_s: float
) -> RunResult:
    """The uplink broker is frozen with SIGSTOP for `fault_s` (TCP open, nothing answered)."""
    return with_fault(
        target,
        rate,
        seconds,
        devices,
        scenario="uplink_frozen",
        fault_at_s=min(5.0, seconds / 4),
        fault_s=fault_s,
        begin=Mosquitto.pause,
        end=Mosquitto.resume,
    )


def max_sustained(
    target: Target,
    devices: DeviceSet,
    *,
    start_rate: float,
    seconds: float,
    max_rate: float,
    log: Callable[[RunResult], None],
) -> tuple[float, list[RunResult]]:
    """Double the rate while it is sustained, then bisect once; return the best sustained rate."""
    runs: list[RunResult] = []
    best = 0.0
    failed: float | None = None
    rate = start_rate
    while rate <= max_rate:
        result = steady(target, rate, seconds, devices, scenario="search")
        runs.append(result)
        log(result)
        if result.sustained:
            best = rate
            if failed is not None:
                break
            rate *= 2
        else:
            failed = rate
            if best == 0.0:
                rate /= 2
                if rate < start_rate / 8:
                    break
                continue
            rate = (best + failed) / 2
            if rate - best < best * 0.2:
                break
    return best, runs
