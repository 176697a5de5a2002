"""The receiver on the uplink broker: decodes what each gateway forwards, records every arrival.

Runs in its own process (`run_receiver`) with a persistent session (clean session off, QoS 1), so
whatever a gateway re-sends after an uplink outage is still counted. It reads with the edge agent's
`MqttIntake`, which splits packets itself: with paho's one callback per message, the subscriber was
what limited the broker-only ceiling, so that figure said more about the receiver than the broker.
Decoders are pure and map a message to (device index, sequence number) pairs plus the devices of
FIRING alarm events:

- Steward: envelope JSON, read for just the fields the benchmark needs (the tests check envelopes
  in full; a full decode here cost the receiver more CPU than the gateway it measures); the
  sequence number is the `illuminance_lux` reading (see `payloads`).
- ThingsBoard IoT Gateway: `v1/gateway/telemetry` JSON, `{"device": [{"ts": ms, "values": {...}}]}`.
- Broker only: the Zigbee2MQTT state itself, device from the topic.

Sequence numbers at or above `PROBE_BASE` are readiness probes and are only counted.
"""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Final, Protocol

import numpy as np

from bench.gateways.payloads import BASE_TOPIC, DeviceSet
from bench.gateways.stats import Received
from bench.gateways.targets import Decoder
from core.metrics import Metric
from core.types import AlarmState
from edge_agent.sources.mqtt_intake import MqttIntake, MqttIntakeError

PROBE_BASE: Final = 3_000_000_000
ILLUMINANCE: Final = Metric.ILLUMINANCE_LUX.value
FIRING: Final = AlarmState.FIRING.value


@dataclass
class Decoded:
    """What one uplink message carried."""

    messages: list[tuple[int, int]] = field(default_factory=list)
    """(device index, sequence number) of each forwarded benchmark reading."""
    alarms: list[int] = field(default_factory=list)
    """Device index of each FIRING alarm event."""
    errors: int = 0


@lru_cache(maxsize=4096)
def _index_of(devices: DeviceSet, name: str) -> int | None:
    return devices.index_of(name)


def decode_steward(payload: bytes, devices: DeviceSet) -> Decoded:
    """Readings of `illuminance_lux` and FIRING alarm events of a Steward envelope."""
    out = Decoded()
    try:
        doc = json.loads(payload)
        readings, events = doc["readings"], doc["alarm_events"]
        for reading in readings:
            if reading["metric"] == ILLUMINANCE:
                index = _index_of(devices, reading["device"])
                value = reading["value"]
                if index is not None and type(value) is not bool:
                    out.messages.append((index, int(value)))
        for event in events:
            index = _index_of(devices, event["device"])
            if event["state"] == FIRING and index is not None:
                out.alarms.append(index)
    except (ValueError, KeyError, TypeError):
        out.errors += 1
    return out


def _seq_of(values: object) -> int | None:
    if isinstance(values, dict):
        seq = values.get("seq")
        if isinstance(seq, int | float) and not isinstance(seq, bool):
            return int(seq)
    return None


def decode_thingsboard(payload: bytes, devices: DeviceSet) -> Decoded:
    """Entries of a `v1/gateway/telemetry` message that carry a `seq` value."""
    out = Decoded()
    try:
        doc = json.loads(payload)
    except ValueError:
        out.errors += 1
        return out
    if not isinstance(doc, dict):
        out.errors += 1
        return out
    for name, entries in doc.items():
        index = devices.index_of(str(name))
        if index is None or not isinstance(entries, list):
            continue
        for entry in entries:
            values = entry.get("values", entry) if isinstance(entry, dict) else None
            seq = _seq_of(values)
            if seq is not None:
                out.messages.append((index, seq))
    return out


def decode_z2m(topic: str, payload: bytes, devices: DeviceSet) -> Decoded:
    """A Zigbee2MQTT state message read straight off the broker."""
    out = Decoded()
    index = devices.index_of(topic.removeprefix(BASE_TOPIC + "/"))
    try:
        seq = _seq_of(json.loads(payload))
    except ValueError:
        seq = None
    if index is None or seq is None:
        out.errors += 1
    else:
        out.messages.append((index, seq))
    return out


def decode(kind: Decoder, topic: str, payload: bytes, devices: DeviceSet) -> Decoded:
    """Dispatch to the decoder of a target."""
    if kind == "steward":
        return decode_steward(payload, devices)
    if kind == "thingsboard":
        return decode_thingsboard(payload, devices)
    return decode_z2m(topic, payload, devices)


class Progress(Protocol):
    """Shared counters the parent polls: [arrivals, last arrival monotonic ns, probes]."""

    def __getitem__(self, index: int) -> int: ...
    def __setitem__(self, index: int, value: int) -> None: ...


@dataclass(frozen=True)
class ReceiverSpec:
    """Where to listen and how to decode."""

    port: int
    topic: str
    decoder: Decoder
    devices: DeviceSet
    client_id: str = "bench-receiver"
    host: str = "127.0.0.1"


class Recorder:
    """Collects arrivals."""

    def __init__(self, spec: ReceiverSpec, progress: Progress) -> None:
        """Empty record."""
        self.spec = spec
        self.progress = progress
        self.device = array("q")
        self.seq = array("q")
        self.recv_ns = array("q")
        self.alarm_device = array("q")
        self.alarm_ns = array("q")
        self.errors = 0
        self.probes = 0

    def on_message(self, topic: str, payload: bytes, now: int) -> None:
        """Decode one message that arrived at `now` (monotonic ns) and record its arrivals."""
        decoded = decode(self.spec.decoder, topic, payload, self.spec.devices)
        self.errors += decoded.errors
        for device, seq in decoded.messages:
            if seq >= PROBE_BASE:
                self.probes += 1
                continue
            self.device.append(device)
            self.seq.append(seq)
            self.recv_ns.append(now)
        for device in decoded.alarms:
            self.alarm_device.append(device)
            self.alarm_ns.append(now)
        self.progress[0] = len(self.device)
        self.progress[1] = now
        self.progress[2] = self.probes

    def save(self, out: Path) -> None:
        """Write the record as .npz."""
        np.savez(
            out,
            device=np.array(self.device, dtype=np.int64),
            seq=np.array(self.seq, dtype=np.int64),
            recv_ns=np.array(self.recv_ns, dtype=np.int64),
            alarm_device=np.array(self.alarm_device, dtype=np.int64),
            alarm_ns=np.array(self.alarm_ns, dtype=np.int64),
            errors=np.array([self.errors], dtype=np.int64),
        )


def run_receiver(spec: ReceiverSpec, out: Path, stop: Event, progress: Progress) -> None:
    """Process entry: subscribe, record until `stop` is set, save the record to `out`."""
    recorder = Recorder(spec, progress)
    asyncio.run(_receive(spec, recorder, stop))
    recorder.save(out)


async def _receive(spec: ReceiverSpec, recorder: Recorder, stop: Event) -> None:
    session = asyncio.create_task(_sessions(spec, recorder))
    try:
        await asyncio.to_thread(stop.wait)  # a multiprocessing event: waited for off the loop
    finally:
        session.cancel()
        await asyncio.gather(session, return_exceptions=True)


async def _sessions(spec: ReceiverSpec, recorder: Recorder) -> None:
    """One persistent QoS 1 session after another, until cancelled (the broker may be down)."""
    loop = asyncio.get_running_loop()
    while True:
        intake = MqttIntake(
            spec.host, spec.port, client_id=spec.client_id, topics=[spec.topic], keepalive_s=5
        )
        keepalive: asyncio.Task[None] | None = None
        try:
            await intake.connect()
            keepalive = asyncio.create_task(intake.keepalive())
            while True:
                received = await intake.take()
                now = time.monotonic_ns()
                for topic, payload in received.messages:
                    recorder.on_message(topic, payload, now)
                recorded: asyncio.Future[None] = loop.create_future()
                recorded.set_result(None)
                intake.acknowledge(received.acks, recorded)
        except MqttIntakeError:
            pass
        finally:
            if keepalive is not None:
                keepalive.cancel()
            intake.close()
        await asyncio.sleep(0.5)


def load_received(path: Path) -> tuple[Received, Received, int]:
    """Read a record saved by `run_receiver`: readings, alarm arrivals (seq = -1), errors."""
    with np.load(path) as data:
        readings = Received(data["device"], data["seq"], data["recv_ns"])
        alarm_seq = np.full(data["alarm_device"].shape, -1, dtype=np.int64)
        alarms = Received(data["alarm_device"], alarm_seq, data["alarm_ns"])
        return readings, alarms, int(data["errors"][0])
