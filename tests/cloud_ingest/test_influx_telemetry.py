"""The Influx telemetry store: writes to a real VictoriaMetrics, reads back through the API.

VictoriaMetrics is the InfluxDB-API server installable here: the sink's writes and the PromQL
reader run against it for real. The Flux reader (InfluxDB 2) is tested on its query text and on
parsing an annotated-CSV answer served from a loopback HTTP server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiohttp import web
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest import migrations
from cloud_ingest.auth.service import add_user
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.config import SettingsError, load_settings
from cloud_ingest.infra.db import create_engine
from cloud_ingest.infra.schema import devices, ingested_batches, readings
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.service import IngestService, Settled
from cloud_ingest.main import create_app
from cloud_ingest.telemetry.influx import InfluxTelemetry, InfluxWriteError
from cloud_ingest.telemetry.query import Bucket, window
from cloud_ingest.telemetry.readers import FluxReader, flux_query
from core.envelope_json import dumps
from core.metrics import Metric, Quality
from core.types import Envelope, Reading
from simulators.services import VictoriaMetrics, free_port

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW.replace(minute=0, second=0) - timedelta(hours=2)
"""An hour's start, so 5- and 10-minute buckets start at T0."""
TEMPERATURES = [(0, 20.0), (60, 22.0), (299.5, 24.0), (300, 30.0), (310, 10.0), (900, -5.5)]
SMOKE = [(0, True), (200, False), (600, False), (650, True)]


NO_AUTH = "unchecked"
"""The token sent (VictoriaMetrics and the loopback server do not check it)."""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def up(gateway: str, *items: Reading) -> Incoming:
    envelope = Envelope(
        gateway_id=gateway, batch_id=uuid4(), sent_at=NOW, readings=items, alarm_events=()
    )
    return Incoming(f"steward/v1/{gateway}/up", dumps(envelope), NOW)


def unique(prefix: str) -> str:
    """A device id no other test writes (the VictoriaMetrics server is shared)."""
    return f"{prefix}-{uuid4().hex[:8]}"


def exported(vm: VictoriaMetrics, name: str, device: str) -> list[dict[str, Any]]:
    """The series of `name` for `device`, as `/api/v1/export` JSON lines."""
    text = vm.export(f'{{__name__="{name}",device="{device}"}}')
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/steward.db")
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def client(victoria_metrics: VictoriaMetrics) -> AsyncIterator[InfluxDBClientAsync]:
    async with InfluxDBClientAsync(victoria_metrics.url, token=NO_AUTH, org="steward") as client:
        yield client


def sink_of(client: InfluxDBClientAsync, **options: Any) -> InfluxTelemetry:
    return InfluxTelemetry(client, bucket="steward", org="steward", **options)


async def test_readings_become_points_tagged_with_the_device(
    engine: AsyncEngine, client: InfluxDBClientAsync, victoria_metrics: VictoriaMetrics
) -> None:
    await add_gateway(engine, "gw-x", company="A", site="d1")
    placed, fresh = unique("temp"), unique("smoke")
    async with engine.begin() as conn:
        await conn.execute(
            devices.insert().values(
                id=placed,
                gateway_id="gw-x",
                kind="thermo",
                location="d1/street 5,b=2",
                labels={},
                first_seen=NOW,
                last_seen=NOW,
            )
        )
    sink = sink_of(client)
    ingest = IngestService(engine, telemetry=sink)
    readings = [
        Reading(placed, Metric.TEMPERATURE_C, 21.25, at(0), codec_id="acme v2"),
        Reading(placed, Metric.TEMPERATURE_C, 99.0, at(0.123456), Quality.OUT_OF_RANGE),
        Reading(fresh, Metric.SMOKE, value=True, ts=at(1)),
        Reading(fresh, Metric.SMOKE, value=False, ts=at(2)),
    ]
    outcomes = await ingest.settle([up("gw-x", *readings)])
    assert [o.settled for o in outcomes] == [Settled.STORED]
    assert ingest.counters.readings == 4
    assert (sink.counters.points_written, sink.counters.write_requests) == (4, 1)

    temps = sorted(exported(victoria_metrics, "temperature_c_value", placed), key=str)
    assert [(s["metric"], s["values"], s["timestamps"]) for s in temps] == sorted(
        [
            (
                {
                    "__name__": "temperature_c_value",
                    "codec": "acme v2",
                    "device": placed,
                    "gateway": "gw-x",
                    "kind": "thermo",
                    "location": "d1/street 5,b=2",
                    "quality": "good",
                },
                [21.25],
                [int(at(0).timestamp() * 1000)],
            ),
            (
                {
                    "__name__": "temperature_c_value",
                    "device": placed,
                    "gateway": "gw-x",
                    "kind": "thermo",
                    "location": "d1/street 5,b=2",
                    "quality": "out_of_range",
                },
                [99.0],
                [int(at(0).timestamp() * 1000) + 123],
            ),
        ],
        key=str,
    )
    # A device registered by the service in the same transaction: no kind, no location yet.
    (smoke,) = exported(victoria_metrics, "smoke_value", fresh)
    assert smoke["metric"] == {
        "__name__": "smoke_value",
        "device": fresh,
        "gateway": "gw-x",
        "quality": "good",
    }
    assert smoke["values"] == [1, 0]


async def test_a_changed_location_is_written_once_the_cache_expires(
    engine: AsyncEngine, client: InfluxDBClientAsync, victoria_metrics: VictoriaMetrics
) -> None:
    device = unique("temp")
    clock = [0.0]
    ingest = IngestService(engine, telemetry=sink_of(client, clock=lambda: clock[0]))
    await ingest([up("gw-1", Reading(device, Metric.TEMPERATURE_C, 1.0, at(0)))])
    async with engine.begin() as conn:
        await conn.execute(devices.update().where(devices.c.id == device).values(location="d2"))
    await ingest([up("gw-1", Reading(device, Metric.TEMPERATURE_C, 2.0, at(1)))])  # cached
    clock[0] = 61.0
    await ingest([up("gw-1", Reading(device, Metric.TEMPERATURE_C, 3.0, at(2)))])
    series = exported(victoria_metrics, "temperature_c_value", device)
    assert sorted((s["metric"].get("location", ""), s["values"]) for s in series) == [
        ("", [1.0, 2.0]),
        ("d2", [3.0]),
    ]


async def test_a_redelivered_batch_is_stored_once(
    engine: AsyncEngine, client: InfluxDBClientAsync, victoria_metrics: VictoriaMetrics
) -> None:
    device = unique("temp")
    ingest = IngestService(engine, telemetry=sink_of(client))
    message = up(
        "gw-1", *(Reading(device, Metric.TEMPERATURE_C, v, at(s)) for s, v in TEMPERATURES)
    )
    assert [o.settled for o in await ingest.settle([message])] == [Settled.STORED]
    assert [o.settled for o in await ingest.settle([message])] == [Settled.DUPLICATE]
    (series,) = exported(victoria_metrics, "temperature_c_value", device)
    assert series["values"] == [v for _, v in TEMPERATURES]


class _WritesThenFails:
    """A sink that writes to Influx, then fails the batch (as a later step of it would)."""

    def __init__(self, sink: InfluxTelemetry) -> None:
        self.sink = sink

    async def write(self, conn: AsyncConnection, envelopes: Sequence[Envelope]) -> int:
        await self.sink.write(conn, envelopes)
        raise RuntimeError("the batch fails after the points were written")


async def test_points_rewritten_by_a_redelivery_after_a_rollback_overwrite_themselves(
    engine: AsyncEngine, victoria_metrics: VictoriaMetrics
) -> None:
    device = unique("temp")
    message = up(
        "gw-1", *(Reading(device, Metric.TEMPERATURE_C, v, at(s)) for s, v in TEMPERATURES)
    )
    async with InfluxDBClientAsync(victoria_metrics.url, token=NO_AUTH, org="o") as client:
        sink = sink_of(client)
        with pytest.raises(RuntimeError, match="after the points were written"):
            await IngestService(engine, telemetry=_WritesThenFails(sink)).settle([message])
        outcomes = await IngestService(engine, telemetry=sink).settle([message])
    assert [o.settled for o in outcomes] == [Settled.STORED]
    assert sink.counters.points_written == 2 * len(TEMPERATURES)
    (series,) = exported(victoria_metrics, "temperature_c_value", device)
    assert series["values"] == [v for _, v in TEMPERATURES]
    # The same envelope always gives the same points (measurement, tags, time).
    envelope = Envelope(
        "gw-1", uuid4(), NOW, (Reading(device, Metric.SMOKE, value=True, ts=at(0)),), ()
    )
    assert sink.lines([envelope], {}) == sink.lines([envelope], {})


async def test_a_store_that_does_not_answer_rolls_the_batch_back(
    engine: AsyncEngine, client: InfluxDBClientAsync, victoria_metrics: VictoriaMetrics
) -> None:
    device = unique("temp")
    message = up("gw-1", Reading(device, Metric.TEMPERATURE_C, 7.5, at(0)))
    async with InfluxDBClientAsync(f"http://127.0.0.1:{free_port()}", token=NO_AUTH) as down:
        sink = sink_of(down, attempts=3, backoff_s=0.01)
        ingest = IngestService(engine, telemetry=sink)
        with pytest.raises(InfluxWriteError, match="after 3 attempts"):
            await ingest.settle([message])
    assert (sink.counters.write_retries, sink.counters.write_failures) == (2, 1)
    assert sink.counters.points_written == 0
    assert ingest.counters.storage_failures == 1
    async with engine.connect() as conn:
        claimed = await conn.scalar(select(func.count()).select_from(ingested_batches))
    assert claimed == 0
    # The redelivery, with the store back, stores the batch.
    assert [
        o.settled for o in await IngestService(engine, telemetry=sink_of(client)).settle([message])
    ] == [Settled.STORED]
    (series,) = exported(victoria_metrics, "temperature_c_value", device)
    assert series["values"] == [7.5]


async def test_a_refused_write_is_not_retried(
    engine: AsyncEngine, victoria_metrics: VictoriaMetrics
) -> None:
    """VictoriaMetrics answers 4xx to a write to a path it does not serve: no retry."""
    async with InfluxDBClientAsync(victoria_metrics.url + "/nowhere", token=NO_AUTH) as client:
        sink = sink_of(client, attempts=3, backoff_s=0.01)
        with pytest.raises(InfluxWriteError, match="refused"):
            await IngestService(engine, telemetry=sink).settle(
                [up("gw-1", Reading(unique("t"), Metric.TEMPERATURE_C, 1.0, at(0)))]
            )
    assert (sink.counters.write_retries, sink.counters.write_failures) == (0, 1)


# --- GET /api/v1/telemetry ------------------------------------------------------------------


@asynccontextmanager
async def serving(
    flags: dict[str, Any],
) -> AsyncIterator[tuple[httpx.AsyncClient, str, IngestService]]:
    """The app of `flags`, with gateway `gw-a`, an admin token and the app's ingest."""
    app = create_app(load_settings(environ={}, flags={"migrate_on_start": True, **flags}))
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
            engine = app.state.engine
            await add_gateway(engine, "gw-a", company="A", site="d1")
            token = await add_user(engine, "admin", role="admin", company=None)
            yield http, token, app.state.ingest


QUERIES = [
    {"step": "5m", "from": at(0).isoformat(), "to": at(1200).isoformat()},
    {"step": "10m", "from": at(0).isoformat(), "to": at(1200).isoformat()},
    {"step": "1m", "from": at(30).isoformat(), "to": at(650.5).isoformat()},  # `to` mid-bucket
    {"step": "1m", "from": at(30).isoformat(), "to": at(630.5).isoformat()},  # 650 left out
    {"step": "1h", "from": at(-3600).isoformat(), "to": at(7200).isoformat()},
    {},  # the last 24 h, default step, the last bucket cut short by now
]


async def series_of(
    flags: dict[str, Any], temp: str, smoke: str, vm: VictoriaMetrics | None = None
) -> list[Any]:
    """Every query of `QUERIES` for both devices, after ingesting the same readings."""
    async with serving(flags) as (http, token, ingest):
        temps = [Reading(temp, Metric.TEMPERATURE_C, v, at(s)) for s, v in TEMPERATURES]
        smokes = [Reading(smoke, Metric.SMOKE, v, at(s)) for s, v in SMOKE]
        outside = [Reading(temp, Metric.TEMPERATURE_C, 99.0, at(-1))]
        await ingest([up("gw-a", *temps[:3], *smokes), up("gw-a", *temps[3:], *outside)])
        if vm is not None:
            vm.flush()
        answers = []
        for device, metric in ((temp, "temperature_c"), (smoke, "smoke")):
            for query in QUERIES:
                response = await http.get(
                    "/api/v1/telemetry",
                    params={"device": device, "metric": metric, **query},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 200, response.text
                answers.append(response.json()["points"])
        if vm is not None:
            async with ingest_engine(ingest).connect() as conn:
                # The buckets came from VictoriaMetrics: the SQL table holds nothing.
                assert await conn.scalar(select(func.count()).select_from(readings)) == 0
            ready = await http.get("/readyz")
            assert ready.json()["checks"]["influx"] == "ok"
            metrics = (await http.get("/metrics")).text
            written = len(temps) + len(smokes) + len(outside)
            assert f"steward_ingest_influx_points_written_total {written:.1f}" in metrics
        return answers


def ingest_engine(ingest: IngestService) -> AsyncEngine:
    engine: AsyncEngine = ingest._engine
    return engine


async def test_the_api_serves_the_same_buckets_from_victoria_metrics_as_from_sql(
    tmp_path: Path, victoria_metrics: VictoriaMetrics
) -> None:
    temp, smoke = unique("temp-a"), unique("smoke-a")
    sql = await series_of({"database_url": f"sqlite+aiosqlite:///{tmp_path}/sql.db"}, temp, smoke)
    influx_flags = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/influx.db",
        "telemetry_store": "influx",
        "influx_url": victoria_metrics.url,
        "influx_bucket": "steward",
        "influx_query": "promql",
    }
    influx = await series_of(influx_flags, temp, smoke, victoria_metrics)
    assert influx == sql
    assert [(p["avg"], p["min"], p["max"], p["count"]) for p in sql[0]] == [
        (22.0, 20.0, 24.0, 3),
        (20.0, 10.0, 30.0, 2),
        (-5.5, -5.5, -5.5, 1),
    ]
    assert [(p["avg"], p["count"], p["last"]) for p in sql[len(QUERIES) + 1]] == [
        (0.5, 2, False),
        (0.5, 2, True),
    ]


async def test_readiness_fails_while_the_influx_store_does_not_answer(tmp_path: Path) -> None:
    flags = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/steward.db",
        "telemetry_store": "influx",
        "influx_url": f"http://127.0.0.1:{free_port()}",
        "influx_bucket": "steward",
        "influx_query": "promql",
    }
    async with serving(flags) as (http, token, ingest):
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["influx"].startswith("failed: ")
        assert ready.json()["checks"]["database"] == "ok"
        response = await http.get(
            "/api/v1/telemetry",
            params={"device": "nowhere", "metric": "smoke"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 404  # the device scope is checked in SQL first
        await add_device(ingest_engine(ingest), "d-1")
        response = await http.get(
            "/api/v1/telemetry",
            params={"device": "d-1", "metric": "smoke"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 503
        assert "did not answer" in response.json()["detail"]


async def add_device(engine: AsyncEngine, device: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            devices.insert().values(
                id=device, gateway_id="gw-a", labels={}, first_seen=NOW, last_seen=NOW
            )
        )


# --- Flux (InfluxDB 2): the query text, and a recorded answer from a loopback server -------


def test_the_flux_query_selects_the_device_and_yields_each_aggregate() -> None:
    span = window(at(0).isoformat(), at(1200).isoformat(), "5m", now=NOW)
    text = flux_query("steward", 'dev"ice${x}\\', Metric.TEMPERATURE_C, span)
    start = at(0).strftime("%Y-%m-%dT%H:%M:%SZ")
    stop = at(1200).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert text.splitlines() == [
        'data = from(bucket: "steward")',
        f"  |> range(start: {start}, stop: {stop})",
        (
            '  |> filter(fn: (r) => r._measurement == "temperature_c" and r._field == "value"'
            ' and r.device == "dev\\"ice\\${x}\\\\")'
        ),
        "  |> group()",
        '  |> sort(columns: ["_time"])',
        *(
            f'data |> aggregateWindow(every: 300s, fn: {fn}, timeSrc: "_start", createEmpty: false)'
            f' |> yield(name: "{fn}")'
            for fn in ("mean", "min", "max", "count", "last")
        ),
    ]


def _annotated_csv(result: str, kind: str, rows: list[tuple[datetime, str]]) -> str:
    """One result of a Flux answer, in InfluxDB's annotated CSV."""
    start, stop = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
    head = [
        "#group,false,false,true,true,false,false,false,false,false",
        (
            f"#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,{kind},"
            "string,string,string"
        ),
        f"#default,{result},,,,,,,,",
        ",result,table,_start,_stop,_time,_value,_field,_measurement,device",
    ]
    lines = [
        f",,0,{start},{stop},{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{v},value,smoke,smoke-a"
        for t, v in rows
    ]
    return "\r\n".join(head + lines) + "\r\n\r\n"


async def test_the_flux_reader_folds_an_annotated_csv_answer_into_buckets() -> None:
    b0, b1 = at(0), at(600)
    body = "".join(
        [
            _annotated_csv("mean", "double", [(b0, "0.5"), (b1, "0.5")]),
            _annotated_csv("min", "double", [(b0, "0"), (b1, "0")]),
            _annotated_csv("max", "double", [(b0, "1"), (b1, "1")]),
            _annotated_csv("count", "long", [(b0, "2"), (b1, "2")]),
            _annotated_csv("last", "double", [(b0, "0"), (b1, "1")]),
        ]
    )
    asked: list[dict[str, Any]] = []

    async def query(request: web.Request) -> web.Response:
        asked.append({"org": request.query.get("org"), **(await request.json())})
        return web.Response(text=body, content_type="text/csv")

    server = web.Application()
    server.router.add_post("/api/v2/query", query)
    runner = web.AppRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with InfluxDBClientAsync(
            f"http://127.0.0.1:{port}", token=NO_AUTH, org="acme"
        ) as client:
            span = window(at(0).isoformat(), at(1200).isoformat(), "10m", now=NOW)
            found = await FluxReader(client, bucket="steward", org="acme").buckets(
                "smoke-a", Metric.SMOKE, span
            )
    finally:
        await runner.cleanup()
    assert found == [
        Bucket(int(b0.timestamp()), 0.5, 0.0, 1.0, 2, 0.0),
        Bucket(int(b1.timestamp()), 0.5, 0.0, 1.0, 2, 1.0),
    ]
    assert len(asked) == 1
    assert asked[0]["org"] == "acme"
    assert asked[0]["query"] == flux_query("steward", "smoke-a", Metric.SMOKE, span)


# --- settings -----------------------------------------------------------------------------


def test_the_influx_store_needs_a_url_and_a_bucket() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"STEWARD_TELEMETRY_STORE": "influx"})
    assert err.value.problems == (
        "settings: telemetry_store 'influx' needs influx_url and influx_bucket",
    )
    with pytest.raises(SettingsError, match=r"needs influx_bucket$"):
        load_settings(
            environ={"STEWARD_TELEMETRY_STORE": "influx", "STEWARD_INFLUX_URL": "http://h:8086"}
        )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "STEWARD_TELEMETRY_STORE",
            "mongo",
            "STEWARD_TELEMETRY_STORE: Input should be 'sql' or 'influx'",
        ),
        ("STEWARD_INFLUX_QUERY", "sql", "STEWARD_INFLUX_QUERY: Input should be 'flux' or 'promql'"),
        ("STEWARD_INFLUX_URL", "ftp://h", "STEWARD_INFLUX_URL: not an http:// or https:// URL"),
        (
            "STEWARD_INFLUX_TOKEN_FILE",
            "/nonexistent/token",
            "STEWARD_INFLUX_TOKEN_FILE: no such file",
        ),
    ],
)
def test_a_bad_influx_setting_names_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(environ={variable: value})
    assert err.value.problems[0].startswith(message)


def test_the_token_comes_from_the_setting_or_a_file(tmp_path: Path) -> None:
    influx = {"telemetry_store": "influx", "influx_url": "http://h:8086/", "influx_bucket": "b"}
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    settings = load_settings(environ={}, flags={**influx, "influx_token_file": str(token_file)})
    assert (settings.influx_url, settings.influx_token_value()) == ("http://h:8086", "s3cret")
    settings = load_settings(environ={"STEWARD_INFLUX_TOKEN": "t0k"}, flags=influx)
    assert settings.influx_token_value() == "t0k"
    assert "t0k" not in repr(settings)
    with pytest.raises(SettingsError, match="not both"):
        load_settings(
            environ={"STEWARD_INFLUX_TOKEN": "t0k"},
            flags={**influx, "influx_token_file": str(token_file)},
        )
