"""`edge-agent run` as a subprocess, end to end, through every failure the gateway must ride out.

A GB/T 26875.3 fire panel on a real pty (it resends each frame until the agent confirms it), a real
local broker (siren relay) and a real uplink broker. Checked at the uplink broker, after
de-duplication by batch id: every alarm event arrives with contiguous `seq` per fingerprint, and the
panel's telemetry is complete and in order, across a 60 s uplink outage, a frozen uplink broker, a
`kill -9` mid-stream, a local broker restart, an unplugged serial cable, a garbage flood and a bad
config push; the agent speaks sd_notify and exits 0 on SIGTERM.
"""

import asyncio
import contextlib
import json
import os
import signal
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
from agent_process import AgentProcess, collect

from core.envelope_json import loads
from core.types import AlarmEvent, AlarmState, Reading
from firmware_adapters.framing.base import StreamBuffer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from firmware_adapters.gbt26875.frame import Command, parse_frame
from firmware_adapters.registry import CODECS
from simulators.ip_devices import SiaDc09Transmitter
from simulators.serial_pty import PtyPort
from simulators.services import Mosquitto, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

GATEWAY = "gw-e2e"
PANEL_DEVICE = "panel-1"
ALARM_PANEL = "alarm-panel"
ZIGBEE_SMOKE = "smoke-kitchen"
TEMP_COMPONENT = 50
OUTAGE_S = float(os.environ.get("STEWARD_E2E_OUTAGE_S", "60"))
KEEPALIVE_S = 3
ENCODE = CODECS["serial.gbt26875.3"].encode
DC09 = CODECS["ip.sia.dc09"].encode

RULES = """\
rules:
  - id: fire
    match: {metric: fire_alarm}
    equals: true
    severity: critical
    resend: 3600s
  - id: smoke
    match: {metric: smoke, kinds: [smoke]}
    equals: true
    severity: critical
    resend: 3600s
  - id: intrusion
    match: {metric: intrusion}
    equals: true
    severity: warning
    resend: 3600s
  - id: link
    match: {metric: fault, devices: [panel-1]}
    equals: true
    raises: fault
    severity: warning
    resend: 3600s
"""

BAD_RULES = "rules:\n  - id: broken\n    match: {metric: no_such_metric}\n    above: banana\n"


def config_text(
    tmp: Path, serial_link: Path, local: Mosquitto, uplink: Mosquitto, dc09_port: int
) -> str:
    return f"""\
gateway: {{id: {GATEWAY}, site: hp/nj/xh, site_id: xh}}
state_dir: {tmp / "state"}
sources:
  serial:
    - {{id: panel, port: {serial_link}, codec: serial.gbt26875.3, device: {PANEL_DEVICE}}}
  mqtt: {{host: 127.0.0.1, port: {local.port}, zigbee2mqtt: {{base_topic: zigbee2mqtt}}}}
  dc09: {{host: 127.0.0.1, port: {dc09_port}}}
devices:
  - {{id: {PANEL_DEVICE}, codec: serial.gbt26875.3, kind: fire_panel}}
  - {{id: {ALARM_PANEL}, codec: ip.sia.dc09, kind: alarm_panel, account: "1234"}}
  - {{id: {ZIGBEE_SMOKE}, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: b1/kitchen}}
rules: [rules.yaml]
uplink: {{host: 127.0.0.1, port: {uplink.port}, keepalive_s: {KEEPALIVE_S}, batch_wait_s: 0.05}}
pipeline: {{stats_interval_s: 1}}
actions:
  - {{topic: relay/siren/set, min_severity: critical}}
"""


# --- the fire panel --------------------------------------------------------------------------------


class Panel:
    """A panel that numbers its frames and resends each one until the agent confirms it."""

    def __init__(self, port: PtyPort) -> None:
        self.port = port
        self.serial = 0
        self.confirmed = 0

    def _frame(self, values: dict[str, object]) -> bytes:
        self.serial = (self.serial + 1) % 65536
        return ENCODE({"serial": self.serial, "system_type": 1, "system_address": 1, **values})

    async def send(self, values: dict[str, object], limit: float = 120.0) -> None:
        frame = self._frame(values)
        wanted = parse_frame(frame).serial
        async with asyncio.timeout(limit):
            while True:
                if self.port.plugged:
                    self.port.write(frame)
                    if await self._confirm(wanted):
                        self.confirmed += 1
                        return
                else:
                    await asyncio.sleep(0.1)

    async def _confirm(self, wanted: int) -> bool:
        replies = StreamBuffer(Gbt26875Framer())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while loop.time() < deadline and self.port.plugged:
            for frame in replies.feed(self.port.read_available()):
                reply = parse_frame(frame)
                if reply.command == Command.CONFIRM and reply.serial == wanted:
                    return True
            await asyncio.sleep(0.005)
        return False

    async def fire(self, component: int, *, on: bool) -> None:
        await self.send(
            {"info_type": 2, "component_address": component, "fire_alarm": on, "fault": False}
        )

    async def temperature(self, n: int) -> None:
        await self.send(
            {"info_type": 3, "component_address": TEMP_COMPONENT, "temperature_c": n / 10}
        )


class AlarmPanel:
    """A DC-09 panel that repeats each new burglary zone alarm until the receiver ACKs it."""

    def __init__(self, port: int) -> None:
        self.tx = SiaDc09Transmitter("127.0.0.1", port, timeout_s=2.0, retries=0)
        self.sequence = 0
        self.acked: list[int] = []

    async def burglary(self, zone: int) -> None:
        self.sequence += 1
        message = DC09(
            {
                "id": "ADM-CID",
                "sequence": self.sequence,
                "account": "1234",
                "qualifier": 1,
                "event_code": 130,
                "group": 1,
                "zone": zone,
                "at": datetime.now(UTC),
            }
        )
        for _ in range(600):  # a real panel keeps dialling; here up to 2 minutes
            if await self.tx.send(message):
                self.acked.append(zone)
                return
            await asyncio.sleep(0.2)


# --- what reaches the brokers ----------------------------------------------------------------------


@dataclass
class Collected:
    batches: dict[str, tuple[list[Reading], list[AlarmEvent]]] = field(default_factory=dict)
    reports: list[dict[str, object]] = field(default_factory=list)
    local: list[tuple[str, bytes]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def readings(self) -> list[Reading]:
        return [r for readings, _ in self.batches.values() for r in readings]

    def events(self) -> dict[tuple[str, int], AlarmEvent]:
        return {(e.fingerprint, e.seq): e for _, events in self.batches.values() for e in events}

    def temperatures(self) -> list[float]:
        device = f"{PANEL_DEVICE}/1-1/{TEMP_COMPONENT:08x}"
        return [
            float(r.value)
            for r in self.readings()
            if r.device_id == device and r.metric == "temperature_c"
        ]

    async def until(self, predicate: Callable[[], bool], limit: float = 60.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self.changed.wait()


async def test_agent_end_to_end_through_failures(  # noqa: C901, PLR0915 - one story, in order
    tmp_path: Path,
    mosquitto: Mosquitto,
    mosquitto_factory: Callable[[], Mosquitto],
    notify_socket: tuple[Path, list[str]],
) -> None:
    uplink, local = mosquitto, mosquitto_factory()
    notify_path, notices = notify_socket
    port = PtyPort(tmp_path / "dev" / "serial" / "by-id" / "usb-panel-if00").plug()
    panel = Panel(port)
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "edge.yaml"
    dc09_port = free_port()
    config.write_text(config_text(tmp_path, port.link, local, uplink, dc09_port))
    alarm_panel = AlarmPanel(dc09_port)
    seen = Collected()

    def on_uplink(topic: str, payload: bytes) -> None:
        if topic.endswith("/up"):
            env = loads(payload)
            seen.batches[str(env.batch_id)] = (list(env.readings), list(env.alarm_events))
        elif topic.endswith("/config/report") and payload:
            seen.reports.append(json.loads(payload))
        seen.changed.set()

    def on_local(topic: str, payload: bytes) -> None:
        seen.local.append((topic, payload))
        seen.changed.set()

    collectors = [
        asyncio.create_task(collect(uplink, f"steward/v1/{GATEWAY}/#", "cloud", on_uplink)),
        asyncio.create_task(collect(local, "relay/#", "siren", on_local)),
    ]
    agent = AgentProcess(config, tmp_path / "agent.log", notify_path)
    agent.start()
    sent_temps: list[float] = []
    fired: list[int] = []

    async def temps(start: int, stop: int) -> None:
        for n in range(start, stop):
            await panel.temperature(n)
            sent_temps.append(n / 10)

    def siren(state: str) -> int:
        return sum(
            1 for topic, p in seen.local if topic == "relay/siren/set" and state in p.decode()
        )

    try:
        await seen.until(lambda: any("READY=1" in m for m in notices), 30)
        # 1. Normal operation: an alarm sounds the local siren and reaches the cloud.
        await panel.fire(1, on=True)
        fired.append(1)
        await seen.until(lambda: siren("ON") == 1)
        await seen.until(lambda: any(e.state is AlarmState.FIRING for e in seen.events().values()))
        await temps(0, 20)

        # 2. Uplink outage of 60 s: alarms and the siren keep working, everything is replayed.
        uplink.stop()
        await temps(20, 60)
        await panel.fire(1, on=False)
        await panel.fire(2, on=True)
        fired.append(2)
        await seen.until(lambda: siren("OFF") == 1 and siren("ON") == 2)
        for zone in range(1, 6):
            await alarm_panel.burglary(zone)
        await asyncio.sleep(OUTAGE_S - 5)
        await temps(60, 80)
        uplink.start()
        await seen.until(lambda: len(seen.temperatures()) >= 80, 120)

        # 3. Silent partition: the uplink broker is frozen (TCP open) for longer than the keepalive.
        uplink.pause()
        await temps(80, 120)
        await panel.fire(2, on=False)
        await asyncio.sleep(KEEPALIVE_S * 3)
        uplink.resume()
        await seen.until(lambda: len(seen.temperatures()) >= 120, 120)

        # 4. kill -9 mid-stream; the panel resends what was not confirmed; restart.
        stream = asyncio.create_task(temps(120, 320))

        async def burglaries() -> None:
            for zone in range(10, 40):
                await alarm_panel.burglary(zone)

        intrusions = asyncio.create_task(burglaries())
        await seen.until(lambda: len(sent_temps) >= 150)
        agent.kill(signal.SIGKILL)
        assert await agent.wait(10) == -signal.SIGKILL
        await asyncio.sleep(1)
        agent.start()
        await asyncio.wait_for(stream, 120)
        await asyncio.wait_for(intrusions, 120)
        await seen.until(lambda: len(set(seen.temperatures())) >= 320, 120)

        # 5. Local broker restart: the Zigbee source reconnects and the siren answers again.
        local.restart()
        await panel.fire(3, on=True)
        fired.append(3)
        await seen.until(lambda: siren("ON") >= 3, 60)
        kitchen = f"xh/{ZIGBEE_SMOKE}/smoke"
        async with aiomqtt.Client("127.0.0.1", local.port, identifier="zigbee2mqtt") as z2m:
            for _ in range(
                100
            ):  # the agent's session may still be reconnecting: repeat like a device
                await z2m.publish("zigbee2mqtt/b1/kitchen", json.dumps({"smoke": True}), qos=1)
                if any(fp == kitchen for fp, _ in seen.events()):
                    break
                await asyncio.sleep(0.3)
        await seen.until(lambda: any(fp == kitchen for fp, _ in seen.events()), 30)

        # 6. Serial cable pulled and put back: a fault reading, then frames flow again.
        port.unplug()
        await seen.until(
            lambda: any(
                r.device_id == PANEL_DEVICE and r.metric == "fault" and r.value is True
                for r in seen.readings()
            ),
            60,
        )
        port.plug()
        await temps(320, 330)

        # 7. A garbage flood is consumed and counted; good frames still get through.
        port.write(bytes(range(256)).replace(b"@", b"!") * 80)
        await temps(330, 340)
        await seen.until(
            lambda: any(r.metric == "decode_errors_total" and r.value > 0 for r in seen.readings()),
            30,
        )

        # 8. A bad rule set pushed on the config topic is refused; the agent keeps running.
        async with aiomqtt.Client("127.0.0.1", uplink.port, identifier="cloud-config") as cloud:
            topic = f"steward/v1/{GATEWAY}/config"
            await cloud.publish(topic, json.dumps({"rules": BAD_RULES}), qos=1, retain=True)
            await seen.until(lambda: any(r.get("accepted") is False for r in seen.reports), 30)
            await temps(340, 345)
            await cloud.publish(topic, json.dumps({"rules": RULES}), qos=1, retain=True)
            await seen.until(lambda: any(r.get("accepted") is True for r in seen.reports), 30)
        bad = next(r for r in seen.reports if r.get("accepted") is False)
        errors = bad["errors"]
        assert isinstance(errors, list)
        assert any(str(e).startswith("config-topic:rules:") for e in errors)
        assert agent.alive()

        # 9. SIGTERM: drain, flush, exit 0.
        await seen.until(lambda: len(set(seen.temperatures())) >= 345, 60)
        agent.kill(signal.SIGTERM)
        assert await agent.wait(30) == 0
    finally:
        if agent.alive():
            agent.kill(signal.SIGKILL)
            await agent.wait(10)
        for task in collectors:
            task.cancel()
        await asyncio.gather(*collectors, return_exceptions=True)
        port.close()
        local.close()
        await alarm_panel.tx.close()

    # Telemetry: complete and in per-device order (a resend after kill -9 may repeat a value).
    temperatures = seen.temperatures()
    assert sorted(set(temperatures)) == sorted(set(sent_temps))
    assert temperatures == sorted(temperatures)
    # Alarms: per fingerprint, seq runs 1..n without a gap; each fired component FIRING then RESOLVED.
    by_fingerprint: dict[str, list[AlarmEvent]] = defaultdict(list)
    for (_, _), event in sorted(seen.events().items()):
        by_fingerprint[event.fingerprint].append(event)
    for fingerprint, events in by_fingerprint.items():
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), fingerprint
    for component in fired:
        fingerprint = f"xh/{PANEL_DEVICE}/1-1/{component:08x}/fire"
        states = [e.state for e in by_fingerprint[fingerprint]]
        assert states[0] is AlarmState.FIRING, (fingerprint, states)
        if component in {1, 2}:
            assert AlarmState.RESOLVED in states, (fingerprint, states)
    # Every burglary the receiver acknowledged reached the cloud, as a reading and a FIRING alarm.
    assert sorted(alarm_panel.acked) == [*range(1, 6), *range(10, 40)]
    intruded = {r.device_id for r in seen.readings() if r.metric == "intrusion" and r.value is True}
    for zone in alarm_panel.acked:
        assert f"{ALARM_PANEL}/zone-{zone:03d}" in intruded, zone
        assert (
            by_fingerprint[f"xh/{ALARM_PANEL}/zone-{zone:03d}/intrusion"][0].state
            is AlarmState.FIRING
        )
    assert any("WATCHDOG=1" in m for m in notices)
    assert any("STOPPING=1" in m for m in notices)
    log = (tmp_path / "agent.log").read_text()
    assert "Traceback" not in log, log[-3000:]
