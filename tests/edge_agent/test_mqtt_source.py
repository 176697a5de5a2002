import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import aiomqtt
import pytest
from hostile_broker import HostileBroker

from core.clock import SystemClock
from core.metrics import Metric
from core.site import DeviceKind
from core.types import RawFrame
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import ChirpStackConfig, DeviceConfig, LocalMqttConfig, Zigbee2MqttConfig
from edge_agent.selfstats import PipelineStats
from edge_agent.sources.base import Backoff, SourceContext
from edge_agent.sources.mqtt import BROKER_DROPPED_TOPIC, MqttSource
from firmware_adapters.chirpstack import UpEventEncoder
from firmware_adapters.registry import CODECS
from firmware_adapters.zigbee2mqtt_exposes import encode_bridge_devices
from simulators.fixtures_services import MosquittoFactory
from simulators.services import Mosquitto

pytestmark = pytest.mark.integration

DEV_EUI = "24e124713d290785"
SMOKE_EXPOSES: list[Mapping[str, object]] = [
    {"type": "binary", "property": "smoke", "value_on": True, "value_off": False},
    {"type": "numeric", "property": "battery", "unit": "%"},
]


async def poll(predicate: Callable[[], bool]) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met within 10 s")


class Recorder:
    def __init__(self) -> None:
        self.frames: list[RawFrame] = []
        self.changed = asyncio.Event()

    async def submit(self, frame: RawFrame) -> None:
        self.frames.append(frame)
        self.changed.set()

    async def fault(self, device_id: str, faulty: bool) -> None:
        raise AssertionError((device_id, faulty))

    async def until(self, predicate: Callable[[], bool], limit: float = 10.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await self.changed.wait()


async def test_zigbee2mqtt_and_chirpstack_messages_become_bound_frames(
    mosquitto: Mosquitto,
) -> None:
    recorder = Recorder()
    stats = PipelineStats()
    bindings = BindingsHolder(
        Bindings.build(
            [
                DeviceConfig(
                    id="smoke-b2",
                    codec="zigbee2mqtt.generic.exposes",
                    kind=DeviceKind.SMOKE,
                    friendly_name="b2/kitchen",
                ),
                DeviceConfig(
                    id="bin-07",
                    codec="lorawan.milesight.em310_udl",
                    kind=DeviceKind.BIN,
                    dev_eui=DEV_EUI,
                ),
            ]
        )
    )
    broker = LocalMqttConfig(
        port=mosquitto.port, zigbee2mqtt=Zigbee2MqttConfig(), chirpstack=ChirpStackConfig()
    )
    source = MqttSource(
        name="local-mqtt",
        broker=broker,
        bindings=bindings,
        ctx=SourceContext(recorder.submit, recorder.fault, stats, SystemClock()),
        client_id="steward-test-sources",
        backoff=Backoff(first=0.05, maximum=0.3),
    )
    lora = UpEventEncoder(dev_eui=DEV_EUI)
    em310 = CODECS["lorawan.milesight.em310_udl"].encode({"distance_mm": 1200, "battery_pct": 90})
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="devices") as devices:
        bridge = encode_bridge_devices(
            [("b2/kitchen", "0x00158d0001", "HS1SA", "Heiman", SMOKE_EXPOSES)]
        )
        await devices.publish("zigbee2mqtt/bridge/devices", bridge, qos=1, retain=True)
        task = asyncio.create_task(source.run())
        await poll(lambda: source.connected)
        await devices.publish(
            "zigbee2mqtt/b2/kitchen", json.dumps({"smoke": True, "battery": 80}), qos=1
        )
        await devices.publish("zigbee2mqtt/b2/kitchen/set", json.dumps({"state": "ON"}), qos=1)
        await devices.publish("zigbee2mqtt/hall_motion", json.dumps({"occupancy": True}), qos=1)
        await devices.publish(
            "zigbee2mqtt/b2/kitchen/availability", json.dumps({"state": "offline"}), qos=1
        )
        await devices.publish(lora.topic, lora.encode(em310, 85, datetime.now(UTC)), qos=1)
        await devices.publish(lora.topic, b"{not json", qos=1)
        await devices.publish(
            "application/x/device/ffffffffffffffff/event/up",
            UpEventEncoder(dev_eui="ffffffffffffffff").encode(em310, 85, datetime.now(UTC)),
            qos=1,
        )
        await recorder.until(lambda: len(recorder.frames) >= 4)
        await asyncio.sleep(0.2)

        # The local broker restarts; the source reconnects on its own.
        mosquitto.restart()
        await poll(lambda: source.connections >= 2 and source.connected)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="devices2") as devices:
        await devices.publish("zigbee2mqtt/b2/kitchen", json.dumps({"smoke": False}), qos=1)
        await recorder.until(lambda: len(recorder.frames) >= 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    kitchen, hall, availability, lorawan, after = recorder.frames
    assert (kitchen.device_id, kitchen.meta["model"]) == ("smoke-b2", "HS1SA")
    decoded = CODECS[kitchen.codec_id].decode(kitchen)
    assert {(r.metric, r.value) for r in decoded.readings} >= {
        (Metric.SMOKE, True),
        (Metric.BATTERY_PCT, 80),
    }
    assert all(r.device_id == "smoke-b2" for r in decoded.readings)
    assert hall.device_id == "hall_motion"
    assert availability.meta["kind"] == "availability"
    assert [
        (r.metric, r.value) for r in CODECS[availability.codec_id].decode(availability).readings
    ] == [(Metric.ONLINE, False)]
    assert (lorawan.device_id, lorawan.codec_id, lorawan.meta["fport"]) == (
        "bin-07",
        "lorawan.milesight.em310_udl",
        "85",
    )
    distance = [
        r.value
        for r in CODECS[lorawan.codec_id].decode(lorawan).readings
        if r.metric is Metric.DISTANCE_MM
    ]
    assert distance == [1200]
    assert sum(stats.decode_errors.values()) == 1
    assert source.skipped["lorawan_unbound"] == 1
    assert stats.skipped[source.name, "lorawan_unbound"] == 1  # published with the self-statistics
    assert after.device_id == "smoke-b2"


async def test_topics_follow_new_bindings_and_a_new_device_index() -> None:
    recorder = Recorder()
    kitchen = DeviceConfig(
        id="smoke-b2",
        codec="zigbee2mqtt.generic.exposes",
        kind=DeviceKind.SMOKE,
        friendly_name="b2/kitchen",
    )
    bindings = BindingsHolder(Bindings.build([kitchen]))
    source = MqttSource(
        name="local-mqtt",
        broker=LocalMqttConfig(zigbee2mqtt=Zigbee2MqttConfig()),
        bindings=bindings,
        ctx=SourceContext(recorder.submit, recorder.fault, PipelineStats(), SystemClock()),
        client_id="unused",
    )
    state = json.dumps({"smoke": False}).encode()
    await source.handle("zigbee2mqtt/b2/kitchen", state)
    # A config push rebinds the friendly name to another device id.
    bindings.replace(Bindings.build([kitchen.model_copy(update={"id": "smoke-b2-new"})]))
    await source.handle("zigbee2mqtt/b2/kitchen", state)
    # Zigbee2MQTT publishes its device list: the model and exposes ride along from then on.
    bridge = encode_bridge_devices(
        [("b2/kitchen", "0x00158d0001", "HS1SA", "Heiman", SMOKE_EXPOSES)]
    )
    await source.handle("zigbee2mqtt/bridge/devices", bridge)
    await source.handle("zigbee2mqtt/b2/kitchen", state)
    await source.handle("zigbee2mqtt/b2/kitchen/set", state)  # a command, not a state
    await source.handle("zigbee2mqtt/b2/kitchen", b"")  # a cleared retained state
    assert [f.device_id for f in recorder.frames] == ["smoke-b2", "smoke-b2-new", "smoke-b2-new"]
    assert "model" not in recorder.frames[1].meta
    assert recorder.frames[2].meta["model"] == "HS1SA"


async def test_unreadable_topics_are_counted_while_connected() -> None:
    # A broker that sends a PUBLISH whose topic is not UTF-8, then a good state: the good one
    # comes through and the bad one is in the self-statistics at once, not only after a reconnect.
    bad = b"\x30\x05\x00\x02\xff\xfe1"
    good_state = b'{"smoke":false}'
    topic = b"zigbee2mqtt/b2/kitchen"
    good = bytes([0x30, 2 + len(topic) + len(good_state), 0, len(topic)]) + topic + good_state
    recorder = Recorder()
    stats = PipelineStats()
    async with HostileBroker(bad + good) as broker:
        source = MqttSource(
            name="local-mqtt",
            broker=LocalMqttConfig(port=broker.port, zigbee2mqtt=Zigbee2MqttConfig()),
            bindings=BindingsHolder(Bindings.build([])),
            ctx=SourceContext(recorder.submit, recorder.fault, stats, SystemClock()),
            client_id="skip-test",
        )
        task = asyncio.create_task(source.run())
        try:
            await recorder.until(lambda: any(f.device_id == "b2/kitchen" for f in recorder.frames))
            # The broker holds the connection open for 5 s: counted well before it closes.
            await recorder.until(lambda: stats.skipped["local-mqtt", "bad_topic"] == 1, limit=2)
            assert source.connections == 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert source.skipped == {"bad_topic": 1}


def source_on(broker: LocalMqttConfig, stats: PipelineStats, recorder: Recorder) -> MqttSource:
    return MqttSource(
        name="local-mqtt",
        broker=broker,
        bindings=BindingsHolder(Bindings.build([])),
        ctx=SourceContext(recorder.submit, recorder.fault, stats, SystemClock()),
        client_id=f"drops-{broker.broker_drops}",
    )


async def test_the_local_brokers_dropped_count_is_in_the_self_statistics(
    mosquitto_factory: MosquittoFactory,
) -> None:
    # A subscriber that went away with a persistent session: the broker queues 5 of its messages
    # and drops the other 15, as it drops QoS 0 messages for an agent that fell behind.
    broker = mosquitto_factory(["sys_interval 1", "max_queued_messages 5"])
    async with aiomqtt.Client(
        broker.host, broker.port, identifier="away", clean_session=False
    ) as c:
        await c.subscribe("z/#", qos=1)
    async with aiomqtt.Client(broker.host, broker.port) as publisher:
        for n in range(20):
            await publisher.publish("z/x", str(n), qos=1)
    recorder = Recorder()
    stats = PipelineStats()
    following = source_on(
        LocalMqttConfig(port=broker.port, zigbee2mqtt=Zigbee2MqttConfig()), stats, recorder
    )
    task = asyncio.create_task(following.run())
    try:
        await poll(lambda: stats.broker_dropped.get("local-mqtt") == 15)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    now = datetime(2026, 12, 2, tzinfo=UTC)
    dropped = [
        r for r in stats.readings("gw", now, None) if r.metric is Metric.LOCAL_BROKER_DROPPED_TOTAL
    ]
    assert [(r.value, r.codec_id) for r in dropped] == [(15.0, "edge_agent:local-mqtt")]
    assert not recorder.frames  # the count is not a device's frame

    # With `broker_drops: false` the source does not subscribe to it.
    quiet_stats = PipelineStats()
    quiet = source_on(
        LocalMqttConfig(port=broker.port, broker_drops=False, zigbee2mqtt=Zigbee2MqttConfig()),
        quiet_stats,
        recorder,
    )
    task = asyncio.create_task(quiet.run())
    try:
        await poll(lambda: quiet.connected)
        async with aiomqtt.Client(broker.host, broker.port) as publisher:
            await publisher.publish("zigbee2mqtt/b2/kitchen", b'{"smoke":false}')
        await recorder.until(lambda: len(recorder.frames) == 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert quiet_stats.broker_dropped == {}


async def test_a_rising_or_unreadable_broker_count_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = PipelineStats()
    source = source_on(LocalMqttConfig(zigbee2mqtt=Zigbee2MqttConfig()), stats, Recorder())
    await source.handle(BROKER_DROPPED_TOPIC, b"7")
    assert not caplog.records  # the first count is a starting point, not news
    await source.handle(BROKER_DROPPED_TOPIC, b"x")
    await source.handle(BROKER_DROPPED_TOPIC, b"-3")
    await source.handle(BROKER_DROPPED_TOPIC, b"9")
    assert stats.broker_dropped == {"local-mqtt": 9}
    assert source.skipped == {"bad_broker_count": 2}
    rise = "mqtt local-mqtt: the broker dropped 2 more messages"
    assert [r.getMessage() for r in caplog.records] == [
        f"{rise} (a subscriber, maybe this agent, is not keeping up)"
    ]
    await source.handle(BROKER_DROPPED_TOPIC, b"0")  # the broker restarted
    assert stats.broker_dropped == {"local-mqtt": 0}
    assert len(caplog.records) == 1
