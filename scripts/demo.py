"""The whole pipeline on embedded defaults, on this machine, with simulated devices.

Starts two real Mosquitto brokers on loopback (the gateway's local broker and the cloud's uplink
broker), runs `edge-agent run` with the default rule pack and a SQLite outbox, plays a compound scenario
with `propsim run` (LoRaWAN via ChirpStack events, Zigbee2MQTT, a GB/T 26875.3 fire panel on a pty), and
prints what reaches the uplink: alarm events as they arrive, then telemetry counts and a score of the
alarms against the simulator's ground truth.

    python scripts/demo.py [--scenario FILE] [--speed X]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import yaml

from core.envelope_json import loads
from core.errors import EnvelopeError
from core.types import AlarmEvent, AlarmState, Reading
from simulators.encoding import stable_hex
from simulators.runner import RunOptions, ScenarioRunner
from simulators.scenario import Scenario, load_scenario
from simulators.services import Mosquitto
from simulators.truth import RaisedAlarm, alarms_from_events, read_truth, score

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_SCENARIO = ROOT / "simulators" / "scenarios" / "compound_all_classes.yaml"


def edge_config(
    scenario: Scenario, state: Path, local: Mosquitto, uplink: Mosquitto
) -> dict[str, object]:
    """An edge config that binds every device of the scenario, as an installer would write it."""
    runner = ScenarioRunner(scenario, RunOptions())
    devices: list[dict[str, object]] = []
    serial: list[dict[str, object]] = []
    for device in scenario.devices:
        binding: dict[str, object] = {
            "id": device.id,
            "codec": device.codec,
            "kind": device.kind,
            "location": str(scenario.location(device)),
            "expected_interval_s": device.interval,
        }
        if device.transport == "lorawan":
            binding["dev_eui"] = str(device.address.get("dev_eui", stable_hex(device.id, 16)))
        elif device.transport == "zigbee2mqtt":
            binding["friendly_name"] = str(device.address["friendly_name"])
        elif device.transport == "serial":
            port = str(runner.link_of(device))
            serial.append(
                {"id": device.id, "port": port, "codec": device.codec, "device": device.id}
            )
        devices.append(binding)
    site = scenario.site.path or "demo"
    return {
        "gateway": {"id": scenario.gateway_id, "site": site, "timezone": "Asia/Shanghai"},
        "state_dir": str(state),
        "sources": {
            "serial": serial,
            "mqtt": {
                "host": local.host,
                "port": local.port,
                "zigbee2mqtt": {"base_topic": "zigbee2mqtt"},
                "chirpstack": {"application_id": "+"},
            },
        },
        "devices": devices,
        "rules": [str(ROOT / "rules" / "packs" / "default.yaml")],
        "uplink": {"host": uplink.host, "port": uplink.port, "batch_wait_s": 0.2},
        "pipeline": {"stats_interval_s": 10},
    }


class UplinkWatcher:
    """Subscribes to the uplink broker as the cloud would, de-duplicating by batch id."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.batches: set[str] = set()
        self.readings: list[Reading] = []
        self.events: list[AlarmEvent] = []
        self.bad = 0
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Receive envelopes until cancelled."""
        async with aiomqtt.Client(
            self.broker.host, self.broker.port, identifier="demo-cloud"
        ) as client:
            await client.subscribe("steward/v1/+/up", qos=1)
            self.ready.set()
            async for message in client.messages:
                try:
                    envelope = loads(bytes(message.payload))
                except EnvelopeError as err:
                    self.bad += 1
                    print(f"  rejected envelope: {err}")
                    continue
                if str(envelope.batch_id) in self.batches:
                    continue
                self.batches.add(str(envelope.batch_id))
                self.readings.extend(envelope.readings)
                for event in envelope.alarm_events:
                    self.events.append(event)
                    self._show(event)

    @staticmethod
    def _show(event: AlarmEvent) -> None:
        flags = f" suppressed={','.join(event.suppressed)}" if event.suppressed else ""
        when = event.at.astimezone(UTC).strftime("%H:%M:%S")
        print(
            f"  {when} ALARM {event.state.value:<8} {event.severity.value:<8} "
            f"{event.fingerprint} seq={event.seq} value={event.value}{flags}"
        )


def to_sim_time(
    alarms: list[RaisedAlarm], wall_start: datetime, scenario: Scenario, speed: float
) -> list[RaisedAlarm]:
    """Map the agent's wall-clock alarm times onto the scenario's simulated clock."""
    return [
        RaisedAlarm(scenario.start + (a.at - wall_start) * speed, a.device, a.label) for a in alarms
    ]


async def main_async(args: argparse.Namespace) -> int:
    """Run the demo; return the exit code."""
    scenario = load_scenario(args.scenario)
    sim_seconds = scenario.duration
    print(
        f"Steward demo: scenario {scenario.name!r}, {sim_seconds / 3600:.1f} h simulated at {args.speed}x"
    )
    with (
        tempfile.TemporaryDirectory(prefix="steward-demo-") as tmp_name,
        Mosquitto() as local,
        Mosquitto() as uplink,
    ):
        tmp = Path(tmp_name)
        config = tmp / "edge.yaml"
        config.write_text(yaml.safe_dump(edge_config(scenario, tmp / "state", local, uplink)))
        truth_file = tmp / "truth.jsonl"
        print(f"  local broker {local.url}, uplink broker {uplink.url}, config {config}")
        check = await asyncio.create_subprocess_exec(
            BIN / "edge-agent", "check", "--config", str(config)
        )
        if await check.wait() != 0:
            return 1
        watcher = UplinkWatcher(uplink)
        watch_task = asyncio.create_task(watcher.run(), name="uplink-watcher")
        await watcher.ready.wait()
        agent = await asyncio.create_subprocess_exec(
            BIN / "edge-agent", "run", "--config", str(config), "--log-level", "WARNING"
        )
        try:
            await asyncio.sleep(1.5)
            wall_start = datetime.now(UTC)
            sim = await asyncio.create_subprocess_exec(
                BIN / "propsim",
                "run",
                str(args.scenario),
                "--broker",
                local.url,
                "--speed",
                str(args.speed),
                "--truth",
                str(truth_file),
            )
            await sim.wait()
            await asyncio.sleep(3)  # let the last batches through
        finally:
            agent.send_signal(signal.SIGTERM)
            await asyncio.wait_for(agent.wait(), 30)
            watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch_task
        if sim.returncode != 0:
            print(f"propsim exited with {sim.returncode}")
            return 1

        per_metric = Counter(r.metric.value for r in watcher.readings)
        devices = {r.device_id for r in watcher.readings}
        print(
            f"\nTelemetry at the uplink: {len(watcher.readings)} readings from {len(devices)} devices "
            f"in {len(watcher.batches)} batches"
        )
        for metric, count in sorted(per_metric.items()):
            print(f"  {metric:<22} {count}")
        states = Counter(e.state.value for e in watcher.events)
        print(
            f"Alarm events: {len(watcher.events)} ({', '.join(f'{k} {v}' for k, v in sorted(states.items()))})"
        )
        truth = read_truth(truth_file)
        firing = [e for e in watcher.events if e.state in {AlarmState.FIRING, AlarmState.FAULT}]
        alarms = to_sim_time(alarms_from_events(firing), wall_start, scenario, args.speed)
        # A device is seen at its next report, and at this speed one second of process start-up is
        # minutes of simulated time: allow one reporting interval plus a margin, in simulated time.
        slowest = max(d.interval for d in scenario.devices)
        result = score(truth, alarms, max_delay_s=slowest + 10 * args.speed, late_after_s=slowest)
        print(f"Score against the injected incidents (simulated time): {result.summary()}")
        for hit in result.detected + result.late:
            print(
                f"  {hit.incident.incident} on {hit.incident.device}: alarm after {hit.delay_s / 60:.0f} min"
            )
        for rec in result.missed:
            print(f"  missed: {rec.incident} on {rec.device} at {rec.t}")
        print(f"Agent exit code {agent.returncode}; envelopes rejected {watcher.bad}")
        return 0 if agent.returncode == 0 and watcher.readings else 1


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument(
        "--speed", type=float, default=180.0, help="simulated seconds per real second"
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
