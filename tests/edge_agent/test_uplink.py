"""The uplink against a real Mosquitto: delivery, outages, a frozen broker, status, config, drain."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import aiomqtt
import pytest

from core.envelope_json import loads
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity
from edge_agent.outbox.sqlite import SqliteOutbox
from edge_agent.uplink import Uplink, UplinkTopics
from edge_agent.uplink_settings import BackoffSettings, UplinkSettings
from simulators.services import Mosquitto

pytestmark = pytest.mark.integration

GW = "gw-test"
TOPICS = UplinkTopics.for_gateway(GW)
T0 = datetime(2026, 11, 22, tzinfo=UTC)
DEVICES = ("bin-1", "bin-2", "manhole-3")
REPO = Path(__file__).resolve().parents[2]


def readings(start: int, count: int) -> list[Reading]:
    """Readings numbered start..start+count, spread over DEVICES, several in the same millisecond."""
    return [
        Reading(DEVICES[n % 3], Metric.DISTANCE_MM, float(n), T0 + timedelta(milliseconds=n // 6))
        for n in range(start, start + count)
    ]


def alarm(seq: int) -> AlarmEvent:
    return AlarmEvent(
        f"site/smoke-1/smoke/{seq}",
        seq,
        AlarmState.FIRING,
        Severity.CRITICAL,
        T0,
        T0,
        "smoke",
        "smoke-1",
    )


def settings(broker: Mosquitto, **overrides: object) -> UplinkSettings:
    base: dict[str, object] = {
        "host": broker.host,
        "port": broker.port,
        "keepalive_s": 2,
        "batch_max": 200,
        "batch_wait_s": 0.05,
        "publish_timeout_s": 1.0,
        "connect_timeout_s": 1.0,
        "backoff": BackoffSettings(initial_s=0.05, max_s=0.5),
    }
    base.update(overrides)
    return UplinkSettings.model_validate(base)


class Collector:
    """A persistent-session QoS 1 subscriber that reconnects, like the cloud consumer."""

    def __init__(self, broker: Mosquitto, topic: str = f"steward/v1/{GW}/#") -> None:
        self.broker = broker
        self.topic = topic
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                client = aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier="collector",
                    clean_session=False,
                    timeout=1,
                )
                async with client:
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        self.messages.append((message.topic.value, payload, message.retain))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)

    def envelopes(self) -> list[Envelope]:
        return [loads(p) for t, p, _ in self.messages if t == TOPICS.up]

    def unique(self) -> list[Envelope]:
        """Envelopes de-duplicated by batch id (first arrival wins), as the cloud does."""
        seen: set[UUID] = set()
        out = []
        for env in self.envelopes():
            if env.batch_id not in seen:
                seen.add(env.batch_id)
                out.append(env)
        return out

    def readings(self) -> list[Reading]:
        return [r for env in self.unique() for r in env.readings]

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topic]


async def wait_until(cond: Callable[[], bool], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(coro: Awaitable[None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def assert_complete_in_device_order(got: list[Reading], total: int) -> None:
    for device in DEVICES:
        values = [r.value for r in got if r.device_id == device]
        expected = [float(n) for n in range(total) if DEVICES[n % 3] == device]
        assert values == expected, f"{device}: {len(values)} of {len(expected)} or out of order"


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[SqliteOutbox]:
    box = await SqliteOutbox.create(tmp_path / "outbox.db")
    yield box
    await box.close()


async def test_delivers_batches_and_commits_after_puback(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    collector = Collector(mosquitto)
    async with running(collector.run()):
        await collector.subscribed.wait()
        await outbox.put(readings(0, 500), [alarm(1)])
        uplink = Uplink(settings(mosquitto), outbox, gateway_id=GW)
        async with running(uplink.run()):
            await outbox.put(readings(500, 400), [alarm(2)])
            await wait_until(lambda: len(collector.readings()) == 900)
            await wait_until(lambda: uplink.counters.records_sent == 902)
    envelopes = collector.unique()
    assert all(env.gateway_id == GW for env in envelopes)
    assert max(len(env.readings) + len(env.alarm_events) for env in envelopes) <= 200
    # Alarms go first: the first batch carries the alarm queued before the uplink started.
    assert envelopes[0].alarm_events[0] == alarm(1)
    assert [e for env in envelopes for e in env.alarm_events] == [alarm(1), alarm(2)]
    assert_complete_in_device_order(collector.readings(), 900)
    assert collector.readings() == readings(0, 900)  # same-millisecond readings are all kept
    stats = await outbox.stats()
    assert (stats.depth, stats.in_flight) == (0, 0)
    assert uplink.counters.batches_sent == len(envelopes)
    status = json.loads(collector.on(TOPICS.status)[0])
    assert status["state"] == "online"
    assert status["gateway_id"] == GW
    assert status["version"]


@pytest.mark.parametrize("fault", ["outage", "restart"])
async def test_broker_outage_loses_nothing(
    mosquitto: Mosquitto, outbox: SqliteOutbox, fault: str
) -> None:
    collector = Collector(mosquitto)
    uplink = Uplink(settings(mosquitto), outbox, gateway_id=GW)
    async with running(collector.run()), running(uplink.run()):
        await collector.subscribed.wait()
        n = 0
        for step in range(30):
            await outbox.put(readings(n, 50), [alarm(step)] if step % 10 == 0 else [])
            n += 50
            if step == 10:
                await wait_until(lambda: uplink.counters.records_sent > 0)
                if fault == "outage":
                    mosquitto.stop()
                else:
                    mosquitto.restart()
            if step == 20 and fault == "outage":
                # Data kept arriving while the broker was down; none of it was committed.
                assert (await outbox.stats()).depth >= 500
                assert not uplink.counters.connected
                mosquitto.start()
            await asyncio.sleep(0.02)
        await wait_until(lambda: len(collector.readings()) >= n, within=30)
        await wait_until(lambda: uplink.counters.connected)
    assert uplink.counters.reconnects >= 1
    assert uplink.counters.connect_failures >= 1
    assert_complete_in_device_order(collector.readings(), n)
    assert len(collector.readings()) == n
    seqs = sorted({e.seq for env in collector.unique() for e in env.alarm_events})
    assert seqs == [0, 10, 20]
    assert (await outbox.stats()).depth == 0


async def test_silent_partition_commits_nothing_without_puback(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    collector = Collector(mosquitto)
    uplink = Uplink(settings(mosquitto), outbox, gateway_id=GW)
    async with running(collector.run()), running(uplink.run()):
        await collector.subscribed.wait()
        await outbox.put(readings(0, 300))
        await wait_until(lambda: len(collector.readings()) == 300)
        await wait_until(lambda: uplink.counters.records_sent == 300)  # the last PUBACK is handled
        mosquitto.pause()  # SIGSTOP: TCP stays open, no PUBACK, no PINGRESP
        try:
            sent_before = uplink.counters.records_sent
            await outbox.put(readings(300, 300), [alarm(1)])
            await asyncio.sleep(4.5)  # longer than the 2 s keepalive
            assert uplink.counters.records_sent == sent_before
            assert uplink.counters.publish_failures >= 1
            stats = await outbox.stats()
            assert stats.depth == 301
            assert stats.alarm_depth == 1
        finally:
            mosquitto.resume()
        await wait_until(lambda: len(collector.readings()) == 600, within=30)
    assert_complete_in_device_order(collector.readings(), 600)
    assert [e for env in collector.unique() for e in env.alarm_events] == [alarm(1)]
    assert (await outbox.stats()).depth == 0


async def test_drain_flushes_then_stops_with_offline_status(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    collector = Collector(mosquitto)
    uplink = Uplink(settings(mosquitto, batch_wait_s=5.0), outbox, gateway_id=GW)
    async with running(collector.run()):
        await collector.subscribed.wait()
        run = asyncio.create_task(uplink.run())
        await outbox.put(readings(0, 250))
        assert await uplink.drain(timeout=10)
        await asyncio.wait_for(run, 5)
        await wait_until(lambda: len(collector.on(TOPICS.status)) >= 2)
    assert len(collector.readings()) == 250
    assert json.loads(collector.on(TOPICS.status)[-1])["state"] == "offline"
    assert not uplink.counters.connected


async def test_drain_gives_up_when_the_broker_is_gone(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    mosquitto.stop()
    uplink = Uplink(settings(mosquitto), outbox, gateway_id=GW)
    run = asyncio.create_task(uplink.run())
    await outbox.put(readings(0, 10))
    assert not await uplink.drain(timeout=0.5)
    await asyncio.wait_for(run, 5)
    assert (await outbox.stats()).depth == 10


async def test_config_round_trip(mosquitto: Mosquitto, outbox: SqliteOutbox) -> None:
    seen: list[bytes] = []

    async def on_config(payload: bytes) -> Mapping[str, object]:
        seen.append(payload)
        doc = json.loads(payload)
        if "bad" in doc:
            raise ValueError("rule 'x': unknown metric")
        return {"accepted": True, "version": doc["version"]}

    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as admin:
        await admin.publish(TOPICS.config, b'{"version": 1}', qos=1, retain=True)
        collector = Collector(mosquitto, TOPICS.config_report)
        uplink = Uplink(settings(mosquitto), outbox, gateway_id=GW, on_config=on_config)
        async with running(collector.run()), running(uplink.run()):
            await collector.subscribed.wait()
            # The retained config is handed over on connect.
            await wait_until(lambda: len(collector.messages) == 1)
            await admin.publish(TOPICS.config, b'{"version": 2, "bad": 1}', qos=1, retain=True)
            await wait_until(lambda: len(collector.messages) == 2)
            await admin.publish(TOPICS.config, b'{"version": 3}', qos=1, retain=True)
            await wait_until(lambda: len(collector.messages) == 3)
            # The uplink kept running and publishing after the failed config.
            await outbox.put(readings(0, 5))
            await wait_until(lambda: uplink.counters.records_sent == 5)
    reports = [json.loads(p) for _, p, _ in collector.messages]
    assert reports[0]["accepted"] is True
    assert reports[0]["version"] == 1
    assert reports[1]["accepted"] is False
    assert "unknown metric" in reports[1]["errors"][0]
    assert reports[2] == {"accepted": True, "version": 3, "at": reports[2]["at"]}
    assert seen == [b'{"version": 1}', b'{"version": 2, "bad": 1}', b'{"version": 3}']
    assert uplink.counters.config_errors == 1


KILLED_AGENT = textwrap.dedent(
    """
    import asyncio, sys
    from edge_agent.outbox.memory import MemoryOutbox
    from edge_agent.uplink import Uplink
    from edge_agent.uplink_settings import UplinkSettings

    async def main(port):
        uplink = Uplink(UplinkSettings(host="127.0.0.1", port=port, keepalive_s=5), MemoryOutbox(), gateway_id=sys.argv[2])
        task = asyncio.create_task(uplink.run())
        while not uplink.counters.connected:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        print("connected", flush=True)
        await task

    asyncio.run(main(int(sys.argv[1])))
    """
)


def start_and_kill_agent(port: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_AGENT, str(port), GW],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "connected"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


async def test_retained_status_and_last_will_when_killed(mosquitto: Mosquitto) -> None:
    collector = Collector(mosquitto, TOPICS.status)
    async with running(collector.run()):
        await collector.subscribed.wait()
        await asyncio.to_thread(start_and_kill_agent, mosquitto.port)
        await wait_until(lambda: len(collector.messages) >= 2)
    docs = [json.loads(p) for _, p, _ in collector.messages]
    assert [d["state"] for d in docs[:2]] == ["online", "offline"]
    # The online status and the will of one connection carry the same session, so a reader
    # orders them by session, not by their `at` (the will's was written before connecting).
    assert docs[0]["session"] == docs[1]["session"]
    assert docs[1]["at"] <= docs[0]["at"]
    # A late subscriber sees the retained last will.
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as late:
        await late.subscribe(TOPICS.status, qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(late.messages))
    assert message.retain
    assert isinstance(message.payload, bytes)
    assert json.loads(message.payload)["state"] == "offline"


async def test_stop_does_not_wait_for_a_frozen_broker(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    mosquitto.pause()
    try:
        slow = settings(mosquitto, connect_timeout_s=30.0, publish_timeout_s=30.0)
        uplink = Uplink(slow, outbox, gateway_id=GW)
        run = asyncio.create_task(uplink.run())
        await outbox.put(readings(0, 10))
        assert not await uplink.drain(timeout=0.3)
        await asyncio.wait_for(run, 5)  # not the 30 s the connect and publish timeouts allow
        assert (await outbox.stats()).depth == 10
    finally:
        mosquitto.resume()


async def test_a_small_batch_waits_for_more_records_then_leaves_as_one_envelope(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    collector = Collector(mosquitto)
    uplink = Uplink(settings(mosquitto, batch_max=100, batch_wait_s=1.5), outbox, gateway_id=GW)
    async with running(collector.run()), running(uplink.run()):
        await collector.subscribed.wait()
        await wait_until(lambda: uplink.counters.connected)
        await outbox.put(readings(0, 10))
        await asyncio.sleep(0.5)  # well inside the batch's wait
        await outbox.put(readings(10, 10))
        await wait_until(lambda: len(collector.readings()) == 20)
    assert [len(e.readings) for e in collector.unique()] == [20]


async def test_a_full_batch_and_an_alarm_leave_without_waiting_for_the_batch_time(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    # With a minute of batch time, what arrives within `wait_until`'s 20 s was not held back by it.
    collector = Collector(mosquitto)
    uplink = Uplink(settings(mosquitto, batch_max=100, batch_wait_s=60), outbox, gateway_id=GW)
    async with running(collector.run()), running(uplink.run()):
        await collector.subscribed.wait()
        await wait_until(lambda: uplink.counters.connected)
        await outbox.put(readings(0, 100))
        await wait_until(lambda: len(collector.readings()) == 100)
        await outbox.put(readings(100, 3), [alarm(1)])
        await wait_until(lambda: len(collector.readings()) == 103)
    assert [len(e.readings) for e in collector.unique()] == [100, 3]
    assert collector.unique()[-1].alarm_events == (alarm(1),)


async def test_an_idle_uplink_notices_a_lost_broker_and_leaves_no_error_unread(
    mosquitto: Mosquitto, outbox: SqliteOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    gc.collect()  # what earlier tests left behind is not this test's business
    caplog.clear()
    uplink = Uplink(settings(mosquitto), outbox, gateway_id=GW)
    async with running(uplink.run()):
        await wait_until(lambda: uplink.counters.connected)
        mosquitto.stop()
        await wait_until(lambda: uplink.counters.connect_failures >= 1)
        assert not uplink.counters.connected  # noticed while idle, nothing to publish
        mosquitto.start()
        await wait_until(lambda: uplink.counters.reconnects >= 1)
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
