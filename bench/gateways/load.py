"""The load generator: Zigbee2MQTT-style state messages at a target rate, each send time recorded.

Runs in its own process (`run_load`), publishing with paho-mqtt without a network thread, so every
`publish` writes straight to the socket. Messages go round-robin over the devices; in `pairs` mode
each device sends two messages back to back (same millisecond), to see whether a gateway keeps both.
QoS 0, as Zigbee2MQTT publishes by default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.gateways.payloads import DeviceSet, payload
from bench.gateways.stats import IntArray, Sent

LOOP_EVERY: Final = 2_000
"""Messages between calls of paho's loop (keepalive, reading the socket)."""


@dataclass(frozen=True)
class LoadPlan:
    """What to send, where and how fast."""

    port: int
    devices: DeviceSet
    rate: float
    """Messages per second."""
    seconds: float
    pairs: bool = False
    host: str = "127.0.0.1"
    qos: int = 0

    @property
    def count(self) -> int:
        """Messages in the run."""
        return max(1, round(self.rate * self.seconds))


def schedule(plan: LoadPlan) -> tuple[IntArray, IntArray]:
    """Device index and per-device sequence number of every message, in send order."""
    k = np.arange(plan.count, dtype=np.int64)
    n = plan.devices.count
    if plan.pairs:
        pair = k // 2
        return pair % n, 2 * (pair // n) + k % 2
    return k % n, k // n


def _connect(plan: LoadPlan, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect(plan.host, plan.port, keepalive=60)
    deadline = time.monotonic() + 10
    while not client.is_connected():
        client.loop(timeout=0.05)
        if time.monotonic() > deadline:
            raise ConnectionError(f"load generator: no CONNACK from {plan.host}:{plan.port}")
    return client


def _flush(client: mqtt.Client, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.want_write() and time.monotonic() < deadline:
        client.loop(timeout=0.01)


def send(plan: LoadPlan, client: mqtt.Client) -> Sent:
    """Publish the plan's messages at its rate; return what was sent and when."""
    devices, seqs = schedule(plan)
    topics = [plan.devices.topic(i) for i in range(plan.devices.count)]
    sent_ns = np.zeros(plan.count, dtype=np.int64)
    start = time.monotonic()
    k = 0
    while k < plan.count:
        due = min(plan.count, int((time.monotonic() - start) * plan.rate) + 1)
        while k < due:
            device = int(devices[k])
            now_ns = time.monotonic_ns()
            body = payload(plan.devices, device, int(seqs[k]), time.time_ns() // 1_000_000)
            client.publish(topics[device], body, qos=plan.qos)
            sent_ns[k] = now_ns
            k += 1
            if k % LOOP_EVERY == 0:
                client.loop(timeout=0)
        if k < plan.count:
            ahead = start + k / plan.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    _flush(client)
    return Sent(devices, seqs, sent_ns)


def probe(port: int, devices: DeviceSet, seq: int) -> None:
    """Publish one message of device 0 with sequence number `seq` (readiness probes)."""
    plan = LoadPlan(port, devices, 1.0, 1.0)
    client = _connect(plan, f"bench-probe-{seq}")
    client.publish(devices.topic(0), payload(devices, 0, seq, time.time_ns() // 1_000_000))
    _flush(client)
    client.disconnect()


def run_load(plan: LoadPlan, out: Path) -> None:
    """Process entry: send the plan and save the record to `out` (.npz)."""
    client = _connect(plan, "bench-load")
    sent = send(plan, client)
    client.disconnect()
    np.savez(out, device=sent.device, seq=sent.seq, sent_ns=sent.sent_ns)


def load_sent(path: Path) -> Sent:
    """Read a record saved by `run_load`."""
    with np.load(path) as data:
        return Sent(data["device"], data["seq"], data["sent_ns"])
