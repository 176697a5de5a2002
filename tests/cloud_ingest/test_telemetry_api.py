"""`GET /api/v1/telemetry`: a device's series in SQL buckets, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from cloud_ingest.auth.service import add_user
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.config import load_settings
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON
from cloud_ingest.telemetry.query import MAX_BUCKETS, TARGET_POINTS, default_step_s
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import Envelope, Reading

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW.replace(minute=0, second=0) - timedelta(hours=2)
"""An hour's start, so 5-minute buckets start at T0."""

# (seconds after T0, temperature): buckets of 300 s hold [0, 60, 299.5], [300, 310], [900]
TEMPERATURES = [(0, 20.0), (60, 22.0), (299.5, 24.0), (300, 30.0), (310, 10.0), (900, -5.5)]
# (seconds after T0, smoke): the last of the first bucket is False, of the second True
SMOKE = [(0, True), (200, False), (600, False), (650, True)]
USERS = {
    "admin": ("admin", None, None),
    "op-a": ("operator", "A", None),
    "op-b": ("operator", "B", None),
    "tech-a-elsewhere": ("technician", "A", "d9"),
    "resident-a": ("resident", "A", None),
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def up(gateway: str, *items: Reading) -> Incoming:
    envelope = Envelope(
        gateway_id=gateway, batch_id=uuid4(), sent_at=NOW, readings=items, alarm_events=()
    )
    return Incoming(f"steward/v1/{gateway}/up", dumps(envelope), NOW)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


@dataclass
class World:
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    async def get(
        self, user: str, path: str = "/api/v1/telemetry", **params: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return await self.client.get(path, params=params, headers=headers)

    async def series(self, user: str = "op-a", **params: Any) -> dict[str, Any]:
        response = await self.get(user, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    app = create_app(
        load_settings(environ={}, flags={"database_url": db_url, "migrate_on_start": True})
    )
    async with serving(app) as client:
        engine = app.state.engine
        world = World(client)
        await add_gateway(engine, "gw-a", company="A", site="d1")
        await add_gateway(engine, "gw-b", company="B", site="d1")
        for name, (role, company, area) in USERS.items():
            world.tokens[name] = await add_user(engine, name, role=role, company=company, area=area)
        temps = [Reading("temp-a", Metric.TEMPERATURE_C, v, at(s)) for s, v in TEMPERATURES]
        smoke = [Reading("smoke-a", Metric.SMOKE, v, at(s)) for s, v in SMOKE]
        other = [Reading("temp-a", Metric.HUMIDITY_PCT, 50.0, at(0))]  # another metric
        outside = [
            Reading("temp-a", Metric.TEMPERATURE_C, 99.0, at(-1)),
            Reading("temp-a", Metric.TEMPERATURE_C, 99.0, at(1200)),
        ]
        ingest = app.state.ingest
        await ingest([up("gw-a", *temps[:3], *smoke), up("gw-a", *temps[3:], *other, *outside)])
        await ingest([up("gw-b", Reading("temp-b", Metric.TEMPERATURE_C, 1.0, at(0)))])
        yield world


WINDOW = {"from": at(0).isoformat(), "to": at(1200).isoformat()}


async def test_numeric_buckets_have_avg_min_max_count(world: World) -> None:
    body = await world.series(device="temp-a", metric="temperature_c", step="5m", **WINDOW)
    assert {k: body[k] for k in ("device", "metric", "unit", "step_s")} == {
        "device": "temp-a",
        "metric": "temperature_c",
        "unit": "°C",
        "step_s": 300,
    }
    assert datetime.fromisoformat(body["from"]) == at(0)
    assert datetime.fromisoformat(body["to"]) == at(1200)
    points = body["points"]
    assert [datetime.fromisoformat(p["t"]) for p in points] == [at(0), at(300), at(900)]
    assert all(p["t"].endswith("+00:00") for p in points)
    assert [(p["avg"], p["min"], p["max"], p["count"], p["last"]) for p in points] == [
        (22.0, 20.0, 24.0, 3, None),
        (20.0, 10.0, 30.0, 2, None),
        (-5.5, -5.5, -5.5, 1, None),
    ]


async def test_boolean_buckets_carry_the_last_value(world: World) -> None:
    body = await world.series(device="smoke-a", metric="smoke", step="10m", **WINDOW)
    assert body["unit"] == ""
    points = [(p["avg"], p["count"], p["last"]) for p in body["points"]]
    assert points == [(0.5, 2, False), (0.5, 2, True)]


async def test_a_window_not_on_a_bucket_boundary_starts_at_the_bucket_holding_from(
    world: World,
) -> None:
    body = await world.series(
        device="temp-a",
        metric="temperature_c",
        step="5m",
        **{"from": at(30).isoformat(), "to": at(400).isoformat()},
    )
    assert datetime.fromisoformat(body["from"]) == at(0)
    assert [(p["count"], p["min"]) for p in body["points"]] == [(3, 20.0), (2, 10.0)]


async def test_times_with_other_offsets_mean_the_same_instants(world: World) -> None:
    shanghai = timezone(timedelta(hours=8))
    body = await world.series(
        device="temp-a",
        metric="temperature_c",
        step="1h",
        **{
            "from": at(0).astimezone(shanghai).isoformat(),
            "to": at(1200).astimezone(shanghai).isoformat(),
        },
    )
    assert [p["count"] for p in body["points"]] == [6]


async def test_defaults_are_the_last_24_hours_in_about_500_points(world: World) -> None:
    body = await world.series(device="temp-a", metric="temperature_c")
    assert body["step_s"] == default_step_s(86400) == 300
    to = datetime.fromisoformat(body["to"])
    assert abs((to - datetime.now(UTC)).total_seconds()) < 60
    assert (to - datetime.fromisoformat(body["from"])) <= timedelta(hours=24, seconds=300)
    assert sum(p["count"] for p in body["points"]) == len(TEMPERATURES) + 2
    assert 86400 / body["step_s"] <= TARGET_POINTS


def test_the_default_step_keeps_any_window_near_500_points() -> None:
    for span in [1, 60, 3600, 86400, 7 * 86400, 365 * 86400, 10 * 365 * 86400]:
        step = default_step_s(span)
        assert span / step <= TARGET_POINTS, span


async def test_scoping_matches_the_device_endpoint(world: World) -> None:
    for user, device, status in [
        ("op-a", "temp-a", 200),
        ("admin", "temp-a", 200),
        ("admin", "temp-b", 200),
        ("op-b", "temp-a", 404),
        ("op-a", "temp-b", 404),
        ("tech-a-elsewhere", "temp-a", 404),
        ("op-a", "nothing", 404),
        ("resident-a", "temp-a", 403),
    ]:
        response = await world.get(user, device=device, metric="temperature_c", **WINDOW)
        assert response.status_code == status, (user, device, response.text)
        same = await world.get(user, f"/api/v1/devices/{device}")
        assert same.status_code == status, (user, device)
    body = await world.series("admin", device="temp-b", metric="temperature_c", **WINDOW)
    assert [p["avg"] for p in body["points"]] == [1.0]


@pytest.mark.parametrize(
    "params",
    [
        {"step": "5 fortnights"},
        {"step": "0s"},
        {"step": "1.5s"},
        {"step": "-5m"},
        {"from": "yesterday"},
        {"from": "2026-12-07T12:00:00"},  # no offset
        {"to": "2026-13-07T12:00:00+00:00"},
        {"from": at(100).isoformat(), "to": at(100).isoformat()},
        {"from": at(200).isoformat(), "to": at(100).isoformat()},
        {"metric": "not_a_metric"},
        {"step": "1s", "from": at(0).isoformat(), "to": at(MAX_BUCKETS + 1).isoformat()},
    ],
)
async def test_bad_parameters_are_a_400_problem(world: World, params: dict[str, str]) -> None:
    query = {"device": "temp-a", "metric": "temperature_c", **params}
    response = await world.get("op-a", **query)
    assert response.status_code == 400, (params, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["detail"]


async def test_exactly_the_bucket_limit_is_served(world: World) -> None:
    params = {"from": at(0).isoformat(), "to": at(MAX_BUCKETS).isoformat(), "step": "1s"}
    body = await world.series(device="temp-a", metric="temperature_c", **params)
    assert sum(p["count"] for p in body["points"]) == len(TEMPERATURES) + 1  # at(1200) too


async def test_missing_device_or_metric_is_a_problem_and_no_token_is_401(world: World) -> None:
    response = await world.get("op-a", metric="temperature_c")
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    response = await world.client.get(
        "/api/v1/telemetry", params={"device": "temp-a", "metric": "smoke"}
    )
    assert response.status_code == 401
