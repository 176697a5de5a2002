"""Device forecasts: a bin's time to full and a battery's days left, as data (synthetic series
with noise, outliers, emptying, replacement and gaps), and `GET /api/v1/devices/{id}/forecast`
over the telemetry reader on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from cloud_ingest.auth.service import add_user
from cloud_ingest.clock import ManualClock
from cloud_ingest.forecast.model import (
    MAX_FIT_POINTS,
    Confidence,
    Forecast,
    Sample,
    Status,
    after_last_reset,
    battery_days_left,
    theil_sen,
    thinned,
    time_to_full,
)
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.schema import devices, readings
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON
from core.metrics import Metric

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
HOUR = 3600.0
DAY = 86400.0


def series(
    start: timedelta,
    every: timedelta,
    value: Callable[[float], float],
    *,
    noise: float = 0.0,
    seed: int = 7,
    end: timedelta = timedelta(0),
) -> list[Sample]:
    """Samples from `now - start` to `now - end` every `every`; `value(hours since start)`."""
    rng = random.Random(seed)  # noqa: S311 - seeded noise, not a secret
    out = []
    t = (NOW - start).timestamp()
    last = (NOW - end).timestamp()
    while t <= last:
        hours = (t - (NOW - start).timestamp()) / HOUR
        out.append(Sample(t, value(hours) + rng.gauss(0, noise)))
        t += every.total_seconds()
    return out


def approx(forecast: Forecast, hours: float, rel: float) -> bool:
    assert forecast.hours_left is not None, forecast
    return math.isclose(forecast.hours_left, hours, rel_tol=rel)


# --- the fit ------------------------------------------------------------------------------------


def test_theil_sen_ignores_a_third_of_wild_samples() -> None:
    rng = random.Random(1)  # noqa: S311 - seeded noise, not a secret
    samples = [Sample(t, 2.0 * t + 5 + rng.gauss(0, 0.1)) for t in range(30)]
    wild = [Sample(s.t, 500.0) if i % 3 == 0 else s for i, s in enumerate(samples)]
    fit = theil_sen(wild)
    assert fit is not None
    assert fit.slope == pytest.approx(2.0, abs=0.05)
    assert fit.at(10) == pytest.approx(25.0, abs=0.5)
    assert theil_sen([Sample(1, 1), Sample(1, 2)]) is None


def test_thinning_keeps_the_ends_and_resets_keep_what_follows() -> None:
    samples = [Sample(t, t) for t in range(1000)]
    kept = thinned(samples)
    assert (len(kept), kept[0], kept[-1]) == (MAX_FIT_POINTS, samples[0], samples[-1])
    values = [10, 40, 70, 95, 5, 30, 60]
    bin_ = [Sample(t, v) for t, v in enumerate(values)]
    assert [s.value for s in after_last_reset(bin_, 20, rising=True)] == [5, 30, 60]
    battery = [Sample(t, v) for t, v in enumerate([40, 30, 20, 95, 94, 93])]
    assert [s.value for s in after_last_reset(battery, 20, rising=False)] == [95, 94, 93]


# --- a bin's time to full -----------------------------------------------------------------------


def test_a_filling_bin_is_full_when_its_trend_reaches_100() -> None:
    # emptied 6 h ago (90 % -> 5 %), since then +5 %/h with noise: 35 % now, full in 13 h
    before = series(timedelta(hours=12), timedelta(minutes=10), lambda h: 60 + 5 * h, noise=1.0)
    before = [s for s in before if s.t < (NOW - timedelta(hours=6)).timestamp()]
    after = series(timedelta(hours=6), timedelta(minutes=10), lambda h: 5 + 5 * h, noise=1.0)
    forecast = time_to_full(before + after, NOW)
    assert forecast.status is Status.OK
    assert approx(forecast, 13.0, rel=0.08)
    assert forecast.eta is not None
    assert forecast.eta == NOW + timedelta(hours=forecast.hours_left or 0)
    assert forecast.level == pytest.approx(35, abs=2)
    assert forecast.slope_per_hour == pytest.approx(5, rel=0.08)
    assert forecast.samples_used == len(after)  # nothing from before the emptying
    assert forecast.since == datetime.fromtimestamp(after[0].t, UTC)
    assert forecast.confidence is Confidence.HIGH
    assert "37 samples over 6.0 h" in forecast.note


def test_bags_thrown_in_front_of_the_sensor_do_not_move_the_forecast() -> None:
    clean = series(timedelta(hours=8), timedelta(minutes=15), lambda h: 10 + 4 * h, noise=0.5)
    spiky = [Sample(s.t, 98.0) if i % 4 == 1 else s for i, s in enumerate(clean)]
    forecast = time_to_full(spiky, NOW)
    assert forecast.status is Status.OK
    assert approx(forecast, (100 - 42) / 4, rel=0.1)
    assert forecast.samples_used == len(clean)  # a bag and its return are not an emptying


def test_a_gap_in_the_samples_is_bridged_and_a_stale_bin_is_trusted_less() -> None:
    rise: Callable[[float], float] = lambda h: 20 + 3 * h  # noqa: E731
    gappy = [
        s
        for s in series(timedelta(hours=10), timedelta(minutes=10), rise, noise=0.5)
        if not (NOW - timedelta(hours=7)).timestamp() < s.t < (NOW - timedelta(hours=3)).timestamp()
    ]
    forecast = time_to_full(gappy, NOW)
    assert forecast.status is Status.OK
    assert approx(forecast, (100 - 50) / 3, rel=0.08)
    stale = series(timedelta(hours=10), timedelta(minutes=10), rise, end=timedelta(hours=5))
    old = time_to_full(stale, NOW)
    assert old.status is Status.OK
    assert approx(old, (100 - 50) / 3, rel=0.05)  # extrapolated to now
    assert old.confidence is Confidence.LOW
    assert "last sample is 5.0 h old" in old.note


@pytest.mark.parametrize(
    ("samples", "status"),
    [
        (
            series(timedelta(hours=8), timedelta(minutes=10), lambda _: 40.0, noise=1.0),
            "not_rising",
        ),
        (series(timedelta(hours=8), timedelta(minutes=10), lambda h: 80 - 2 * h), "not_rising"),
        (series(timedelta(hours=8), timedelta(minutes=10), lambda _: 100.0), "reached"),
        (
            series(timedelta(minutes=20), timedelta(minutes=5), lambda h: 10 + 9 * h),
            "too_few_samples",
        ),
        ([], "too_few_samples"),
    ],
)
def test_a_bin_that_is_not_filling_has_no_time_to_full(samples: list[Sample], status: str) -> None:
    forecast = time_to_full(samples, NOW)
    assert forecast.status == status
    if status == "reached":
        assert (forecast.hours_left, forecast.eta) == (0.0, NOW)
    else:
        assert (forecast.eta, forecast.hours_left, forecast.confidence) == (None, None, "none")


def test_a_bin_emptied_a_moment_ago_waits_for_new_samples() -> None:
    full = series(timedelta(hours=6), timedelta(minutes=10), lambda h: 40 + 9 * h)
    emptied = [*full[:-2], Sample(full[-2].t, 3.0), Sample(full[-1].t, 3.5)]
    forecast = time_to_full(emptied, NOW)
    assert forecast.status is Status.TOO_FEW_SAMPLES
    assert forecast.samples_used == 2
    assert "since the last reset" in forecast.note


def test_samples_outside_the_window_or_not_numbers_are_ignored() -> None:
    good = series(timedelta(hours=6), timedelta(minutes=10), lambda h: 10 + 5 * h)
    older = series(timedelta(hours=30), timedelta(hours=1), lambda _: 99.0, end=timedelta(hours=13))
    future = [Sample(NOW.timestamp() + 600 * n, 1.0) for n in range(1, 10)]
    nan = [Sample(good[3].t + 1, math.nan)]
    assert time_to_full(older + good + future + nan, NOW) == time_to_full(good, NOW)


# --- a battery's days left ----------------------------------------------------------------------


def test_a_draining_battery_lasts_until_10_percent_after_its_replacement() -> None:
    # a swap 20 days ago (from 12 % to 95 %), since then -0.5 %/day: 85 % now, 150 days left
    old = series(timedelta(days=30), timedelta(hours=6), lambda h: 17 - 0.5 * h / 24, noise=0.3)
    old = [s for s in old if s.t < (NOW - timedelta(days=20)).timestamp()]
    new = series(timedelta(days=20), timedelta(hours=6), lambda h: 95 - 0.5 * h / 24, noise=0.3)
    new[40] = Sample(new[40].t, 100.0)  # one wild reading is not a replacement
    forecast = battery_days_left(old + new, NOW)
    assert (forecast.status, forecast.metric, forecast.target) == ("ok", "battery_pct", 10.0)
    assert forecast.days_left == pytest.approx(150, rel=0.1)
    assert forecast.samples_used == len(new)
    assert forecast.confidence in {Confidence.HIGH, Confidence.MEDIUM}
    assert "/day" in forecast.note


def test_a_battery_in_volts_with_radio_dips_lasts_until_3_1_volts() -> None:
    volts = series(
        timedelta(days=30), timedelta(hours=2), lambda h: 3.5 - 0.01 * h / 24, noise=0.005
    )
    dipped = [Sample(s.t, s.value - 0.25) if i % 5 == 0 else s for i, s in enumerate(volts)]
    forecast = battery_days_left(dipped, NOW, metric=Metric.BATTERY_V)
    assert (forecast.status, forecast.target) == ("ok", 3.1)
    assert forecast.days_left == pytest.approx((3.2 - 3.1) / 0.01, rel=0.15)


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (lambda _: 80.0, "not_falling"),  # flat
        (lambda h: 40 + 0.2 * h, "not_falling"),  # charged by its solar panel
        (lambda h: 30 - 0.5 * h, "reached"),  # spent a day ago
    ],
)
def test_a_battery_that_is_not_draining_has_no_days_left(
    value: Callable[[float], float], status: str
) -> None:
    forecast = battery_days_left(series(timedelta(days=10), timedelta(hours=6), value), NOW)
    assert forecast.status == status
    assert forecast.days_left == (0.0 if status == "reached" else None)


def test_a_battery_needs_days_of_samples() -> None:
    short = series(timedelta(days=2), timedelta(hours=1), lambda h: 90 - 0.1 * h)
    forecast = battery_days_left(short, NOW)
    assert forecast.status is Status.TOO_FEW_SAMPLES
    assert "over 3.0 d are needed" in forecast.note
    with pytest.raises(ValueError, match="not a battery metric"):
        battery_days_left(short, NOW, metric=Metric.FILL_PCT)


# --- the API ------------------------------------------------------------------------------------

API = "/api/v1"


@pytest.fixture
async def client(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    flags = {
        "database_url": db_url,
        "migrate_on_start": True,
        "alarm_sweep_interval_s": 0,
        "sla_breach_interval_s": 0,
        "notify_worker": False,
        "photo_dir": tmp_path / "photos",
    }
    app = create_app(load_settings(environ={}, flags=flags))
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        app.state.clock = ManualClock(NOW)
        engine = app.state.engine
        await add_gateway(engine, "gw-a", company="A", site="d1/s1")
        await add_gateway(engine, "gw-b", company="B", site="d1/s1")
        rows = [
            ("bin-1", "gw-a", "bin"),
            ("smoke-1", "gw-a", "smoke"),
            ("ldds-1", "gw-a", "level"),
            ("bin-b", "gw-b", "bin"),
        ]
        async with engine.begin() as conn:
            await conn.execute(
                insert(devices),
                [
                    {
                        "id": device,
                        "gateway_id": gateway,
                        "kind": kind,
                        "location": "d1/s1/c1/g1",
                        "labels": {},
                        "first_seen": NOW - timedelta(days=40),
                        "last_seen": NOW,
                    }
                    for device, gateway, kind in rows
                ],
            )
            bin_fill = series(
                timedelta(hours=5), timedelta(minutes=3), lambda h: 20 + 6 * h, noise=1
            )
            battery = series(timedelta(days=25), timedelta(hours=1), lambda h: 70 - 0.4 * h / 24)
            volts = series(timedelta(days=25), timedelta(hours=1), lambda h: 3.45 - 0.01 * h / 24)
            await conn.execute(
                insert(readings),
                [
                    *_readings("bin-1", Metric.FILL_PCT, bin_fill),
                    *_readings("bin-1", Metric.BATTERY_PCT, battery),
                    *_readings("ldds-1", Metric.BATTERY_V, volts),
                    *_readings("smoke-1", Metric.TEMPERATURE_C, bin_fill),
                    *_readings("bin-b", Metric.FILL_PCT, bin_fill),
                ],
            )
        tokens = {
            name: await add_user(engine, name, role=role, company=company)
            for name, role, company in [
                ("op-a", "operator", "A"),
                ("op-b", "operator", "B"),
                ("resident-a", "resident", "A"),
            ]
        }
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://forecast") as http:
            yield http, tokens


def _readings(device: str, metric: Metric, samples: list[Sample]) -> list[dict[str, Any]]:
    return [
        {
            "gateway_id": "gw-a",
            "device_id": device,
            "metric": metric.value,
            "ts": datetime.fromtimestamp(s.t, UTC),
            "value": s.value,
            "quality": "good",
            "codec": "test",
        }
        for s in samples
    ]


async def test_the_forecast_of_a_device_from_its_stored_samples(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    headers = {"Authorization": f"Bearer {tokens['op-a']}"}
    body = (await http.get(f"{API}/devices/bin-1/forecast", headers=headers)).json()
    assert (body["device"], datetime.fromisoformat(body["at"])) == ("bin-1", NOW)
    fill = body["fill"]
    assert (fill["metric"], fill["unit"], fill["status"], fill["target"]) == (
        "fill_pct",
        "%",
        "ok",
        100.0,
    )
    assert fill["hours_left"] == pytest.approx((100 - 50) / 6, rel=0.1)
    assert fill["samples_used"] >= 25  # 10-minute buckets over 5 h
    assert fill["confidence"] in {"high", "medium"}
    battery = body["battery"]
    assert (battery["metric"], battery["status"]) == ("battery_pct", "ok")
    assert battery["days_left"] == pytest.approx((60 - 10) / 0.4, rel=0.1)  # 60 % now
    eta = datetime.fromisoformat(battery["eta"])
    assert eta == NOW + timedelta(days=battery["days_left"])

    volts = (await http.get(f"{API}/devices/ldds-1/forecast", headers=headers)).json()
    assert volts["fill"] is None
    assert (volts["battery"]["metric"], volts["battery"]["unit"]) == ("battery_v", "V")
    assert volts["battery"]["days_left"] == pytest.approx((3.2 - 3.1) / 0.01, rel=0.1)

    smoke = (await http.get(f"{API}/devices/smoke-1/forecast", headers=headers)).json()
    assert (smoke["fill"], smoke["battery"]) == (None, None)


async def test_a_device_outside_the_scope_has_no_forecast(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    for user, device, status in [
        ("op-b", "bin-1", 404),
        ("op-a", "bin-b", 404),
        ("op-a", "no-such", 404),
        ("resident-a", "bin-1", 403),
    ]:
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        response = await http.get(f"{API}/devices/{device}/forecast", headers=headers)
        assert response.status_code == status, (user, device, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
    assert (await http.get(f"{API}/devices/bin-1/forecast")).status_code == 401
