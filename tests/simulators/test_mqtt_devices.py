from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiomqtt
import pytest

from firmware_adapters.chirpstack import frame_from_up_event, parse_up_event
from firmware_adapters.registry import get_codec
from firmware_adapters.zigbee2mqtt_exposes import frame_from_z2m_message, parse_bridge_devices
from simulators.exposes import exposes_for
from simulators.fixtures_devices import RunningSimulation
from simulators.runner import RunOptions, ScenarioRunner
from simulators.scenario import parse_scenario
from simulators.services import Mosquitto

pytestmark = pytest.mark.integration
NOW = datetime(2026, 1, 5, tzinfo=UTC)
Start = Callable[..., Awaitable[RunningSimulation]]


async def collect(
    broker: Mosquitto,
    topic: str,
    until: Callable[[list[aiomqtt.Message]], bool],
    seconds: float = 10,
) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(seconds):
                async for message in client.messages:
                    got.append(message)
                    if until(got):
                        break
        except TimeoutError:
            pass
    return got


def never(got: list[aiomqtt.Message]) -> bool:
    return False


def payload(message: aiomqtt.Message) -> bytes:
    assert isinstance(message.payload, bytes)
    return message.payload


async def test_chirpstack_up_events_decode_with_the_real_parser_and_codec(
    chirpstack_sim: Start, mosquitto: Mosquitto
) -> None:
    listener = asyncio.create_task(
        collect(mosquitto, "application/+/device/+/event/up", lambda got: len(got) >= 12)
    )
    await asyncio.sleep(0.2)
    sim = await chirpstack_sim(
        count=2, interval=10, duration=300, speed=100, alarm_at=100, alarm_for=60
    )
    messages = await listener
    await sim.stop()
    assert len(messages) >= 12
    codec = get_codec("lorawan.milesight.em310_udl")
    fcnts: dict[str, list[int]] = {}
    for m in messages:
        event = parse_up_event(payload(m))
        assert str(m.topic) == f"application/{event.application_id}/device/{event.dev_eui}/event/up"
        frame = frame_from_up_event(event, codec.id, NOW, event.device_name)
        values = {r.metric.value: r.value for r in codec.decode(frame).readings}
        assert 0 < values["distance_mm"] < 2000
        assert -130 < values["rssi_dbm"] < -30
        fcnts.setdefault(event.dev_eui, []).append(event.f_cnt)
    assert len(fcnts) == 2
    for counts in fcnts.values():
        assert counts == sorted(counts)
        assert len(set(counts)) == len(counts)


async def test_zigbee2mqtt_bridge_devices_availability_and_state(
    zigbee2mqtt_sim: Start, mosquitto: Mosquitto
) -> None:
    sim = await zigbee2mqtt_sim(
        count=2, interval=5, duration=120, speed=60, alarm_at=30, alarm_for=30
    )
    await sim.wait()
    # Retained documents are there for a late subscriber, as from a real bridge.
    retained = await collect(mosquitto, "zigbee2mqtt/#", lambda got: len(got) >= 4, seconds=3)
    by_topic = {str(m.topic): payload(m) for m in retained}
    assert json.loads(by_topic["zigbee2mqtt/bridge/state"]) == {"state": "online"}
    index = parse_bridge_devices(by_topic["zigbee2mqtt/bridge/devices"])
    assert set(index) == {"zigbee2mqtt-1", "zigbee2mqtt-2"}
    device = index["zigbee2mqtt-1"]
    assert device.model == "HS3SA/HS1SA"
    assert {e.property for e in device.exposes} >= {"smoke", "battery", "battery_low"}
    listed = json.loads(by_topic["zigbee2mqtt/bridge/devices"])
    assert listed[1]["definition"]["exposes"] == exposes_for("HS3SA/HS1SA")
    assert json.loads(by_topic["zigbee2mqtt/zigbee2mqtt-1/availability"]) == {"state": "online"}


async def test_zigbee2mqtt_states_decode_and_show_the_alarm(
    zigbee2mqtt_sim: Start, mosquitto: Mosquitto
) -> None:
    listener = asyncio.create_task(collect(mosquitto, "zigbee2mqtt/#", never, seconds=3))
    await asyncio.sleep(0.2)
    sim = await zigbee2mqtt_sim(
        count=1, interval=10, duration=120, speed=60, alarm_at=40, alarm_for=30
    )
    messages = await listener
    await sim.stop()
    index = parse_bridge_devices(
        next(payload(m) for m in messages if str(m.topic) == "zigbee2mqtt/bridge/devices")
    )
    codec = get_codec("zigbee2mqtt.generic.exposes")
    smoke: list[bool] = []
    for m in messages:
        frame = frame_from_z2m_message(str(m.topic), payload(m), index, NOW)
        if frame is None or frame.meta["kind"] != "state":
            continue
        values = {r.metric.value: r.value for r in codec.decode(frame).readings}
        assert set(values) <= {"smoke", "battery_pct", "low_battery", "self_test", "tamper"}
        smoke.append(bool(values["smoke"]))
    assert smoke[0] is False
    assert True in smoke
    assert smoke[-1] is False  # the fire was put out before the end


async def test_broker_disconnect_fault_drops_the_connection_and_comes_back(
    mosquitto: Mosquitto,
) -> None:
    scenario = parse_scenario(
        """
name: outage
duration: 60
site: {compounds: [{id: c1}]}
devices:
  - {id: bin-1, kind: bin, codec: lorawan.milesight.em310_udl, transport: lorawan, location: c1, interval: 2, tick: 2}
timeline:
  - {at: 20, fault: broker_disconnect, duration: 20}
"""
    )
    listener = asyncio.create_task(collect(mosquitto, "application/#", never, seconds=2.5))
    await asyncio.sleep(0.2)
    runner = ScenarioRunner(scenario, RunOptions(speed=30, broker_url=mosquitto.url))
    stats = await runner.run()
    messages = await listener
    fcnts = [parse_up_event(payload(m)).f_cnt for m in messages]
    assert stats.disconnects == 1
    assert 15 <= len(messages) <= 22  # about 30 reports, minus the 10 of the outage
    # fCnt keeps counting on the device while the uplink is gone: the gap shows the outage.
    gaps = [b - a for a, b in itertools.pairwise(fcnts)]
    assert max(gaps) >= 9


async def test_a_silent_zigbee_device_goes_offline_and_back(mosquitto: Mosquitto) -> None:
    scenario = parse_scenario(
        """
name: silent
duration: 60
site: {compounds: [{id: c1}]}
devices:
  - {id: door-1, kind: perimeter, codec: zigbee2mqtt.generic.exposes, transport: zigbee2mqtt, location: c1, interval: 2,
     address: {friendly_name: gate/door, model: TS0203}}
timeline:
  - {at: 20, fault: silent, devices: [door-1], duration: 20}
"""
    )
    listener = asyncio.create_task(
        collect(mosquitto, "zigbee2mqtt/gate/door/#", never, seconds=2.5)
    )
    await asyncio.sleep(0.2)
    await ScenarioRunner(scenario, RunOptions(speed=30, broker_url=mosquitto.url)).run()
    messages = await listener
    availability = [
        json.loads(payload(m))["state"] for m in messages if str(m.topic).endswith("/availability")
    ]
    assert availability == ["online", "offline", "online"]
    states = [json.loads(payload(m)) for m in messages if str(m.topic) == "zigbee2mqtt/gate/door"]
    assert 12 <= len(states) <= 22
    assert all("contact" in s and "linkquality" in s for s in states)


async def test_same_seed_same_bytes_on_the_broker(mosquitto: Mosquitto) -> None:
    text = """
name: seeded
duration: 40
site: {compounds: [{id: c1}]}
devices:
  - {id: bin-1, kind: bin, codec: lorawan.milesight.em310_udl, transport: lorawan, location: c1, interval: 4}
  - {id: smoke-1, kind: smoke, codec: zigbee2mqtt.generic.exposes, transport: zigbee2mqtt, location: c1, interval: 4}
"""

    async def play(seed: int) -> list[tuple[str, bytes]]:
        listener = asyncio.create_task(collect(mosquitto, "application/#", never, seconds=1.8))
        z2m = asyncio.create_task(collect(mosquitto, "zigbee2mqtt/smoke-1", never, seconds=1.8))
        await asyncio.sleep(0.2)
        await ScenarioRunner(
            parse_scenario(text), RunOptions(seed=seed, speed=30, broker_url=mosquitto.url)
        ).run()
        return [(str(m.topic), payload(m)) for m in await listener + await z2m]

    first, again, other = await play(1), await play(1), await play(2)
    assert len(first) >= 10
    assert {topic.split("/")[0] for topic, _ in first} == {"application", "zigbee2mqtt"}
    assert first == again
    assert first != other
