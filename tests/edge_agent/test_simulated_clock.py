"""`edge-agent run --clock`: the daemon on a simulated clock, alone and shared with `propsim run`.

The agent runs as a subprocess against a real Mosquitto (local broker and uplink in one); what it
sends up is read back as envelopes. A rule with `for: 30s` must fire 30 *simulated* seconds after
its condition began, with every time stamp (readings, alarm events, self-statistics) on the
simulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiomqtt
import pytest

from core.clock import ScaledClock, clock_spec, parse_clock_spec
from core.envelope_json import loads
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading
from simulators.scenario import load_scenario
from simulators.services import Mosquitto
from simulators.timeline import generate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GATEWAY = "gw-sim"
SPEED = 60.0
START = datetime(2030, 6, 1, 6, 0, tzinfo=timezone(timedelta(hours=8)))
FOR_S = 30
TICK_SLACK_S = 12.0
"""Simulated seconds an alarm may come after its `for`: ticks every 20 ms of real time (1.2 s at
60x) plus scheduling; a tick every real second would be up to 60 simulated seconds late."""
RULES = f"""\
rules:
  - id: smoke
    match: {{metric: smoke}}
    equals: true
    for: {FOR_S}s
    severity: critical
"""
PROPSIM = [sys.executable, "-c", "import sys; from simulators.cli import main; sys.exit(main())"]
SCENARIO = f"""\
name: shared-clock
seed: 1
start: {START.isoformat()}
duration: 3m
gateway_id: {GATEWAY}
site:
  path: hp/nj/xh/g1
  compounds:
    - id: c1
      buildings:
        - {{id: b1, units: [u1]}}
devices:
  - {{id: smoke-1, kind: smoke, codec: zigbee2mqtt.generic.exposes, transport: zigbee2mqtt,
     location: c1/b1/u1, interval: 20s, tick: 1s, params: {{build_s: 5}},
     address: {{friendly_name: b1/kitchen, model: HS3SA/HS1SA}}}}
timeline:
  - {{at: 60s, device: smoke-1, incident: fire, duration: 2m}}
"""


def write_config(tmp: Path, broker: Mosquitto) -> Path:
    (tmp / "rules.yaml").write_text(RULES)
    path = tmp / "edge.yaml"
    path.write_text(f"""\
gateway: {{id: {GATEWAY}}}
state_dir: {tmp / "state"}
sources:
  mqtt: {{host: 127.0.0.1, port: {broker.port}, zigbee2mqtt: {{base_topic: zigbee2mqtt}}}}
devices:
  - {{id: smoke-1, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: b1/kitchen}}
rules: [rules.yaml]
uplink: {{host: 127.0.0.1, port: {broker.port}, keepalive_s: 5, batch_wait_s: 0.02}}
""")
    return path


class Uplink:
    """What the agent publishes on its uplink topic, as envelopes."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.subscribed = asyncio.Event()

    async def collect(self, broker: Mosquitto) -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="uplink-reader") as client:
            await client.subscribe(f"steward/v1/{GATEWAY}/up", qos=1)
            self.subscribed.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                self.envelopes.append(loads(message.payload))

    def readings(self, device: str, metric: Metric | None = None) -> list[Reading]:
        return sorted(
            (
                r
                for e in self.envelopes
                for r in e.readings
                if r.device_id == device and (metric is None or r.metric is metric)
            ),
            key=lambda r: r.ts,
        )

    def firing(self) -> list[AlarmEvent]:
        return [
            ev
            for e in self.envelopes
            for ev in e.alarm_events
            if ev.rule_id == "smoke" and ev.state is AlarmState.FIRING
        ]


async def until(predicate: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {limit} s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def uplink_reader(broker: Mosquitto) -> AsyncIterator[Uplink]:
    uplink = Uplink()
    task = asyncio.create_task(uplink.collect(broker))
    try:
        await asyncio.wait_for(uplink.subscribed.wait(), 10)
        yield uplink
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def start_agent(config: Path, spec: str, log: Path) -> subprocess.Popen[bytes]:
    """`edge-agent run --config FILE --clock SPEC`, logging to `log`."""
    env = {k: v for k, v in os.environ.items() if k not in {"NOTIFY_SOCKET", "WATCHDOG_USEC"}}
    command = [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, "--clock", spec, "--log-level", "INFO"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )


def propsim(*args: str) -> str:
    """Run a `propsim` command to its end; return what it printed."""
    done = subprocess.run(
        [*PROPSIM, *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextlib.asynccontextmanager
async def agent(config: Path, spec: str, log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """The agent, once its local MQTT source has subscribed; stopped with SIGTERM after."""
    proc = start_agent(config, spec, log)
    try:
        await until(
            lambda: "edge_agent.sources.mqtt: mqtt" in log.read_text() or proc.poll() is not None,
            30,
            "the agent subscribing to the local broker",
        )
        assert proc.poll() is None, await asyncio.to_thread(log.read_text)
        yield proc
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0, await asyncio.to_thread(log.read_text)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def simulated(clock: ScaledClock, wall: float) -> datetime:
    return clock.start + timedelta(seconds=(wall - clock.origin) * clock.speed)


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()


async def test_a_for_30s_rule_fires_after_30_simulated_seconds(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = write_config(tmp_path, mosquitto)
    clock = ScaledClock(START, SPEED, time.time())
    log = tmp_path / "agent.log"
    async with uplink_reader(mosquitto) as uplink, agent(config, clock.spec, log):
        assert f"running on a simulated clock {clock.spec}" in log.read_text()
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="smoke") as device:
            published = time.time()
            await device.publish("zigbee2mqtt/b1/kitchen", json.dumps({"smoke": True}), qos=1)
        await until(lambda: bool(uplink.firing()), 15, "the FIRING event")
        received = time.time()
        # Self-statistics every 60 simulated seconds: about one a real second at 60x.
        await until(lambda: len(uplink.readings(GATEWAY)) > 0, 10, "the self-statistics")

    [reading] = uplink.readings("smoke-1", Metric.SMOKE)
    # Received, stamped and judged on the simulated clock, not the wall clock.
    assert 0 <= seconds(reading.ts - simulated(clock, published)) <= TICK_SLACK_S
    event = uplink.firing()[0]
    # The condition held from the reading on; the alarm fired (starts_at) 30 simulated s later.
    assert FOR_S <= seconds(event.starts_at - reading.ts) <= FOR_S + TICK_SLACK_S
    assert event.at == event.starts_at
    assert event.at <= simulated(clock, received)
    # 30 simulated seconds are half a real second at 60x.
    assert received - published < 10
    stats = uplink.readings(GATEWAY)
    assert all(clock.start <= r.ts <= simulated(clock, time.time()) for r in stats)


async def test_the_agent_and_propsim_share_one_simulated_clock(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = write_config(tmp_path, mosquitto)
    scenario_path = tmp_path / "scenario.yaml"
    scenario_path.write_text(SCENARIO)
    origin = time.time() + 8  # time enough for both processes to start
    spec = propsim("clock", str(scenario_path), "--speed", str(SPEED), "--origin", repr(origin))
    spec = spec.strip()
    assert spec == clock_spec(START, origin, SPEED)
    clock = parse_clock_spec(spec)
    async with uplink_reader(mosquitto) as uplink:
        play = asyncio.create_task(
            asyncio.to_thread(
                propsim,
                *("run", str(scenario_path), "--broker", mosquitto.url),
                *("--speed", str(SPEED), "--origin", repr(origin)),
            )
        )
        try:
            async with agent(config, spec, tmp_path / "agent.log"):
                assert time.time() < origin, "the agent took longer than the lead time to start"
                out = await play
                await until(lambda: len(uplink.firing()) >= 2, 10, "the FIRING events")
        finally:
            await asyncio.gather(play, return_exceptions=True)
    assert json.loads(out)["emitted"] == 9

    # Every report is stamped with the simulated time at which propsim played it.
    scenario = load_scenario(scenario_path)
    emissions = [e.t for e in generate(scenario).emissions]
    readings = uplink.readings("smoke-1", Metric.SMOKE)
    assert len(readings) == len(emissions)
    for reading, t in zip(readings, emissions, strict=True):
        assert -1 <= seconds(reading.ts - (clock.start + timedelta(seconds=t))) <= TICK_SLACK_S
    # The first report with smoke starts the timer; the alarm fires 30 simulated seconds later.
    first_smoke = next(r for r in readings if r.value is True)
    first, resent, *_ = uplink.firing()
    assert FOR_S <= seconds(first.starts_at - first_smoke.ts) <= FOR_S + TICK_SLACK_S
    assert first.at == first.starts_at == resent.starts_at
    # FIRING is sent again every `resend` (60 s): simulated seconds too.
    assert 60 <= seconds(resent.at - first.at) <= 60 + TICK_SLACK_S
