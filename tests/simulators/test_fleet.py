from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from core.envelope_json import loads
from firmware_adapters.chirpstack import parse_up_event
from simulators.fleet import FleetConfig, run_fleet
from simulators.services import Mosquitto

pytestmark = pytest.mark.integration


async def received(broker: Mosquitto, topic: str, config: FleetConfig) -> tuple[int, list[bytes]]:
    got: list[bytes] = []

    async def listen(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            got.append(message.payload)

    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic)
        listener = asyncio.create_task(listen(client))
        result = await asyncio.get_running_loop().run_in_executor(None, run_fleet, config)
        for _ in range(300):
            if len(got) >= result.sent:
                break
            await asyncio.sleep(0.01)
        listener.cancel()
    return result.sent, got


async def test_fleet_envelopes_are_valid_and_unique(mosquitto: Mosquitto) -> None:
    config = FleetConfig(mosquitto.url, gateways=3, devices=5, rate=600, duration=1.0, processes=2)
    sent, got = await received(mosquitto, "steward/v1/+/up", config)
    assert 400 <= sent <= 700
    assert len(got) == sent
    envelopes = [loads(p) for p in got]
    assert len({e.batch_id for e in envelopes}) == sent
    assert {e.gateway_id for e in envelopes} == {"gw-0000", "gw-0001", "gw-0002"}
    assert all(len(e.readings) == 1 for e in envelopes)


async def test_fleet_chirpstack_events_parse(mosquitto: Mosquitto) -> None:
    config = FleetConfig(
        mosquitto.url, gateways=2, devices=3, rate=200, duration=0.5, processes=1, kind="chirpstack"
    )
    sent, got = await received(mosquitto, "application/+/device/+/event/up", config)
    assert len(got) == sent > 50
    events = [parse_up_event(p) for p in got]
    assert len({e.dev_eui for e in events}) == 6
    assert all(e.f_port == 85 for e in events)
