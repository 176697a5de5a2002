"""The whole pipeline on embedded defaults, on this machine, with simulated devices.

Starts two real Mosquitto brokers on loopback (the gateway's local broker and the cloud's uplink
broker), binds every device of a scenario as an installer would (`simulators.install`), checks the
config with `edge-agent check --strict`, runs `edge-agent run` with the default rule pack and a
SQLite outbox, and plays the scenario with `propsim run` (LoRaWAN via ChirpStack events,
Zigbee2MQTT, fire and alarm panels on ptys). The agent runs on the scenario's clock (`--clock`,
shared with `propsim run --origin`), so its rule timers keep pace with the simulation at any speed.
It prints what reaches the uplink: alarm events as they arrive (what, where, when) with the progress
of the scenario, telemetry counts, and a score table of the alarms the control room is shown against
the simulator's ground truth. The simulated devices outlive the scenario by a few seconds, so the
agent is stopped (and drains its outbox) before they go.

Exits 0 only when every injected incident is detected on time, once, and nothing else is raised;
130 after Ctrl-C (every process it started is stopped first).

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from core.clock import clock_spec
from core.envelope_json import loads
from core.errors import EnvelopeError
from core.types import AlarmEvent, Reading
from simulators.install import gateway_config
from simulators.scenario import Scenario, load_scenario
from simulators.services import Mosquitto, free_port
from simulators.truth import Score, TruthRecord, alarms_from_events, read_truth, score

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_SCENARIO = ROOT / "simulators" / "scenarios" / "compound_all_classes.yaml"
WALL_TARGET_S = 30.0
"""With `--speed auto`, how long a scenario takes to play, in real seconds."""
START_MARGIN_S = 3.0
SERIAL_READY_S = 60.0
"""How long propsim may take to create its serial lines before the demo gives up."""
"""Real seconds between launching the processes and the scenario's t = 0 (they start meanwhile)."""
SETTLE_S = 3.0
"""Real seconds after the scenario's end for the last batches to reach the uplink."""
TAIL_S = 15.0
"""Real seconds the simulated devices keep reporting after the scenario's end. The agent is stopped
within them, so it never sees its devices vanish; the simulator is stopped after the agent."""
PROGRESS_EVERY_S = 5.0
"""How often, in real seconds, a line tells how far the scenario has played."""
AGENT_STOP_S = 30.0
"""How long a stopping agent may drain its outbox before it is killed."""
INTERRUPTED_STOP_S = 3.0
"""After Ctrl-C: how long each process may take to stop before it is killed."""
EXIT_INTERRUPTED = 130


class Children:
    """The processes the demo started; each is stopped (and killed if it lingers) before it exits.

    They run in their own process groups, so Ctrl-C reaches only the demo, which then stops them in
    order: the agent before the simulated devices.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._procs: list[asyncio.subprocess.Process] = []

    async def start(
        self, program: Path, *args: str, quiet: bool = False
    ) -> asyncio.subprocess.Process:
        """Start `program args...` in its own process group (stdout dropped when `quiet`)."""
        proc = await asyncio.create_subprocess_exec(
            program,
            *args,
            stdout=asyncio.subprocess.DEVNULL if quiet else None,
            process_group=0,
        )
        self._procs.append(proc)
        return proc

    async def stop(
        self, proc: asyncio.subprocess.Process, sig: signal.Signals, grace_s: float
    ) -> None:
        """Send `sig` and wait; kill the process if it has not exited after `grace_s` seconds."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                await asyncio.wait_for(
                    proc.wait(), INTERRUPTED_STOP_S if self.interrupted else grace_s
                )
            except TimeoutError:
                self.kill(proc)
                await proc.wait()

    @staticmethod
    def kill(proc: asyncio.subprocess.Process) -> None:
        """Kill at once (a second Ctrl-C)."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def kill_all(self) -> None:
        """Kill every process still running."""
        for proc in self._procs:
            self.kill(proc)

    async def stop_all(self) -> None:
        """Stop whatever is still running (say, a config check that Ctrl-C interrupted)."""
        for proc in self._procs:
            await self.stop(proc, signal.SIGTERM, INTERRUPTED_STOP_S)


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
        """Receive envelopes until cancelled (or until the broker goes away)."""
        with contextlib.suppress(aiomqtt.MqttError):
            await self._receive()

    async def _receive(self) -> None:
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


@contextlib.contextmanager
def started_brokers() -> Iterator[tuple[Mosquitto, Mosquitto]]:
    """The local and the uplink broker, both deaf to Ctrl-C: the demo stops them last.

    A broker is a child in the demo's process group, where the terminal sends Ctrl-C; started with
    SIGINT blocked (a blocked signal stays blocked across exec), it is stopped by the demo's SIGTERM
    only, after the agent has stopped.
    """
    with contextlib.ExitStack() as brokers:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            local = brokers.enter_context(Mosquitto())
            uplink = brokers.enter_context(Mosquitto())
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        yield local, uplink


def _has_ip_devices(scenario: Scenario) -> bool:
    return any(device.transport == "ip" for device in scenario.devices)


def auto_speed(scenario: Scenario, wall_s: float = WALL_TARGET_S) -> float:
    """A speed that plays the scenario in about `wall_s` seconds (never slower than real time)."""
    return max(1.0, scenario.duration / wall_s)


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"  # noqa: PLR2004


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart, under a header line."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        "  " + "  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row)).rstrip()
        for row in [headers, *rows]
    ]


def report(result: Score, scenario: Scenario) -> None:
    """Print the score as a table, incident by incident, then any alarm that matched none."""
    zone = scenario.start.tzinfo

    def row(rec: TruthRecord, alarm: str, after: str, outcome: str) -> list[str]:
        when = f"{rec.t.astimezone(zone):%a %H:%M}"
        return [rec.incident, rec.device, when, alarm, after, _span(rec.detect_within_s), outcome]

    rows = [
        (
            hit.incident.t_s,
            row(
                hit.incident,
                hit.alarm.label,
                _span(hit.delay_s),
                "LATE" if hit in result.late else "on time",
            ),
        )
        for hit in result.detected + result.late
    ]
    rows += [(rec.t_s, row(rec, "-", "-", "MISSED")) for rec in result.missed]
    extra = [("FALSE ALARM", a) for a in result.false] + [
        ("DUPLICATE", a) for a in result.duplicates
    ]
    headers = ("incident", "device", "at", "alarm shown", "after", "allowed", "result")
    body = [cells for _, cells in sorted(rows, key=lambda r: r[0])]
    body += [
        ["-", a.device, f"{a.at.astimezone(zone):%a %H:%M}", a.label, "-", "-", what]
        for what, a in extra
    ]
    print("\nScore against the injected incidents (simulated time):")
    for line in table(headers, body):
        print(line)
    counts = result.summary()
    total = counts["detected"] + counts["late"] + counts["missed"]
    print(
        f"  {counts['detected']} of {total} detected on time; late {counts['late']}, "
        f"missed {counts['missed']}, false {counts['false']}, duplicate {counts['duplicate']}"
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
    """Run the demo; return the exit code. Ctrl-C (or SIGTERM) stops everything and returns 130."""
    loop = asyncio.get_running_loop()
    children = Children()
    demo = asyncio.create_task(run_demo(args, children), name="demo")

    def interrupt() -> None:
        if children.interrupted:  # pressed again while stopping: no more waiting
            children.kill_all()
            return
        children.interrupted = True
        print("\nInterrupted: stopping the agent, the simulator and the brokers ...", flush=True)
        demo.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        return await demo
    except asyncio.CancelledError:
        return EXIT_INTERRUPTED
    finally:
        await children.stop_all()


async def run_demo(args: argparse.Namespace, children: Children) -> int:
    """Start the brokers, the agent and the simulator, follow the uplink, and score the alarms."""
    scenario = load_scenario(args.scenario)
    speed = auto_speed(scenario, args.wall) if args.speed == "auto" else float(args.speed)
    print(
        f"Steward demo: scenario {scenario.name!r}, {scenario.duration / 3600:.1f} h simulated "
        f"at {speed:g}x ({scenario.duration / speed:.0f} s)"
    )
    print("  starting two Mosquitto brokers (the gateway's local one and the cloud's uplink)")
    with (
        tempfile.TemporaryDirectory(prefix="steward-demo-") as tmp_name,
        started_brokers() as (local, uplink),
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
        print("  checking the gateway's config (edge-agent check --strict)")
        check = await children.start(
            BIN / "edge-agent", "check", "--strict", "--config", str(config)
        )
        if await check.wait() != 0:
            return 1
        watcher = UplinkWatcher(uplink, scenario)
        watch_task = asyncio.create_task(watcher.run(), name="uplink-watcher")
        await watcher.ready.wait()
        origin, sim = await start_simulator(
            children, args.scenario, scenario, speed, local.url, truth_file, dc09
        )
        if not await serial_lines_ready(doc, sim):
            await children.stop(sim, signal.SIGTERM, AGENT_STOP_S)
            return 1
        # Sped up, the agent runs on the scenario's clock; in real time, on its system clock.
        clock = [] if speed == 1 else ["--clock", clock_spec(scenario.start, origin, speed)]
        agent = await children.start(
            BIN / "edge-agent",
            "run",
            "--config",
            str(config),
            "--log-level",
            "WARNING",
            *clock,
        )
        try:
            played = await follow(scenario, speed, origin, sim, watcher)
            if played:
                print(
                    "  -- the scenario is over; stopping the agent, then the simulated devices --"
                )
        finally:
            await children.stop(agent, signal.SIGTERM, AGENT_STOP_S)
            await children.stop(sim, signal.SIGTERM, AGENT_STOP_S)
            watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch_task
        if not played:
            print(f"propsim exited with {sim.returncode} before the scenario was over")
            return 1

        print_telemetry(watcher)
        # On the scenario's clock alarm times are simulated times already; on the system clock the
        # scenario's t = 0 was the origin. The scenario ends at its duration: later incidents (the
        # devices play on for a while) and later alarms are not its.
        shift = timedelta(0) if clock else scenario.start - datetime.fromtimestamp(origin, UTC)
        end = scenario.start + timedelta(seconds=scenario.duration)
        alarms = [
            replace(a, at=a.at + shift)
            for a in alarms_from_events(watcher.events)
            if a.at + shift < end
        ]
        truth: list[TruthRecord] = [r for r in read_truth(truth_file) if r.t_s < scenario.duration]
        result = score(truth, alarms)
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
        print(
            "Result: every incident detected on time, once, and nothing else raised"
            if ok
            else "Result: FAILED (see above)"
        )
        return 0 if ok else 1


async def start_simulator(  # noqa: PLR0917 - the demo's pieces, named
    children: Children,
    path: Path,
    scenario: Scenario,
    speed: float,
    broker: str,
    truth_file: Path,
    dc09: tuple[str, int] | None,
) -> tuple[float, asyncio.subprocess.Process]:
    """Start `propsim run` on the scenario; the origin it plays from, and its process."""
    origin = time.time() + START_MARGIN_S
    print(
        f"  starting the simulated devices (propsim run) and the agent (edge-agent run); "
        f"the scenario begins in {START_MARGIN_S:.0f} s"
    )
    # The simulator first: it creates the serial ports and connects, then waits for the origin;
    # the agent finds its ports there when it starts, and both count time from the origin. The
    # devices play on for TAIL_S after the scenario's end, until the agent has stopped.
    sim = await children.start(
        BIN / "propsim",
        "run",
        str(path),
        "--broker",
        broker,
        "--speed",
        str(speed),
        "--duration",
        str(scenario.duration + TAIL_S * speed),
        "--origin",
        str(origin),
        "--truth",
        str(truth_file),
        *(["--receiver", f"{dc09[0]}:{dc09[1]}"] if dc09 else []),
        quiet=True,
    )
    return origin, sim


async def serial_lines_ready(doc: Mapping[str, Any], sim: asyncio.subprocess.Process) -> bool:
    """Wait until the serial lines the config names exist (propsim creates them as it starts).

    The agent starts after them: a line it cannot open is a device fault, which a slow start of
    the simulator on a busy machine must not raise. False when propsim exits first.
    """
    sources = doc.get("sources", {})
    ports = [Path(s["port"]) for s in [*sources.get("serial", ()), *sources.get("modbus", ())]]
    deadline = time.monotonic() + SERIAL_READY_S
    while not all(port.exists() for port in ports):
        if sim.returncode is not None or time.monotonic() > deadline:
            missing = ", ".join(str(p) for p in ports if not p.exists())
            print(
                f"  propsim did not create its serial lines ({missing}); exit code {sim.returncode}"
            )
            return False
        await asyncio.sleep(0.05)
    return True


async def follow(
    scenario: Scenario,
    speed: float,
    origin: float,
    sim: asyncio.subprocess.Process,
    watcher: UplinkWatcher,
) -> bool:
    """Wait until the scenario is over and its last batches had time to arrive.

    Tells how far the scenario has played every few seconds. False if the simulator ended first.
    """
    zone = scenario.start.tzinfo
    over = origin + scenario.duration / speed + SETTLE_S
    next_note = time.time() + PROGRESS_EVERY_S
    while (now := time.time()) < over:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sim.wait(), min(over, next_note) - now)
        if sim.returncode is not None:
            return False
        if time.time() >= next_note:
            next_note += PROGRESS_EVERY_S
            played = min(max(0.0, (time.time() - origin) * speed), scenario.duration)
            at = (scenario.start + timedelta(seconds=played)).astimezone(zone)
            print(
                f"  .. {at:%a %H:%M} simulated ({played / scenario.duration:.0%}): "
                f"{len(watcher.readings)} readings, {len(watcher.events)} alarm events at the uplink"
            )
    return True


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
