"""The load generator: Zigbee2MQTT-style state messages at a target rate, each send time recorded.

Runs in its own process (`run_load`). It speaks just enough MQTT 3.1.1 itself (CONNECT, QoS 0
PUBLISH, DISCONNECT) to write every message that is due as one `sendall` of ready-made packets:
through paho's `publish` the generator cost as much CPU as a gateway under test and capped every
run on two cores. Messages go round-robin over the devices; in `pairs` mode each device sends two
messages back to back (same millisecond), to see whether a gateway keeps both. QoS 0, as
Zigbee2MQTT publishes by default.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.gateways.payloads import DeviceSet, payload
from bench.gateways.stats import IntArray, Sent


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


def _remaining_length(size: int) -> bytes:
    out = bytearray()
    while True:
        size, byte = divmod(size, 128)
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def publish_packet(topic: bytes, body: bytes) -> bytes:
    """A QoS 0 PUBLISH packet; `topic` is the length-prefixed topic name (`_string`)."""
    return b"\x30" + _remaining_length(len(topic) + len(body)) + topic + body


def connect_raw(plan: LoadPlan, client_id: str) -> socket.socket:
    """Open a clean MQTT 3.1.1 session and return its socket once the broker accepted it."""
    sock = socket.create_connection((plan.host, plan.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # protocol name, level 4, flags: clean session, keepalive 60 s; then the client id
    variable = _string("MQTT") + b"\x04\x02" + (60).to_bytes(2, "big") + _string(client_id)
    sock.sendall(b"\x10" + _remaining_length(len(variable)) + variable)
    connack = b""
    while len(connack) < 4:
        chunk = sock.recv(4 - len(connack))
        if not chunk:
            raise ConnectionError(f"load generator: {plan.host}:{plan.port} closed the connection")
        connack += chunk
    if connack[0] != 0x20 or connack[3] != 0:
        raise ConnectionError(f"load generator: connection refused ({connack.hex()})")
    sock.settimeout(None)
    return sock


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


def send(plan: LoadPlan, sock: socket.socket) -> Sent:
    """Publish the plan's messages at its rate; return what was sent and when."""
    devices, seqs = schedule(plan)
    device_list, seq_list = devices.tolist(), seqs.tolist()
    topics = [_string(plan.devices.topic(i)) for i in range(plan.devices.count)]
    sent_ns = np.zeros(plan.count, dtype=np.int64)
    start = time.monotonic()
    k = 0
    while k < plan.count:
        due = min(plan.count, int((time.monotonic() - start) * plan.rate) + 1)
        now_ns = time.monotonic_ns()
        sent_ms = time.time_ns() // 1_000_000
        packets = [
            publish_packet(topics[device], payload(plan.devices, device, seq, sent_ms))
            for device, seq in zip(device_list[k:due], seq_list[k:due], strict=True)
        ]
        sent_ns[k:due] = now_ns
        sock.sendall(b"".join(packets))
        k = due
        if k < plan.count:
            ahead = start + k / plan.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
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
    sock = connect_raw(plan, "bench-load")
    try:
        sent = send(plan, sock)
        sock.sendall(b"\xe0\x00")  # DISCONNECT: the broker delivers everything before it
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):  # the broker closes once it has read it all
            pass
    finally:
        sock.close()
    np.savez(out, device=sent.device, seq=sent.seq, sent_ns=sent.sent_ns)


def load_sent(path: Path) -> Sent:
    """Read a record saved by `run_load`."""
    with np.load(path) as data:
        return Sent(data["device"], data["seq"], data["sent_ns"])
