import asyncio
import contextlib

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.sources.mqtt_intake import CHUNK_BYTES, MqttIntake, MqttIntakeError
from simulators.services import Mosquitto, free_port

pytestmark = pytest.mark.integration


def publisher(port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="intake-test-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish_all(client: paho.Client, messages: list[tuple[str, bytes, int]]) -> None:
    infos = [client.publish(topic, payload, qos=qos) for topic, payload, qos in messages]
    for info in infos:
        info.wait_for_publish(timeout=10)


async def subscribed(intake: MqttIntake) -> None:
    for _ in range(500):
        if intake.subscribed:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no SUBACK within 10 s")


async def take_n(intake: MqttIntake, count: int) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(20):
        while len(got) < count:
            got += await intake.take()
    return got


async def test_every_message_arrives_once_in_order_with_its_exact_payload(
    mosquitto: Mosquitto,
) -> None:
    intake = MqttIntake(
        mosquitto.host, mosquitto.port, client_id="intake-order", topics=["z/#", "lora/+/up"]
    )
    await intake.connect()
    ping = asyncio.create_task(intake.keepalive())
    try:
        await subscribed(intake)
        big = bytes(range(256)) * (CHUNK_BYTES // 128)  # spans several socket reads
        messages = [
            (f"z/dev-{n % 7}", f'{{"seq":{n},"x":"{"é" * (n % 5)}"}}'.encode(), n % 2)
            for n in range(3000)
        ]
        messages.insert(1500, ("lora/a1/up", big, 0))
        messages.append(("other/topic", b"not subscribed", 0))
        messages.append(("z/last", b"", 1))
        client = publisher(mosquitto.port)
        try:
            await asyncio.to_thread(publish_all, client, messages)
        finally:
            client.loop_stop()
            client.disconnect()
        got = await take_n(intake, len(messages) - 1)
    finally:
        ping.cancel()
        intake.close()
    # MQTT orders messages per QoS level (the broker holds QoS 1 beyond its in-flight window).
    for qos in (0, 1):
        sent = [(t, p) for t, p, q in messages if q == qos and t != "other/topic"]
        members = set(sent)
        assert [m for m in got if m in members] == sent
    assert len(got) == len(messages) - 1


async def test_a_slow_consumer_pauses_reading_and_nothing_is_lost(mosquitto: Mosquitto) -> None:
    intake = MqttIntake(
        mosquitto.host, mosquitto.port, client_id="intake-slow", topics=["z/#"], max_pending=50
    )
    await intake.connect()
    try:
        await subscribed(intake)
        messages = [(f"z/{n}", f"{n:>8}".encode() * 50, 1) for n in range(2000)]
        client = publisher(mosquitto.port)
        try:
            send = asyncio.create_task(asyncio.to_thread(publish_all, client, messages))
            got: list[tuple[str, bytes]] = []
            largest = 0
            async with asyncio.timeout(20):
                while len(got) < len(messages):
                    await asyncio.sleep(0.01)  # the consumer lags behind
                    batch = await intake.take()
                    largest = max(largest, len(batch))
                    got += batch
            await send
        finally:
            client.loop_stop()
            client.disconnect()
    finally:
        intake.close()
    assert got == [(topic, payload) for topic, payload, _ in messages]
    # Reading stops at the bound; one socket read (at most CHUNK_BYTES) may go past it.
    assert intake.pauses > 0
    assert largest <= 50 + CHUNK_BYTES // 400 < len(messages)


async def test_a_lost_broker_ends_take_after_what_was_received(mosquitto: Mosquitto) -> None:
    intake = MqttIntake(mosquitto.host, mosquitto.port, client_id="intake-lost", topics=["z/#"])
    await intake.connect()
    try:
        await subscribed(intake)
        client = publisher(mosquitto.port)
        try:
            await asyncio.to_thread(publish_all, client, [("z/a", b"1", 1), ("z/b", b"2", 1)])
        finally:
            client.loop_stop()
            client.disconnect()
        await asyncio.sleep(0.3)
        mosquitto.stop()
        got = await take_n(intake, 2)
        async with asyncio.timeout(10):
            with pytest.raises(MqttIntakeError):
                await intake.take()
    finally:
        intake.close()
        with contextlib.suppress(Exception):
            mosquitto.start()
    assert got == [("z/a", b"1"), ("z/b", b"2")]


async def test_no_broker_is_a_clear_connection_error() -> None:
    intake = MqttIntake("127.0.0.1", free_port(), client_id="intake-none", topics=["z/#"])
    with pytest.raises(MqttIntakeError, match="cannot connect"):
        await intake.connect()
    intake.close()
