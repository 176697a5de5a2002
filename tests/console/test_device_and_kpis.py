"""The device page and the KPI page in a real headless Chromium against a real server and broker.

A waste bin's readings go through the real ingest: the world's gateway publishes one envelope
with a day of fill levels (emptied six hours ago, rising since), a week of battery, temperature,
tilt and distance, and an alarm of the bin, which opens a work order. The device page draws the
bin's charts with points, says when it will be full and how many days its battery has left,
links the alarm's work order, and redraws for another range; the KPI page draws its charts from
the accepted order and its CSV link downloads `text/csv`. A resident is refused both pages and
both APIs; a technician reads the device but not the KPIs. Screenshots go to `SCREENSHOTS`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import uuid4

import httpx
import pytest
from console_browser import (
    COMPANY,
    GATEWAY,
    PASSWORD,
    SCREENSHOTS,
    Session,
    World,
    open_session,
    sign_in,
)
from ingest_server import Publisher, until
from playwright.sync_api import Browser, Page, expect

from cloud_ingest.auth.service import add_user
from cloud_ingest.auth.sessions import set_password
from cloud_ingest.infra.db import create_engine
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import (
    AlarmEvent,
    AlarmState,
    Envelope,
    Priority,
    Reading,
    Severity,
    WorkOrderHint,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

BIN: Final = "bin-7"
BIN_LOCATION: Final = "d1/s1/c1/g1/yard"
SILENT: Final = "door-3"
"""A device known from an alarm only: no readings to chart."""
DEVICE_SHOT: Final = SCREENSHOTS / "console-device.png"
KPI_SHOT: Final = SCREENSHOTS / "console-kpis.png"
WAIT_S: Final = 15.0
"""A hang guard only: every wait ends as soon as its condition holds."""


@dataclass(frozen=True)
class Bin:
    """The bin in the served world, and the work order its alarm opened."""

    order_id: int
    order_number: str


def _add_people(url: str) -> str:
    """A supervisor and a resident with console passwords; the token of an administrator."""

    async def run() -> str:
        engine = create_engine(url)
        try:
            await add_user(engine, "sup", role="supervisor", company=COMPANY)
            await add_user(engine, "res", role="resident", company=COMPANY, area="d1/s1/c1/g1/b1")
            for name in ("sup", "res"):
                await set_password(engine, name, PASSWORD)
            return await add_user(engine, "adm", role="admin", company=None)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
        return pool.submit(lambda: asyncio.run(run())).result()


def _bin_envelope(now: datetime) -> Envelope:
    """A day of fill levels (emptied 6 h ago), a week of battery and environment, one alarm."""
    readings: list[Reading] = []
    for n in range(144, -1, -1):  # every 10 min over 24 h
        ts = now - timedelta(minutes=10 * n)
        hours_ago = n / 6
        fill = 30 + 6 * (6 - hours_ago) if hours_ago <= 6 else 10 + 3.8 * (24 - hours_ago)
        readings.append(Reading(BIN, Metric.FILL_PCT, round(fill, 1), ts))
        readings.append(Reading(BIN, Metric.DISTANCE_MM, round(1200 - 10 * fill), ts))
    for n in range(28, -1, -1):  # every 6 h over 7 days
        ts = now - timedelta(hours=6 * n)
        readings.append(Reading(BIN, Metric.BATTERY_PCT, round(83 + n * 0.25, 2), ts))
    for n in range(336, -1, -1):  # every 30 min over 7 days
        ts = now - timedelta(minutes=30 * n)
        hour = ts.hour + ts.minute / 60
        temperature = 16 + 6 * math.sin(2 * math.pi * (hour - 9) / 24)
        readings.append(Reading(BIN, Metric.TEMPERATURE_C, round(temperature, 1), ts))
        tilt = 2.0 + 0.3 * math.sin(n / 9) + (1.5 if 100 < n < 110 else 0.0)  # knocked, set right
        readings.append(Reading(BIN, Metric.TILT_DEG, round(tilt, 2), ts))
    alarm = AlarmEvent(
        fingerprint=f"{BIN_LOCATION}/{BIN}/bin_fill_high",
        seq=1,
        state=AlarmState.FIRING,
        severity=Severity.WARNING,
        starts_at=now - timedelta(minutes=20),
        at=now,
        rule_id="bin_fill_high",
        device_id=BIN,
        location=BIN_LOCATION,
        description="垃圾桶满溢度超过 60%",
        valid_until=now + timedelta(hours=1),
        work_order=WorkOrderHint("sanitation", Priority.NORMAL),
    )
    door = AlarmEvent(
        fingerprint=f"{BIN_LOCATION}/{SILENT}/door_open",
        seq=1,
        state=AlarmState.FIRING,
        severity=Severity.INFO,
        starts_at=now,
        at=now,
        rule_id="door_open",
        device_id=SILENT,
        location=BIN_LOCATION,
    )
    events = (alarm, door)
    return Envelope(GATEWAY, uuid4(), now, readings=tuple(readings), alarm_events=events)


@pytest.fixture(scope="module")
def bin_device(world: World) -> Iterator[Bin]:
    """The bin's readings and alarm through the broker, the gateway online, the order accepted."""
    token = _add_people(world.server.db_url)
    status = json.dumps({"state": "online", "gateway_id": GATEWAY}).encode()
    envelope = _bin_envelope(datetime.now(UTC))
    messages = [
        (f"steward/v1/{GATEWAY}/status", status),
        (f"steward/v1/{GATEWAY}/up", dumps(envelope)),
    ]
    publisher = Publisher(world.broker, messages)
    publisher.start()
    publisher.finish(20)
    with httpx.Client(
        base_url=f"{world.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as api:

        def stored() -> bool:
            query = {"device": BIN, "metric": "fill_pct"}
            found = api.get("/telemetry", params=query)
            return found.status_code == 200 and len(found.json()["points"]) > 0

        until(stored, WAIT_S, "the bin's readings stored")
        patched = api.patch(f"/devices/{BIN}", json={"kind": "bin"})
        assert patched.status_code == 200, patched.text

        def order() -> dict[str, object] | None:
            items = api.get("/work-orders").json()["items"]
            return next((o for o in items if BIN in str(o.get("fingerprint"))), None)

        until(lambda: order() is not None, WAIT_S, "the bin's work order")
        opened = order()
        assert opened is not None
        accepted = api.post(f"/work-orders/{opened['id']}/actions", json={"action": "accept"})
        assert accepted.status_code == 200, accepted.text
        yield Bin(int(str(opened["id"])), str(opened["number"]))


@pytest.fixture
def operator(browser: Browser, world: World, bin_device: Bin) -> Iterator[Session]:
    """The operator `op`, signed in."""
    session = open_session(browser)
    sign_in(session, world, "op")
    expect(session.page).to_have_url(f"{world.url}/console/alarms")
    yield session
    session.context.close()
    assert session.errors == [], session.errors


def _charts_ready(page: Page, loads: int = 1) -> None:
    page.wait_for_function(
        "n => window.stewardDevice && window.stewardDevice.ready && window.stewardDevice.loads >= n",
        arg=loads,
        timeout=WAIT_S * 1000,
    )


def _series_lengths(page: Page, chart: str) -> list[int]:
    lengths: list[int] = page.evaluate(
        """id => echarts.getInstanceByDom(document.getElementById(id))
            .getOption().series.map(s => s.data.length)""",
        chart,
    )
    return lengths


# --- the device page -----------------------------------------------------------------------------


def test_the_bin_shows_its_fill_chart_with_points_and_when_it_will_be_full(
    operator: Session, world: World, bin_device: Bin
) -> None:
    page = operator.page
    page.goto(f"{world.url}/console/devices/{BIN}")
    _charts_ready(page)
    expect(page.locator("h1#device-title")).to_have_text(BIN)
    expect(page.locator(".kind-badge")).to_have_text("垃圾桶")
    expect(page.locator("#device-location")).to_have_text(BIN_LOCATION)
    expect(page.locator("#gateway-status")).to_have_attribute("data-state", "online")
    link = page.locator(f'#device-alarms a[href="/console/orders/{bin_device.order_id}"]')
    expect(link).to_have_text(bin_device.order_number)

    fill, forecast = _series_lengths(page, "chart-fill_pct")
    assert fill > 100  # 24 h of 10-minute readings in the default 24 h range
    assert forecast == 2  # the dashed line: the level now, and the target (or the chart's edge)
    words = page.locator("#forecast-fill").inner_text()
    assert re.search(r"预计约 \d+ 小时( \d+ 分钟)?后装满", words), words
    battery = page.locator("#forecast-battery").inner_text()
    assert re.search(r"电量预计还能维持约 \d+ 天", battery), battery
    for chart in (
        "chart-battery_pct",
        "chart-temperature_c",
        "chart-tilt_deg",
        "chart-distance_mm",
    ):
        assert _series_lengths(page, chart)[0] > 0, chart

    page.click('[data-range="6h"]')
    _charts_ready(page, 2)
    assert page.url.endswith("?range=6h")
    six_hours = _series_lengths(page, "chart-fill_pct")[0]
    assert 0 < six_hours < fill
    page.click('[data-range="7d"]')
    _charts_ready(page, 3)
    assert _series_lengths(page, "chart-temperature_c")[0] > 100
    page.click('[data-range="24h"]')
    _charts_ready(page, 4)
    page.wait_for_timeout(600)  # the charts' short animation
    DEVICE_SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DEVICE_SHOT))


def test_the_device_page_in_english_names_its_axes_in_english(
    operator: Session, world: World
) -> None:
    page = operator.page
    operator.context.add_cookies([{"name": "steward_lang", "value": "en", "url": world.url}])
    page.goto(f"{world.url}/console/devices/{BIN}?range=6h")
    _charts_ready(page)
    expect(page.locator(".kind-badge")).to_have_text("Waste bin")
    assert re.search(r"Full in about \d+ h", page.locator("#forecast-fill").inner_text())
    axis: str = page.evaluate(
        """() => echarts.getInstanceByDom(document.getElementById('chart-fill_pct'))
            .getOption().yAxis[0].name"""
    )
    assert axis == "Fill (%)"
    page.goto(f"{world.url}/console/devices/{SILENT}")
    _charts_ready(page)
    expect(page.locator("#charts-empty")).to_have_text("No readings in this range")
    expect(page.locator(".chart-card:visible")).to_have_count(0)
    expect(page.locator("#device-alarms li")).to_have_count(1)
    missing = page.request.get(f"{world.url}/console/devices/no-such-device")
    assert missing.status == 404


# --- the KPI page --------------------------------------------------------------------------------


def test_the_kpi_page_draws_its_charts_and_exports_csv(
    operator: Session, world: World, bin_device: Bin
) -> None:
    page = operator.page
    page.goto(f"{world.url}/console/alarms")
    page.click('nav a[href="/console/kpis"]')
    expect(page).to_have_url(f"{world.url}/console/kpis")
    page.wait_for_function("() => window.stewardKpis && window.stewardKpis.ready")
    rates: list[int] = page.evaluate("window.stewardKpis.charts['chart-rates']")
    assert max(rates) >= 1  # the accepted order's day has an acceptance rate
    expect(page.locator("#total-opened")).not_to_have_text("0")
    acceptance = page.locator('.rate-tile[data-rate="acceptance"] .tile-count')
    expect(acceptance).to_have_text("1/1")

    page.uncheck('input[name="by"][value="period"]')
    page.check('input[name="by"][value="category"]')
    page.click("#kpi-form button[type=submit]")
    page.wait_for_url(re.compile(r"by=category"))
    page.wait_for_function("() => window.stewardKpis && window.stewardKpis.ready")
    expect(page.locator("#kpi-table tbody tr")).to_have_count(1)
    cell = page.locator('#kpi-table td[data-rate="acceptance"] .count')
    expect(cell).to_have_text("1/1")
    href = page.locator("#kpi-csv").get_attribute("href")
    assert href is not None
    assert href.startswith("/api/v1/kpis.csv?")
    assert "by=category" in href
    download = page.request.get(f"{world.url}{href}")
    assert download.status == 200, download.text()
    assert download.headers["content-type"].startswith("text/csv")
    header = download.text().lstrip("\ufeff").splitlines()[0]
    assert header.startswith("category,"), header

    page.goto(f"{world.url}/console/kpis")
    page.wait_for_function("() => window.stewardKpis && window.stewardKpis.ready")
    page.wait_for_timeout(600)
    page.screenshot(path=str(KPI_SHOT))


# --- who may -------------------------------------------------------------------------------------


def test_a_resident_is_refused_both_pages_and_both_apis(
    browser: Browser, world: World, bin_device: Bin
) -> None:
    session = open_session(browser)
    page = sign_in(session, world, "res")
    expect(page).to_have_url(f"{world.url}/console/alarms")
    expect(page.locator('nav a[href="/console/kpis"]')).to_have_count(0)
    for path in (
        f"/console/devices/{BIN}",
        "/console/kpis",
        f"/api/v1/devices/{BIN}",
        f"/api/v1/devices/{BIN}/forecast",
        f"/api/v1/telemetry?device={BIN}&metric=fill_pct",
        "/api/v1/kpis",
        "/api/v1/kpis.csv",
    ):
        assert page.request.get(f"{world.url}{path}").status == 403, path
    session.context.close()
    assert session.errors == [], session.errors


def test_a_technician_reads_the_device_but_not_the_kpis(
    browser: Browser, world: World, bin_device: Bin
) -> None:
    session = open_session(browser)
    page = sign_in(session, world, "tech")
    expect(page.locator('nav a[href="/console/kpis"]')).to_have_count(0)
    page.goto(f"{world.url}/console/devices/{BIN}")
    _charts_ready(page)
    assert _series_lengths(page, "chart-fill_pct")[0] > 0
    assert page.request.get(f"{world.url}/console/kpis").status == 403
    assert page.request.get(f"{world.url}/api/v1/kpis").status == 403
    session.context.close()
    assert session.errors == [], session.errors
