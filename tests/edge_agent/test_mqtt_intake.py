import asyncio
import contextlib

import paho.mqtt.client as paho
import pytest
from hostile_broker import ACCEPTED, HostileBroker
from paho.mqtt.enums import CallbackAPIVersion

from core.clock import SystemClock
from core.types import RawFrame
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import LocalMqttConfig, Zigbee2MqttConfig
from edge_agent.mqtt_wire import PacketType, connack_packet, encode_remaining_length, publish_packet
from edge_agent.selfstats import PipelineStats
from edge_agent.sources.base import Backoff, SourceContext
from edge_agent.sources.mqtt import MQTT_PROTOCOL_CODEC, MqttSource
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


def stored_now() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


async def take_n(intake: MqttIntake, count: int) -> list[tuple[str, bytes]]:
    """Take `count` messages, acknowledging each batch as stored at once."""
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(20):
        while len(got) < count:
            received = await intake.take()
            got += received.messages
            intake.acknowledge(received.acks, stored_now())
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
                    received = await intake.take()
                    intake.acknowledge(received.acks, stored_now())
                    largest = max(largest, len(received.messages))
                    got += received.messages
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


async def _publish(port: int, messages: list[tuple[str, bytes, int]]) -> None:
    client = publisher(port)
    try:
        await asyncio.to_thread(publish_all, client, messages)
    finally:
        client.loop_stop()
        client.disconnect()


async def _take_exactly(
    intake: MqttIntake, count: int
) -> tuple[list[tuple[str, bytes]], list[int]]:
    messages: list[tuple[str, bytes]] = []
    acks: list[int] = []
    async with asyncio.timeout(20):
        while len(messages) < count:
            received = await intake.take()
            messages += received.messages
            acks += received.acks
    return messages, acks


async def test_qos1_messages_are_acknowledged_once_stored_in_arrival_order(
    mosquitto: Mosquitto,
) -> None:
    loop = asyncio.get_running_loop()
    first = [(f"z/{n}", f"first {n}".encode(), 1) for n in range(3)]
    second = [(f"z/{n}", f"second {n}".encode(), 1) for n in range(3)]
    intake = MqttIntake(mosquitto.host, mosquitto.port, client_id="intake-acks", topics=["z/#"])
    await intake.connect()
    ping = asyncio.create_task(intake.keepalive())
    try:
        await subscribed(intake)
        await _publish(mosquitto.port, first)
        _, first_acks = await _take_exactly(intake, 3)
        stored_first: asyncio.Future[None] = loop.create_future()
        intake.acknowledge(first_acks, stored_first)
        await _publish(mosquitto.port, second)
        _, second_acks = await _take_exactly(intake, 3)
        intake.acknowledge(second_acks, stored_now())
        await asyncio.sleep(0.1)
        # The second batch is stored, but its PUBACKs wait behind the first batch's.
        assert intake.unacknowledged == 6
    finally:
        ping.cancel()
        intake.close()  # nothing was acknowledged: the broker keeps all six for the session

    again = MqttIntake(mosquitto.host, mosquitto.port, client_id="intake-acks", topics=["z/#"])
    await again.connect()
    try:
        messages, acks = await _take_exactly(again, 6)
        assert messages == [(t, p) for t, p, _ in first + second]
        stored: asyncio.Future[None] = loop.create_future()
        again.acknowledge(acks[:3], stored)
        again.acknowledge(acks[3:], stored_now())
        stored.set_result(None)
        await asyncio.sleep(0.1)
        assert again.unacknowledged == 0
    finally:
        again.close()

    last = MqttIntake(mosquitto.host, mosquitto.port, client_id="intake-acks", topics=["z/#"])
    await last.connect()
    try:
        await subscribed(last)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await last.take()  # everything was acknowledged: nothing comes again
    finally:
        last.close()


async def test_a_failed_store_ends_the_connection_so_the_broker_sends_again(
    mosquitto: Mosquitto,
) -> None:
    intake = MqttIntake(mosquitto.host, mosquitto.port, client_id="intake-fail", topics=["z/#"])
    await intake.connect()
    try:
        await subscribed(intake)
        await _publish(mosquitto.port, [("z/a", b"1", 1)])
        _, acks = await _take_exactly(intake, 1)
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        intake.acknowledge(acks, failed)
        failed.set_exception(OSError("disk full"))
        async with asyncio.timeout(5):
            with pytest.raises(MqttIntakeError, match="could not be stored"):
                await intake.take()
    finally:
        intake.close()
    again = MqttIntake(mosquitto.host, mosquitto.port, client_id="intake-fail", topics=["z/#"])
    await again.connect()
    try:
        messages, acks = await _take_exactly(again, 1)
        again.acknowledge(acks, stored_now())
    finally:
        again.close()
    assert messages == [("z/a", b"1")]


@pytest.mark.parametrize(
    ("garbage", "detail", "reason"),
    [
        (b"\x30\x01\x00", "without a topic length", "malformed_packet"),
        (b"\x30\x03\x00\x09z", "topic runs past", "malformed_packet"),
        (b"\x30\xff\xff\xff\xff\x7f", "more than 4 bytes", "malformed_remaining_length"),
        (b"\x30" + encode_remaining_length(2_000_000), "above the limit", "packet_too_large"),
        (b"\x36\x02\x00\x00", "PUBLISH with flags 0b0110", "unexpected_packet"),  # QoS 3
        (b"\x00\x00", "reserved type 0", "unexpected_packet"),
        (b"\x10\x00", "CONNECT", "unexpected_packet"),  # only clients send it
        (b"\x20\x02\x00\x00", "a second CONNACK", "out_of_order"),
    ],
)
async def test_a_malformed_packet_ends_the_connection_after_the_good_ones(
    garbage: bytes, detail: str, reason: str
) -> None:
    errors: list[str] = []
    async with HostileBroker(garbage + publish_packet("z", b"never")) as broker:
        intake = MqttIntake(
            "127.0.0.1",
            broker.port,
            client_id="intake-hostile",
            topics=["z"],
            max_packet_bytes=1024 * 1024,
            on_protocol_error=errors.append,
        )
        await intake.connect()
        try:
            async with asyncio.timeout(5):
                received = await intake.take()
                assert received.messages == [("z", b"ok")]
                with pytest.raises(MqttIntakeError, match=f"protocol error.*{reason}.*{detail}"):
                    await intake.take()
        finally:
            intake.close()
    assert errors == [reason]


async def test_garbage_instead_of_a_connack_is_a_protocol_error() -> None:
    errors: list[str] = []
    async with HostileBroker(connack=b"HTTP/1.1 400 Bad Request\r\n\r\n") as broker:
        intake = MqttIntake(
            "127.0.0.1", broker.port, client_id="c", topics=["z"], on_protocol_error=errors.append
        )
        await intake.connect()
        try:
            async with asyncio.timeout(5):
                with pytest.raises(MqttIntakeError, match="protocol error"):
                    await intake.take()
        finally:
            intake.close()
    assert errors == ["unexpected_packet"]
    assert not broker.packets_of(PacketType.SUBSCRIBE)


@pytest.mark.parametrize(
    ("code", "why"), [(2, "identifier rejected"), (5, "not authorized")], ids=["id", "auth"]
)
async def test_a_refused_connection_ends_the_session_without_subscribing(
    code: int, why: str
) -> None:
    async with HostileBroker(connack=connack_packet(code)) as broker:
        intake = MqttIntake("127.0.0.1", broker.port, client_id="c", topics=["z"])
        await intake.connect()
        try:
            async with asyncio.timeout(5):
                with pytest.raises(MqttIntakeError, match=f"connection refused: {why}"):
                    await intake.take()
        finally:
            intake.close()
    assert not broker.packets_of(PacketType.SUBSCRIBE)
    assert not intake.subscribed


async def test_a_broker_closing_mid_packet_ends_take_after_the_whole_messages() -> None:
    truncated = publish_packet("z", b"x" * 1000)[:100]
    async with HostileBroker(truncated, close_after=True) as broker:
        intake = MqttIntake("127.0.0.1", broker.port, client_id="c", topics=["z"])
        await intake.connect()
        try:
            async with asyncio.timeout(5):
                assert (await intake.take()).messages == [("z", b"ok")]
                with pytest.raises(MqttIntakeError, match="the broker closed the connection"):
                    await intake.take()
        finally:
            intake.close()


@pytest.mark.parametrize(
    ("connack", "lost"),
    [
        (ACCEPTED, "nothing from the broker for 1 s after a PINGREQ"),
        (b"", "no CONNACK within the keepalive"),
    ],
    ids=["no-pingresp", "no-connack"],
)
async def test_a_silent_broker_ends_the_session_after_the_keepalive(
    connack: bytes, lost: str
) -> None:
    async with HostileBroker(connack=connack, answer_pings=False, hold_s=30) as broker:
        intake = MqttIntake("127.0.0.1", broker.port, client_id="c", topics=["z"], keepalive_s=1)
        await intake.connect()
        ping = asyncio.create_task(intake.keepalive())
        try:
            async with asyncio.timeout(6):
                with pytest.raises(MqttIntakeError, match=lost):
                    await take_until_lost(intake)
        finally:
            ping.cancel()
            intake.close()
    if connack:
        assert broker.packets_of(PacketType.PINGREQ)


async def test_pubacks_wait_for_the_store_and_close_sends_disconnect() -> None:
    queued = publish_packet("z", b"1", qos=1, packet_id=5) + publish_packet(
        "z", b"2", qos=1, packet_id=6
    )
    async with HostileBroker(queued) as broker:
        intake = MqttIntake("127.0.0.1", broker.port, client_id="c", topics=["z"])
        await intake.connect()
        try:
            received: list[tuple[str, bytes]] = []
            acks: list[int] = []
            async with asyncio.timeout(5):
                while len(received) < 3:
                    batch = await intake.take()
                    received += batch.messages
                    acks += batch.acks
            assert received == [("z", b"ok"), ("z", b"1"), ("z", b"2")]
            stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            intake.acknowledge(acks, stored)
            await asyncio.sleep(0.3)
            assert not broker.packets_of(PacketType.PUBACK)  # not stored yet: not acknowledged
            stored.set_result(None)
            await broker.until(PacketType.PUBACK, 2)
            assert broker.packets_of(PacketType.PUBACK) == [b"\x00\x05", b"\x00\x06"]
        finally:
            intake.close()
        await broker.until(PacketType.DISCONNECT)


async def test_the_source_counts_a_protocol_error_and_connects_again() -> None:
    stats = PipelineStats()
    frames: list[RawFrame] = []

    async def submit(frame: RawFrame) -> None:
        frames.append(frame)

    async def fault(_device_id: str, _faulty: bool) -> None:
        return None

    async with HostileBroker(b"\x30\xff\xff\xff\xff\x7f", close_after=True) as broker:
        source = MqttSource(
            name="local-mqtt",
            broker=LocalMqttConfig(port=broker.port, zigbee2mqtt=Zigbee2MqttConfig()),
            bindings=BindingsHolder(Bindings.build([])),
            ctx=SourceContext(submit, fault, stats, SystemClock()),
            client_id="protocol-errors",
            backoff=Backoff(first=0.05, maximum=0.1),
        )
        task = asyncio.create_task(source.run())
        try:
            await broker.until(PacketType.CONNECT, 3, limit=10)
            assert not task.done()  # never a crash: it connects again and again
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert stats.decode_errors[MQTT_PROTOCOL_CODEC, "malformed_remaining_length"] >= 2


OPTIONAL = "$SYS/broker/publish/messages/dropped"


async def take_until_lost(intake: MqttIntake) -> None:
    """Take until `take()` raises (the exception propagates)."""
    while True:
        await intake.take()


@pytest.mark.parametrize(
    ("granted", "lost"),
    [(b"\x01\x80", None), (b"\x80\x01", "subscription refused")],
    ids=["optional-refused", "required-refused"],
)
async def test_only_a_refused_required_subscription_ends_the_session(
    granted: bytes, lost: str | None
) -> None:
    async with HostileBroker(b"", granted=granted) as broker:
        intake = MqttIntake(
            "127.0.0.1",
            broker.port,
            client_id="intake-sub",
            topics=["z"],
            optional_topics=[OPTIONAL],
        )
        await intake.connect()
        try:
            async with asyncio.timeout(5):
                if lost is None:
                    assert (await intake.take()).messages == [("z", b"ok")]
                else:
                    with pytest.raises(MqttIntakeError, match=lost):
                        await take_until_lost(intake)
            assert intake.subscribed is (lost is None)
            assert intake.refused == ((OPTIONAL,) if lost is None else ())
        finally:
            intake.close()
