"""The whole pipeline on embedded defaults, on this machine, with simulated devices.

Starts two real Mosquitto brokers on loopback (the gateway's local broker and the cloud's uplink
broker), binds every device of a scenario as an installer would (`simulators.install`), checks the
config with `edge-agent check --strict`, runs `edge-agent run` with the default rule pack and a
SQLite outbox, and plays the scenario with `propsim run` (LoRaWAN via ChirpStack events,
Zigbee2MQTT, fire and alarm panels on ptys). The agent runs on the scenario's clock (`--clock`,
shared with `propsim run --origin`), so its rule timers keep pace with the simulation at any speed.
It prints what reaches the uplink: alarm events as they arrive (what, where, when), telemetry counts,
and a score of the alarms the control room is shown against the simulator's ground truth.

Exits 0 only when every injected incident is detected on time, once, and nothing else is raised.

    python scripts/demo.py [--scenario FILE] [--speed X | --wall SECONDS] [--score-json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import yaml

from core.clock import clock_spec
from core.envelope_json import loads
from core.errors import EnvelopeError
from core.types import AlarmEvent, Reading
from simulators.install import gateway_config
from simulators.scenario import Scenario, load_scenario
from simulators.services import Mosquitto, free_port
from simulators.truth import Score, alarms_from_events, read_truth, score

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_SCENARIO = ROOT / "simulators" / "scenarios" / "compound_all_classes.yaml"
WALL_TARGET_S = 30.0
"""With `--speed auto`, how long a scenario takes to play, in real seconds."""
START_MARGIN_S = 3.0
"""Real seconds between launching the processes and the scenario's t = 0 (they start meanwhile)."""


class UplinkWatcher:
    """Subscribes to the uplink broker as the cloud would, de-duplicating by batch id."""

    def __init__(self, broker: Mosquitto, scenario: Scenario) -> None:
        self.broker = broker
        self.zone = scenario.start.tzinfo
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

    def _show(self, event: AlarmEvent) -> None:
        """One line per state change (re-sends are not shown)."""
        if event.seq > 1 and any(
            e.fingerprint == event.fingerprint and e.state is event.state and e.seq < event.seq
            for e in self.events[:-1]
        ):
            return
        flags = f" [{','.join(event.suppressed)}]" if event.suppressed else ""
        when = event.at.astimezone(self.zone).strftime("%a %H:%M:%S")
        print(
            f"  {when} {event.state.value.upper():<8} {event.severity.value:<8} "
            f"{event.device_id} @ {event.location or '-'}: {event.description or event.rule_id}"
            f" ({event.rule_id}){flags}"
        )


def _has_ip_devices(scenario: Scenario) -> bool:
    return any(device.transport == "ip" for device in scenario.devices)


def auto_speed(scenario: Scenario, wall_s: float = WALL_TARGET_S) -> float:
    """A speed that plays the scenario in about `wall_s` seconds (never slower than real time)."""
    return max(1.0, scenario.duration / wall_s)


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"  # noqa: PLR2004


def report(result: Score, scenario: Scenario) -> None:
    """Print the score, incident by incident."""
    print(f"Score against the injected incidents (simulated time): {result.summary()}")
    zone = scenario.start.tzinfo
    for hit in sorted(result.detected + result.late, key=lambda d: d.incident.t):
        late = " LATE" if hit in result.late else ""
        print(
            f"  {hit.incident.incident} on {hit.incident.device} at "
            f"{hit.incident.t.astimezone(zone):%a %H:%M}: {hit.alarm.label} after "
            f"{_span(hit.delay_s)} (on time within {_span(hit.incident.detect_within_s)}){late}"
        )
    for rec in result.missed:
        print(f"  MISSED: {rec.incident} on {rec.device} at {rec.t.astimezone(zone):%a %H:%M}")
    for alarm in result.false:
        print(
            f"  FALSE ALARM: {alarm.label} on {alarm.device} at {alarm.at.astimezone(zone):%a %H:%M}"
        )
    for alarm in result.duplicates:
        print(
            f"  DUPLICATE: {alarm.label} on {alarm.device} at {alarm.at.astimezone(zone):%a %H:%M}"
        )


def print_telemetry(watcher: UplinkWatcher) -> None:
    """What reached the uplink: readings per metric (derived ones counted) and alarm events."""
    per_metric = Counter(r.metric.value for r in watcher.readings)
    derived = Counter(r.metric.value for r in watcher.readings if r.derived_from)
    devices = {r.device_id for r in watcher.readings}
    print(
        f"\nTelemetry at the uplink: {len(watcher.readings)} readings from {len(devices)} devices "
        f"in {len(watcher.batches)} batches"
    )
    for metric, count in sorted(per_metric.items()):
        note = f" (derived on the gateway: {derived[metric]})" if derived[metric] else ""
        print(f"  {metric:<28} {count}{note}")
    states = Counter(e.state.value for e in watcher.events)
    print(
        f"Alarm events: {len(watcher.events)} ({', '.join(f'{k} {v}' for k, v in sorted(states.items()))})"
    )


async def main_async(args: argparse.Namespace) -> int:
    """Run the demo; return the exit code."""
    scenario = load_scenario(args.scenario)
    speed = auto_speed(scenario, args.wall) if args.speed == "auto" else float(args.speed)
    print(
        f"Steward demo: scenario {scenario.name!r}, {scenario.duration / 3600:.1f} h simulated "
        f"at {speed:g}x ({scenario.duration / speed:.0f} s)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="steward-demo-") as tmp_name,
        Mosquitto() as local,
        Mosquitto() as uplink,
    ):
        tmp = Path(tmp_name)
        config = tmp / "edge.yaml"
        dc09 = ("127.0.0.1", free_port()) if _has_ip_devices(scenario) else None
        doc = gateway_config(
            scenario,
            state_dir=tmp / "state",
            local=(local.host, local.port),
            uplink=(uplink.host, uplink.port),
            dc09=dc09,
        )
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        truth_file = tmp / "truth.jsonl"
        print(f"  local broker {local.url}, uplink broker {uplink.url}, config {config}")
        check = await asyncio.create_subprocess_exec(
            BIN / "edge-agent", "check", "--strict", "--config", str(config)
        )
        if await check.wait() != 0:
            return 1
        watcher = UplinkWatcher(uplink, scenario)
        watch_task = asyncio.create_task(watcher.run(), name="uplink-watcher")
        await watcher.ready.wait()
        origin = time.time() + START_MARGIN_S
        # The simulator first: it creates the serial ports and connects, then waits for the origin;
        # the agent finds its ports there when it starts, and both count time from the origin.
        sim = await asyncio.create_subprocess_exec(
            BIN / "propsim",
            "run",
            str(args.scenario),
            "--broker",
            local.url,
            "--speed",
            str(speed),
            "--origin",
            str(origin),
            "--truth",
            str(truth_file),
            *(["--receiver", f"{dc09[0]}:{dc09[1]}"] if dc09 else []),
        )
        # Sped up, the agent runs on the scenario's clock; in real time, on its system clock.
        clock = [] if speed == 1 else ["--clock", clock_spec(scenario.start, origin, speed)]
        agent = await asyncio.create_subprocess_exec(
            BIN / "edge-agent",
            "run",
            "--config",
            str(config),
            "--log-level",
            "WARNING",
            *clock,
        )
        try:
            await sim.wait()
            print("  -- the scenario is over: its devices are gone; later alarms are not scored --")
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

        print_telemetry(watcher)
        # On the scenario's clock alarm times are simulated times already; on the system clock the
        # scenario's t = 0 was the origin. The simulated world ends with the scenario (its serial
        # ports close): later alarms are not its.
        shift = timedelta(0) if clock else scenario.start - datetime.fromtimestamp(origin, UTC)
        end = scenario.start + timedelta(seconds=scenario.duration)
        alarms = [
            replace(a, at=a.at + shift)
            for a in alarms_from_events(watcher.events)
            if a.at + shift < end
        ]
        result = score(read_truth(truth_file), alarms)
        report(result, scenario)
        if args.score_json is not None:
            summary = {
                **result.summary(),
                "alarms": [
                    {
                        **asdict(d.alarm),
                        "at": d.alarm.at.isoformat(),
                        "incident": d.incident.incident,
                        "device": d.incident.device,
                        "delay_s": d.delay_s,
                    }
                    for d in result.detected + result.late
                ],
                "agent_exit": agent.returncode,
                "envelopes_rejected": watcher.bad,
                "readings": len(watcher.readings),
            }
            args.score_json.write_text(json.dumps(summary, indent=2))
        print(f"Agent exit code {agent.returncode}; envelopes rejected {watcher.bad}")
        ok = agent.returncode == 0 and watcher.readings and not watcher.bad and result.perfect
        return 0 if ok else 1


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument(
        "--speed",
        default="auto",
        help=f"simulated seconds per real second (default: auto, about {WALL_TARGET_S:.0f} s a run)",
    )
    parser.add_argument(
        "--wall",
        type=float,
        default=WALL_TARGET_S,
        help="with --speed auto: how many real seconds the scenario should take",
    )
    parser.add_argument("--score-json", type=Path, default=None, help="write the score here")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
