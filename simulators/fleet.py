"""Load generator: many gateways' uplink envelopes (or ChirpStack events) pushed at a target rate.

Each worker process owns a share of the gateways and one paho connection, pre-serializes one
message per device with the real serializer (`core.envelope_json.dumps`, or a ChirpStack `up` event
around a real codec payload) and then only swaps the batch id and counters per message, so the
Python side stays cheap. The rate is paced per 10 ms slot. QoS 0 by default (what a flood test
wants); `--qos 1` waits for nothing but lets the broker acknowledge.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.envelope_json import dumps
from core.metrics import Metric
from core.types import Envelope, Reading
from firmware_adapters.registry import get_codec
from simulators.encoding import chirpstack_up_event, stable_hex
from simulators.mqtt_devices import parse_broker_url

log = logging.getLogger(__name__)

_ZERO_ID = str(uuid.UUID(int=0))
SLOT_S = 0.01


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What to generate."""

    broker_url: str
    gateways: int = 10
    devices: int = 100
    rate: float = 1000.0
    duration: float = 10.0
    processes: int = 1
    kind: str = "envelope"
    qos: int = 0


@dataclass(frozen=True, slots=True)
class FleetResult:
    """What was sent, and how fast."""

    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages per second actually published."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def templates(config: FleetConfig, gateway: int) -> list[tuple[str, bytes]]:
    """One (topic, message) per device of a gateway; batch ids are zero, to be swapped per send."""
    now = datetime.now(UTC)
    gw = f"gw-{gateway:04d}"
    out: list[tuple[str, bytes]] = []
    if config.kind == "chirpstack":
        codec = get_codec("lorawan.milesight.em310_udl")
        rng = np.random.default_rng(gateway)
        for d in range(config.devices):
            dev_eui = stable_hex(f"{gw}/{d}", 16)
            payload = codec.encode({"battery_pct": 90, "distance_mm": 500 + d, "tilt_alarm": False})
            event = chirpstack_up_event(
                time=now,
                dev_eui=dev_eui,
                application_id=str(uuid.UUID(stable_hex(gw, 32))),
                device_name=f"{gw}-bin-{d}",
                profile_name=codec.id,
                fcnt=0,
                fport=85,
                data=payload,
                rng=rng,
            )
            event["deduplicationId"] = _ZERO_ID
            topic = f"application/{stable_hex(gw, 8)}/device/{dev_eui}/event/up"
            out.append((topic, json.dumps(event, separators=(",", ":")).encode()))
        return out
    for d in range(config.devices):
        reading = Reading(f"{gw}-dev-{d}", Metric.DISTANCE_MM, 500.0 + d, now)
        envelope = Envelope(gw, uuid.UUID(int=0), now, readings=(reading,))
        out.append((f"steward/v1/{gw}/up", dumps(envelope)))
    return out


def _worker(config: FleetConfig, index: int, rate: float, sent: mp.Queue[int]) -> None:
    host, port = parse_broker_url(config.broker_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"propsim-fleet-{index}")
    client.max_queued_messages_set(0)
    client.connect(host, port, keepalive=60)
    client.loop_start()
    mine = [g for g in range(config.gateways) if g % config.processes == index]
    messages = [m for g in mine for m in templates(config, g)]
    zero = _ZERO_ID.encode()
    count = 0
    per_slot = rate * SLOT_S
    start = time.monotonic()
    deadline = start + config.duration
    budget = 0.0
    info: mqtt.MQTTMessageInfo | None = None
    try:
        while (now := time.monotonic()) < deadline:
            budget = min(budget + per_slot, per_slot * 10)
            n = int(budget)
            budget -= n
            for _ in range(n):
                topic, template = messages[count % len(messages)]
                batch = str(uuid.UUID(int=(index << 96) | count)).encode()
                info = client.publish(topic, template.replace(zero, batch, 1), qos=config.qos)
                count += 1
            pause = SLOT_S - (time.monotonic() - now)
            if pause > 0:
                time.sleep(pause)
    finally:
        if info is not None:  # QoS 0 too: wait until paho has written everything to the socket
            info.wait_for_publish(timeout=30)
        client.disconnect()
        client.loop_stop()
        sent.put(count)


def run_fleet(config: FleetConfig) -> FleetResult:
    """Run the load generator in `config.processes` processes and return what was sent."""
    if config.gateways < 1 or config.devices < 1 or config.rate <= 0 or config.processes < 1:
        raise ValueError("gateways, devices, rate and processes must be positive")
    procs = min(config.processes, config.gateways)
    config = replace(config, processes=procs)
    ctx = mp.get_context("fork")
    sent: mp.Queue[int] = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(config, i, config.rate / procs, sent), name=f"fleet-{i}")
        for i in range(procs)
    ]
    start = time.monotonic()
    for w in workers:
        w.start()
    total = sum(sent.get() for _ in workers)
    for w in workers:
        w.join()
    seconds = time.monotonic() - start
    return FleetResult(total, seconds)
