"""A config pushed over MQTT changes the agent's sources and local actions while it runs, and stays
after a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from edge_agent.app import Agent
from edge_agent.config import parse_config
from edge_agent.outbox.sqlite import SqliteOutbox
from simulators.services import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GATEWAY = "gw-push"
BRIGHT = "rules:\n  - id: bright\n    match: {metric: illuminance_lux}\n    above: 1\n    severity: critical\n"


def config_text(tmp: Path, local: Mosquitto, uplink: Mosquitto, *, pushed: bool) -> str:
    base_topic = "z2m" if pushed else "zigbee2mqtt"
    devices = (
        "  - {id: meter-a, codec: zigbee2mqtt.generic.exposes, kind: meter, friendly_name: a}\n"
    )
    if pushed:
        devices += (
            "  - {id: meter-b, codec: zigbee2mqtt.generic.exposes, kind: meter, friendly_name: b}\n"
        )
    actions = "actions: [{topic: relay/siren/set, min_severity: critical}]\n" if pushed else ""
    return f"""\
{actions}gateway: {{id: {GATEWAY}}}
state_dir: {tmp / "state"}
sources:
  mqtt: {{host: 127.0.0.1, port: {local.port}, zigbee2mqtt: {{base_topic: {base_topic}}}}}
devices:
{devices}rules: [rules.yaml]
uplink: {{host: 127.0.0.1, port: {uplink.port}, keepalive_s: 5, batch_wait_s: 0.05}}
"""


async def until(predicate: Callable[[], bool], limit: float = 30.0) -> None:
    for _ in range(int(limit / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {limit} s")


async def publish(broker: Mosquitto, topic: str, payload: str, *, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"pub-{topic}") as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def stored_devices(agent: Agent) -> set[str]:
    """Devices of the readings in the agent's outbox (the uplink may be down)."""
    outbox: SqliteOutbox = agent.outbox
    batch = await outbox.begin(10_000)
    return set() if batch is None else {r.device_id for r in batch.readings}


async def test_a_pushed_source_change_applies_at_once_and_survives_a_restart(  # noqa: PLR0915 - one story
    tmp_path: Path, mosquitto: Mosquitto, mosquitto_factory: Callable[[], Mosquitto]
) -> None:
    uplink, local = mosquitto, mosquitto_factory()
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    path = tmp_path / "edge.yaml"
    path.write_text(config_text(tmp_path, local, uplink, pushed=False))
    reports: list[dict[str, object]] = []

    async def watch_reports() -> None:
        async with aiomqtt.Client("127.0.0.1", uplink.port, identifier="cloud") as client:
            await client.subscribe(f"steward/v1/{GATEWAY}/config/report", qos=1)
            async for message in client.messages:
                if isinstance(message.payload, bytes) and message.payload:
                    reports.append(json.loads(message.payload))  # noqa: PERF401 - read while it runs

    siren: list[bytes] = []

    async def watch_siren() -> None:
        async with aiomqtt.Client("127.0.0.1", local.port, identifier="siren") as client:
            await client.subscribe("relay/siren/set", qos=1)
            async for message in client.messages:
                if isinstance(message.payload, bytes):
                    siren.append(message.payload)  # noqa: PERF401 - read while it runs

    watcher = asyncio.create_task(watch_reports())
    relay = asyncio.create_task(watch_siren())
    agent = Agent(parse_config(path.read_text(), str(path)), path)
    running = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.ready.wait(), 10)
        desired = config_text(tmp_path, local, uplink, pushed=True)
        await publish(
            uplink,
            f"steward/v1/{GATEWAY}/config",
            json.dumps({"config": desired, "rules": BRIGHT}),
            retain=True,
        )
        await until(lambda: any(r.get("accepted") for r in reports))
        assert reports[-1]["applied"] == ["devices", "sources", "actions", "rules"]
        await until(lambda: any(getattr(s, "connected", False) for s in agent.sources))
        await publish(local, "z2m/b", json.dumps({"illuminance": 5}))
        await until(lambda: agent.uplink.counters.records_sent >= 1)
        await until(
            lambda: [json.loads(p) for p in siren] == [{"state": "ON"}]
        )  # an action the gateway did not have at start
        agent.stop()
        assert await asyncio.wait_for(running, 20) == 0

        # Restart with the uplink down: the pushed config must come from the state directory.
        uplink.stop()
        again = Agent(parse_config(path.read_text(), str(path)), path)
        running = asyncio.create_task(again.run())
        await asyncio.wait_for(again.ready.wait(), 10)
        mqtt = again.config.sources.mqtt
        assert mqtt is not None
        assert mqtt.zigbee2mqtt is not None
        assert mqtt.zigbee2mqtt.base_topic == "z2m"
        await until(lambda: any(getattr(s, "connected", False) for s in again.sources))
        await publish(local, "z2m/b", json.dumps({"illuminance": 6}))
        await publish(local, "zigbee2mqtt/a", json.dumps({"illuminance": 7}))  # not read now
        await until(lambda: again.pipeline.stats.frames_in >= 1)
        await asyncio.sleep(0.3)
        assert await stored_devices(again) == {"meter-b"}
        again.stop()
        assert await asyncio.wait_for(running, 20) == 0
    finally:
        if not running.done():
            running.cancel()
        watcher.cancel()
        relay.cancel()
        await asyncio.gather(running, watcher, relay, return_exceptions=True)
        local.close()
        uplink.start()
