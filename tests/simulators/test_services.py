"""Each service fixture starts the real program and it really answers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import aiomqtt
import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from simulators.services import Mosquitto, Postgres, VictoriaMetrics

pytestmark = pytest.mark.integration


async def _round_trip(broker: Mosquitto, topic: str, payload: bytes) -> bytes:
    async with (
        aiomqtt.Client(broker.host, broker.port, identifier=f"sub-{uuid.uuid4()}") as sub,
        aiomqtt.Client(broker.host, broker.port) as pub,
    ):
        await sub.subscribe(topic, qos=1)
        await pub.publish(topic, payload, qos=1)
        async with asyncio.timeout(5):
            async for message in sub.messages:
                assert isinstance(message.payload, bytes)
                return message.payload
    raise AssertionError("no message")


async def test_mosquitto_publish_subscribe_round_trip(mosquitto: Mosquitto) -> None:
    assert await _round_trip(mosquitto, "steward/test", b"hello") == b"hello"


async def test_mosquitto_keeps_retained_messages_across_restart(mosquitto: Mosquitto) -> None:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as pub:
        await pub.publish("steward/retained", b"kept", qos=1, retain=True)
    mosquitto.restart()
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as sub:
        await sub.subscribe("steward/retained", qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(sub.messages))
    assert message.payload == b"kept"
    assert message.retain


async def test_mosquitto_pause_freezes_the_broker(mosquitto: Mosquitto) -> None:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=1) as pub:
        mosquitto.pause()
        try:
            with pytest.raises((TimeoutError, aiomqtt.MqttError)):
                async with asyncio.timeout(1):
                    await pub.publish("steward/frozen", b"x", qos=1)
        finally:
            mosquitto.resume()


async def test_postgres_sql_round_trip(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL)"))
            await conn.execute(text("INSERT INTO t (name) VALUES ('smoke-01'), ('bin-07')"))
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT name FROM t ORDER BY id"))).scalars().all()
            version = (await conn.execute(text("SHOW server_version"))).scalar_one()
    finally:
        await engine.dispose()
    assert rows == ["smoke-01", "bin-07"]
    assert str(version).split(".")[0].isdigit()


def test_postgres_databases_are_separate(postgres_server: Postgres, postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+asyncpg://")
    assert postgres_url.rsplit("/", 1)[1].startswith("test_")
    assert postgres_url != postgres_server.url()


def test_victoria_metrics_accepts_influxdb_v2_writes(victoria_metrics: VictoriaMetrics) -> None:
    now_ms = int(time.time() * 1000)
    device = f"bin-{uuid.uuid4().hex[:8]}"
    points = [
        f"reading,device={device} fill_pct={40.0 + i} {now_ms - 1000 * (10 - i)}" for i in range(10)
    ]
    # VictoriaMetrics ignores the token; influxdb-client requires one.
    with InfluxDBClient(url=victoria_metrics.url, token="t", org="steward") as client:  # noqa: S106
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="telemetry", record=points, write_precision=WritePrecision.MS
        )
    lines = victoria_metrics.export(f'reading_fill_pct{{device="{device}"}}').splitlines()
    assert len(lines) == 1
    series = json.loads(lines[0])
    assert series["values"] == [40.0 + i for i in range(10)]
    assert series["timestamps"][-1] == now_ms - 1000
    assert datetime.fromtimestamp(series["timestamps"][0] / 1000, UTC).year >= 2026
