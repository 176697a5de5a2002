"""The MQTT consumer against a real Mosquitto: order, ack after the handler, retries, sharing, restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_ingest.ingest.consumer import ConsumerSettings, MqttConsumer
from cloud_ingest.ingest.messages import Incoming
from simulators.services import Mosquitto

pytestmark = pytest.mark.integration


class Recorder:
    """A handler that records every batch; it can be told to fail or to block."""

    def __init__(self) -> None:
        self.batches: list[list[Incoming]] = []
        self.calls = 0
        self.fail_next = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, batch: Sequence[Incoming]) -> None:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("database down")
        self.batches.append(list(batch))

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for batch in self.batches for m in batch]


def settings(broker: Mosquitto, client_id: str = "ingest-1", **overrides: Any) -> ConsumerSettings:
    base: dict[str, Any] = {
        "batch_max": 20,
        "batch_wait_s": 0.02,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.2,
        "stop_grace_s": 0.2,
        "keepalive_s": 5,
    }
    base.update(overrides)
    return ConsumerSettings.from_url(broker.url, client_id=client_id, **base)


@asynccontextmanager
async def running(
    broker: Mosquitto, handler: Recorder, client_id: str = "ingest-1", **overrides: Any
) -> AsyncIterator[MqttConsumer]:
    consumer = MqttConsumer(settings(broker, client_id, **overrides), handler)
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.ready.wait(), 5)
        yield consumer
    finally:
        await consumer.stop()


def publish(
    broker: Mosquitto, messages: Sequence[tuple[str, bytes]], *, retain: bool = False
) -> None:
    """Publish at QoS 1 and wait for every PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [
            client.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages
        ]
        for info in infos:
            info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


async def apublish(
    broker: Mosquitto, messages: Sequence[tuple[str, bytes]], *, retain: bool = False
) -> None:
    await asyncio.to_thread(publish, broker, messages, retain=retain)


def up(gateway: str, n: int) -> tuple[str, bytes]:
    return f"steward/v1/{gateway}/up", f"{gateway}:{n}".encode()


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def nothing_redelivered(broker: Mosquitto, client_id: str) -> list[bytes]:
    """What a new session with `client_id` receives in a short while (empty when all was acked)."""
    handler = Recorder()
    async with running(broker, handler, client_id):
        await asyncio.sleep(0.3)
    return handler.payloads


async def test_messages_reach_the_handler_in_order_per_publisher_and_are_acked(
    mosquitto: Mosquitto,
) -> None:
    handler = Recorder()
    async with running(mosquitto, handler) as consumer:
        messages = [up(gw, n) for n in range(40) for gw in ("gw-a", "gw-b")]
        await apublish(mosquitto, messages)
        await until(lambda: len(handler.payloads) == len(messages))
        await until(lambda: consumer.stats().acks == len(messages))
        stats = consumer.stats()
    for gw in ("gw-a", "gw-b"):
        seen = [p for p in handler.payloads if p.startswith(gw.encode())]
        assert seen == [f"{gw}:{n}".encode() for n in range(40)]
    assert all(m.topic.endswith("/up") and m.received_at.tzinfo for b in handler.batches for m in b)
    assert stats.messages_received == len(messages)
    assert stats.batches == len(handler.batches) < len(messages)  # group commit
    assert max(len(b) for b in handler.batches) <= 20
    assert stats.unacked == 0
    assert stats.lag_s == 0
    assert await nothing_redelivered(mosquitto, "ingest-1") == []


async def test_a_message_is_not_acked_before_the_handler_returns(mosquitto: Mosquitto) -> None:
    blocked = Recorder()
    blocked.gate = asyncio.Event()  # never opened: the consumer is stopped mid-batch
    async with running(mosquitto, blocked) as consumer:
        await apublish(mosquitto, [up("gw-a", 1)])
        await asyncio.wait_for(blocked.entered.wait(), 5)
        await asyncio.sleep(0.05)
        stats = consumer.stats()
        assert (stats.acks, stats.unacked) == (0, 1)
        assert stats.lag_s > 0
    assert blocked.batches == []

    handler = Recorder()
    async with running(mosquitto, handler) as consumer:
        await until(lambda: handler.payloads == [b"gw-a:1"])
        await until(lambda: consumer.stats().acks == 1)
    assert await nothing_redelivered(mosquitto, "ingest-1") == []


async def test_a_failing_handler_is_retried_and_intake_stays_bounded(mosquitto: Mosquitto) -> None:
    handler = Recorder()
    handler.fail_next = 10**9  # the database is down
    async with running(mosquitto, handler, receive_maximum=10, batch_max=5) as consumer:
        messages = [up("gw-a", n) for n in range(40)]
        await apublish(mosquitto, messages)
        await until(lambda: consumer.stats().handler_failures >= 3)
        await asyncio.sleep(0.2)
        stats = consumer.stats()
        assert stats.acks == 0
        assert stats.messages_received <= 10  # the broker holds the rest
        assert stats.unacked == stats.messages_received
        handler.fail_next = 0  # the database is back
        await until(lambda: consumer.stats().acks == len(messages))
    assert handler.payloads == [p for _, p in messages]
    assert consumer.stats().messages_received == len(messages)
    assert await nothing_redelivered(mosquitto, "ingest-1") == []


async def test_two_consumers_in_one_share_group_split_the_load(mosquitto: Mosquitto) -> None:
    first, second = Recorder(), Recorder()
    async with (
        running(mosquitto, first, "ingest-1") as one,
        running(mosquitto, second, "ingest-2") as two,
    ):
        messages = [up(f"gw-{n % 4}", n) for n in range(100)]
        await apublish(mosquitto, messages)
        await until(lambda: len(first.payloads) + len(second.payloads) >= len(messages))
        await until(lambda: one.stats().acks + two.stats().acks == len(messages))
    assert first.payloads
    assert second.payloads
    assert sorted(first.payloads + second.payloads) == sorted(p for _, p in messages)


async def test_a_broker_restart_loses_nothing(mosquitto: Mosquitto) -> None:
    handler = Recorder()
    async with running(mosquitto, handler) as consumer:
        await apublish(mosquitto, [up("gw-a", n) for n in range(10)])
        await until(lambda: consumer.stats().acks == 10)

        handler.gate = asyncio.Event()
        handler.entered.clear()
        await apublish(mosquitto, [up("gw-a", 10)])
        await asyncio.wait_for(handler.entered.wait(), 5)
        await asyncio.to_thread(mosquitto.restart)  # while gw-a:10 is in the handler
        await until(lambda: not consumer.connected)
        handler.gate.set()  # it returns, but its connection is gone: no ack on the new one
        await until(lambda: consumer.stats().reconnects >= 1, within_s=10)
        await apublish(mosquitto, [up("gw-a", n) for n in range(11, 20)])
        await until(lambda: b"gw-a:19" in handler.payloads)
        await until(lambda: consumer.stats().unacked == 0)
        stats = consumer.stats()
    assert stats.abandoned >= 1
    # gw-a:10 came back after the reconnect and was handed on again, then acked.
    assert handler.payloads.count(b"gw-a:10") == 2
    assert sorted(set(handler.payloads)) == sorted(f"gw-a:{n}".encode() for n in range(20))
    assert await nothing_redelivered(mosquitto, "ingest-1") == []


async def test_status_messages_reach_the_handler_retained_and_live(mosquitto: Mosquitto) -> None:
    await apublish(mosquitto, [("steward/v1/gw-a/status", b'{"state": "online"}')], retain=True)
    handler = Recorder()
    async with running(mosquitto, handler) as consumer:
        await until(lambda: b'{"state": "online"}' in handler.payloads)
        await apublish(mosquitto, [("steward/v1/gw-b/status", b'{"state": "offline"}')])
        await until(lambda: b'{"state": "offline"}' in handler.payloads)
        await until(lambda: consumer.stats().unacked == 0)
    topics = [m.topic for b in handler.batches for m in b]
    assert topics == ["steward/v1/gw-a/status", "steward/v1/gw-b/status"]


async def test_status_is_not_shared_every_process_sees_it(mosquitto: Mosquitto) -> None:
    first, second = Recorder(), Recorder()
    async with running(mosquitto, first, "ingest-1"), running(mosquitto, second, "ingest-2"):
        await apublish(mosquitto, [("steward/v1/gw-a/status", b"online")])
        await until(lambda: first.payloads == [b"online"] and second.payloads == [b"online"])


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="batch_max") as excinfo:
        ConsumerSettings(receive_maximum=10, batch_max=11, share_group="a/b")
    assert "share_group" in str(excinfo.value)
    with pytest.raises(ValueError, match="broker URL"):
        ConsumerSettings.from_url("http://example")
    s = ConsumerSettings.from_url("mqtts://u%40x:p@broker.example", share_group="g")
    assert (s.host, s.port, s.username, s.password, s.tls) == (
        "broker.example",
        8883,
        "u@x",
        "p",
        True,
    )
    assert s.up_subscription == "$share/g/steward/v1/+/up"
