"""Outbox and uplink throughput, each against a baseline measured in the same run.

- put: readings/s stored by `SqliteOutbox.put` (batches of 200, WAL, synchronous=FULL) against a raw
  `sqlite3` `executemany` of the same pre-encoded rows with the same pragmas (the ceiling for a
  durable insert on this disk).
- replay: N readings queued during an "outage" are drained through the uplink to a real Mosquitto
  and counted by a subscriber, against publishing the same envelopes (pre-serialized) straight to
  the broker with QoS 1 (the broker-only ceiling).

Run: `.venv/bin/python -m bench.outbox [seconds]` or `bench/outbox.py`; see bench/README.md.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from core.envelope_json import dumps, loads
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity
from edge_agent.outbox import OutboxLimits
from edge_agent.outbox.records import encode_reading
from edge_agent.outbox.sqlite import SqliteOutbox
from edge_agent.uplink import Uplink, UplinkTopics
from edge_agent.uplink_settings import UplinkSettings
from simulators.services import Mosquitto

GW = "gw-bench"
T0 = datetime(2026, 11, 22, tzinfo=UTC)
PUT_BATCH = 200
REPLAY_BATCH = 1000
UNBOUNDED = OutboxLimits(max_records=None, max_bytes=None)


def make_readings(start: int, count: int) -> list[Reading]:
    return [
        Reading(f"bin-{n % 50}", Metric.DISTANCE_MM, float(n), T0 + timedelta(milliseconds=n))
        for n in range(start, start + count)
    ]


async def bench_put(path: Path, seconds: float) -> float:
    outbox = await SqliteOutbox.create(path, UNBOUNDED)
    batch = make_readings(0, PUT_BATCH)
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await outbox.put(batch)
        done += PUT_BATCH
    rate = done / (time.perf_counter() - start)
    await outbox.close()
    return rate


def baseline_put(path: Path, seconds: float) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, kind INT, body TEXT, size INT)"
    )
    rows = [(1, text, len(text)) for text in map(encode_reading, make_readings(0, PUT_BATCH))]
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t (kind, body, size) VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
        done += PUT_BATCH
    rate = done / (time.perf_counter() - start)
    conn.close()
    return rate


class Counter:
    """Counts readings in envelopes arriving on the uplink topic (cheaply, without parsing)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.readings = 0
        self.target = 0
        self.ready = asyncio.Event()
        self.reached = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            await client.subscribe(UplinkTopics.for_gateway(GW).up, qos=1)
            self.ready.set()
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, bytes):
                    self.readings += payload.count(b'"metric":')
                if self.readings >= self.target:
                    self.reached.set()

    async def wait_for(self, total: int) -> None:
        self.target = total
        if self.readings < total:
            self.reached.clear()
            await self.reached.wait()


class LoopLag:
    """Largest lateness of a 1 ms timer on the event loop: how long the loop was blocked."""

    def __init__(self) -> None:
        self.max_s = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.max_s = max(self.max_s, loop.time() - before - 0.001)


async def bench_replay(broker: Mosquitto, path: Path, total: int, lag: LoopLag) -> float:
    outbox = await SqliteOutbox.create(path, UNBOUNDED)
    for first in range(0, total, 5000):
        await outbox.put(make_readings(first, min(5000, total - first)))
    counter = Counter(broker)
    listener = asyncio.create_task(counter.run())
    await counter.ready.wait()
    settings = UplinkSettings(
        host=broker.host,
        port=broker.port,
        batch_max=REPLAY_BATCH,
        batch_max_bytes=1024 * 1024,
        batch_wait_s=0,
    )
    uplink = Uplink(settings, outbox, gateway_id=GW)
    ticker = asyncio.create_task(lag.run())
    start = time.perf_counter()
    task = asyncio.create_task(uplink.run())
    await counter.wait_for(total)
    elapsed = time.perf_counter() - start
    ticker.cancel()
    await asyncio.gather(ticker, return_exceptions=True)
    assert await uplink.drain(30)
    await task
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    assert counter.readings == total, (counter.readings, total)
    assert (await outbox.stats()).depth == 0
    await outbox.close()
    return total / elapsed


async def baseline_publish(broker: Mosquitto, total: int, *, serialize: bool) -> float:
    """Publish envelopes of REPLAY_BATCH readings with QoS 1, awaiting each PUBACK.

    With `serialize`, each envelope is built and serialized at publish time (no outbox); without,
    the payloads are prepared beforehand (the broker-only ceiling).
    """
    batches = [tuple(make_readings(s, REPLAY_BATCH)) for s in range(0, total, REPLAY_BATCH)]
    prepared = [] if serialize else [dumps(Envelope(GW, uuid.uuid4(), T0, b)) for b in batches]
    counter = Counter(broker)
    listener = asyncio.create_task(counter.run())
    await counter.ready.wait()
    topic = UplinkTopics.for_gateway(GW).up
    start = time.perf_counter()
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for i, batch in enumerate(batches):
            payload = dumps(Envelope(GW, uuid.uuid4(), T0, batch)) if serialize else prepared[i]
            await client.publish(topic, payload, qos=1)
        await counter.wait_for(len(batches) * REPLAY_BATCH)
    rate = len(batches) * REPLAY_BATCH / (time.perf_counter() - start)
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    return rate


async def bench_alarm_latency(broker: Mosquitto, path: Path, seconds: float) -> list[float]:
    """Alarm latency (outbox put → subscriber receipt) with telemetry flowing at 1,000 readings/s."""
    outbox = await SqliteOutbox.create(path, UNBOUNDED)
    put_at: dict[int, float] = {}
    latencies: list[float] = []

    async def listen() -> None:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(UplinkTopics.for_gateway(GW).up, qos=1)
            ready.set()
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, bytes) and b'"alarm_events":[]' not in payload:
                    now = time.perf_counter()
                    latencies.extend(now - put_at[e.seq] for e in loads(payload).alarm_events)

    ready = asyncio.Event()
    listener = asyncio.create_task(listen())
    await ready.wait()
    uplink = Uplink(UplinkSettings(host=broker.host, port=broker.port), outbox, gateway_id=GW)
    task = asyncio.create_task(uplink.run())
    deadline = time.monotonic() + 10
    while not uplink.counters.connected:  # measure steady state, not the first connect
        if time.monotonic() > deadline:
            raise RuntimeError("uplink did not connect")
        await asyncio.sleep(0.01)
    n = seq = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < seconds:
        tick = loop.time()
        events = []
        if n % 20 == 0:  # 50 alarms/s among 1,000 readings/s
            seq += 1
            put_at[seq] = time.perf_counter()
            events.append(
                AlarmEvent(
                    f"site/d/r/{seq}", seq, AlarmState.FIRING, Severity.CRITICAL, T0, T0, "r", "d"
                )
            )
        await outbox.put(make_readings(n, 10), events)
        n += 10
        await asyncio.sleep(max(0.0, 0.01 - (loop.time() - tick)))
    assert await uplink.drain(10)
    await task
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    await outbox.close()
    assert len(latencies) >= seq, (len(latencies), seq)
    return sorted(latencies)


async def _run(seconds: float) -> dict[str, float]:
    total = max(10_000, min(200_000, int(10_000 * seconds)))
    with tempfile.TemporaryDirectory(prefix="steward-bench-") as tmp:
        d = Path(tmp)
        put_s = max(0.5, seconds / 4)
        result: dict[str, float] = {
            "put_readings_per_s": await bench_put(d / "put.db", put_s),
            "put_baseline_sqlite_executemany_per_s": baseline_put(d / "raw.db", put_s),
        }
        broker = Mosquitto().start()
        try:
            result["replay_baseline_broker_only_per_s"] = await baseline_publish(
                broker, total, serialize=False
            )
            result["replay_baseline_serialize_publish_per_s"] = await baseline_publish(
                broker, total, serialize=True
            )
            lag = LoopLag()
            result["replay_readings_per_s"] = await bench_replay(
                broker, d / "replay.db", total, lag
            )
            result["replay_max_loop_lag_ms"] = lag.max_s * 1000
            latencies = await bench_alarm_latency(broker, d / "alarms.db", max(2.0, seconds / 2))
            result["alarm_latency_p50_ms"] = latencies[len(latencies) // 2] * 1000
            result["alarm_latency_p99_ms"] = latencies[int(len(latencies) * 0.99)] * 1000
            result["alarm_latency_samples"] = float(len(latencies))
        finally:
            broker.close()
    result["replay_readings"] = float(total)
    result["put_ratio_to_baseline"] = (
        result["put_readings_per_s"] / result["put_baseline_sqlite_executemany_per_s"]
    )
    result["replay_ratio_to_broker_only"] = (
        result["replay_readings_per_s"] / result["replay_baseline_broker_only_per_s"]
    )
    result["replay_ratio_to_serialize_publish"] = (
        result["replay_readings_per_s"] / result["replay_baseline_serialize_publish_per_s"]
    )
    return result


def run(seconds: float = 5.0) -> dict[str, float]:
    """Run the outbox benchmarks for about `seconds` (plus setup) and return the figures."""
    return asyncio.run(_run(seconds))


if __name__ == "__main__":
    figures = run(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}, indent=2))
