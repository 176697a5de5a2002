"""The load generator: Zigbee2MQTT-style state messages at a target rate, each send time recorded.

Runs in its own process (`run_load`). It writes MQTT 3.1.1 itself (CONNECT, QoS 0 PUBLISH,
DISCONNECT, built by the agent's `edge_agent.mqtt_wire`) so that every message that is due goes out
as one `sendall` of ready-made packets: through paho's `publish` the generator cost as much CPU as a
gateway under test and capped every run on two cores. Messages go round-robin over the devices; in `pairs` mode each device sends two
messages back to back (same millisecond), to see whether a gateway keeps both. QoS 0, as
Zigbee2MQTT publishes by default.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.gateways.payloads import DeviceSet, payload
from bench.gateways.stats import IntArray, Sent
from edge_agent.mqtt_wire import (
    DISCONNECT,
    PacketReader,
    PacketType,
    connect_packet,
    encode_string,
    qos0_publish,
)


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


def publish_packet(topic: bytes, body: bytes) -> bytes:
    """A QoS 0 PUBLISH packet; `topic` is the length-prefixed topic name (`encode_string`)."""
    return qos0_publish(topic, body)


def connect_raw(plan: LoadPlan, client_id: str) -> socket.socket:
    """Open a clean MQTT 3.1.1 session and return its socket once the broker accepted it."""
    sock = socket.create_connection((plan.host, plan.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet(client_id, keepalive_s=60, clean_session=True))
    reader = PacketReader()
    answer: list[tuple[int, bytes]] = []
    while not answer:
        chunk = sock.recv(64)
        if not chunk:
            raise ConnectionError(f"load generator: {plan.host}:{plan.port} closed the connection")
        answer = reader.packets(chunk)
    first, body = answer[0]
    if first >> 4 != PacketType.CONNACK or body[1:] != b"\x00":
        raise ConnectionError(f"load generator: connection refused ({bytes([first]) + body!r})")
    sock.settimeout(None)
    return sock


def _close(sock: socket.socket) -> None:
    """DISCONNECT, then wait until the broker has read everything and closed its end."""
    sock.sendall(DISCONNECT)  # the broker delivers everything before it
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(4096):
        pass


def send(plan: LoadPlan, sock: socket.socket) -> Sent:
    """Publish the plan's messages at its rate; return what was sent and when."""
    devices, seqs = schedule(plan)
    device_list, seq_list = devices.tolist(), seqs.tolist()
    topics = [encode_string(plan.devices.topic(i)) for i in range(plan.devices.count)]
    sent_ns = np.zeros(plan.count, dtype=np.int64)
    publish = qos0_publish
    start = time.monotonic()
    k = 0
    while k < plan.count:
        due = min(plan.count, int((time.monotonic() - start) * plan.rate) + 1)
        now_ns = time.monotonic_ns()
        sent_ms = time.time_ns() // 1_000_000
        packets = [
            publish(topics[device], payload(plan.devices, device, seq, sent_ms))
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
    sock = connect_raw(plan, f"bench-probe-{seq}")
    try:
        topic = encode_string(devices.topic(0))
        sock.sendall(qos0_publish(topic, payload(devices, 0, seq, time.time_ns() // 1_000_000)))
        _close(sock)
    finally:
        sock.close()


def run_load(plan: LoadPlan, out: Path) -> None:
    """Process entry: send the plan and save the record to `out` (.npz)."""
    sock = connect_raw(plan, "bench-load")
    try:
        sent = send(plan, sock)
        _close(sock)
    finally:
        sock.close()
    np.savez(out, device=sent.device, seq=sent.seq, sent_ns=sent.sent_ns)


def load_sent(path: Path) -> Sent:
    """Read a record saved by `run_load`."""
    with np.load(path) as data:
        return Sent(data["device"], data["seq"], data["sent_ns"])
