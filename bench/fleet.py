"""`propsim fleet` throughput: messages per second that reach a real Mosquitto, against a C baseline.

- paced: `simulators.fleet.run_fleet` (2 worker processes, paho, QoS 0) at a 25k msg/s target,
  uplink envelopes for 20 gateways x 50 devices; a subscriber process counts what the broker delivers.
- fleet: the same, unpaced (as fast as the two workers go).
- baseline: `mosquitto_pub -l` (the C client) publishes the same number of pre-serialized envelopes
  from one process to the same broker and subscriber: the ceiling of one publisher here.

Run: `.venv/bin/python bench/fleet.py [seconds]`; see bench/README.md.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.fleet import FleetConfig, run_fleet, templates
from simulators.services import Mosquitto

TOPIC = "steward/v1/+/up"


def _count(host: str, port: int, ready: Event, stop: Event, out: Queue[dict[str, float]]) -> None:
    stats = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(_client: mqtt.Client, _userdata: object, _message: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if stats["n"] == 0:
            stats["first"] = now
        stats["n"] += 1
        stats["last"] = now

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter")
    client.on_message = on_message
    client.connect(host, port)
    client.subscribe(TOPIC, qos=0)
    client.loop_start()
    time.sleep(0.3)
    ready.set()
    stop.wait()
    time.sleep(1.0)  # let the broker flush what it still holds
    client.loop_stop()
    out.put(stats)


def _measure(broker: Mosquitto, publish: object) -> dict[str, float]:
    ctx = mp.get_context("fork")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    counter = ctx.Process(target=_count, args=(broker.host, broker.port, ready, stop, out))
    counter.start()
    ready.wait(10)
    sent = publish()  # type: ignore[operator]
    stop.set()
    stats = out.get(timeout=60)
    counter.join()
    span = max(stats["last"] - stats["first"], 1e-9)
    return {"sent": float(sent), "received": float(stats["n"]), "received_per_s": stats["n"] / span}


def run(seconds: float = 5.0) -> dict[str, float]:
    """Measure the fleet and the baseline for `seconds` each."""
    with Mosquitto(["max_queued_messages 0"]) as broker:
        config = FleetConfig(
            broker_url=broker.url,
            gateways=20,
            devices=50,
            rate=25_000,
            duration=seconds,
            processes=2,
        )
        paced = _measure(broker, lambda: run_fleet(config).sent)
        config = FleetConfig(
            broker_url=broker.url, gateways=20, devices=50, rate=1e6, duration=seconds, processes=2
        )
        fleet = _measure(broker, lambda: run_fleet(config).sent)
        lines = [m for g in range(20) for _, m in templates(config, g)]
        count = int(fleet["sent"])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "lines"
            with path.open("wb") as f:
                for i in range(count):
                    f.write(lines[i % len(lines)] + b"\n")

            def baseline() -> int:
                subprocess.run(  # noqa: S603 - fixed program, our own arguments
                    [  # noqa: S607 - found on PATH like the broker
                        "mosquitto_pub",
                        "-h",
                        broker.host,
                        "-p",
                        str(broker.port),
                        "-t",
                        "steward/v1/gw-0000/up",
                        "-l",
                        "-q",
                        "0",
                    ],
                    stdin=path.open("rb"),
                    check=True,
                )
                return count

            base = _measure(broker, baseline)
    return {
        "paced_25k_sent_per_s": paced["sent"] / seconds,
        "paced_25k_received_per_s": paced["received_per_s"],
        "paced_25k_delivered_fraction": paced["received"] / max(paced["sent"], 1),
        "fleet_sent_per_s": fleet["sent"] / seconds,
        "fleet_received_per_s": fleet["received_per_s"],
        "fleet_delivered_fraction": fleet["received"] / max(fleet["sent"], 1),
        "baseline_mosquitto_pub_received_per_s": base["received_per_s"],
        "baseline_delivered_fraction": base["received"] / max(base["sent"], 1),
        "fleet_ratio_to_baseline": fleet["received_per_s"] / max(base["received_per_s"], 1e-9),
    }


if __name__ == "__main__":
    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0), indent=1))
