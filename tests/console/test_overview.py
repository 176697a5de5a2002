"""The one-screen overview in a real headless Chromium against a real server, broker and database.

The site tree (district to unit, a compound with its plan) is loaded with `cloud-ingest sites
import` from CSV, as an installer does, and the devices placed on it through the registry's CSV
import; a critical alarm is published through the broker like a gateway's. The operator drills
down from the whole area to the compound, seeing the count on the right tile at each level, and
finds the device's marker red on the plan; a new alarm changes the figures without a reload; a
resident is refused the page and the API. A screenshot of the compound's wall-screen view goes to
`SCREENSHOTS`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
from console_browser import PASSWORD, SCREENSHOTS, Session, World, open_session, sign_in
from ingest_server import cloud_ingest_env
from playwright.sync_api import Browser, Page, expect

from cloud_ingest.auth.models import Role
from cloud_ingest.auth.service import add_user
from cloud_ingest.auth.sessions import set_password
from cloud_ingest.console.nav import NAV
from cloud_ingest.console.overview import PAGE_PATH, on_time, page_href, worst
from cloud_ingest.infra.db import create_engine
from cloud_ingest.overview.schemas import Figures
from cloud_ingest.registry.csv_import import parse_devices
from cloud_ingest.registry.imports import import_devices
from cloud_ingest.registry.roles import STAFF
from core.types import Severity

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SHOT: Final = SCREENSHOTS / "console-overview.png"
COMPOUND: Final = "d1/s1/c1/g1/k1"
UNIT: Final = f"{COMPOUND}/b1/u1"
HOSTILE: Final = "<img src=x onerror=window.pwned=1>楼"
"""A building name that is markup: shown as text on the tiles and the plan, never run."""
RESIDENT: Final = "resident"
SITES: Final = f"""path,level,name,company,plan_x,plan_y,plan_w,plan_h
d1,district,东城区,,,,,
d1/s1,street,和平街道,,,,,
d1/s1/c1,community,幸福社区,,,,,
d1/s1/c1/g1,grid,第一网格,,,,,
d1/s1/c1/g2,grid,第二网格,,,,,
{COMPOUND},compound,荷花苑,A,0,0,240,160
{COMPOUND}/b1,building,1号楼,,20,20,80,40
{UNIT},unit,1单元,,,,,
{COMPOUND}/b2,building,2号楼,,20,90,80,40
{COMPOUND}/b2/u1,unit,1单元,,,,,
d1/s1/c1/g2/k2,compound,松园,A,0,0,180,120
d1/s1/c1/g2/k2/b1,building,{HOSTILE},,30,30,60,30
"""
WAIT_MS: Final = 10_000
"""A hang guard only: every wait ends as soon as its condition holds."""
RED: Final = "rgb(239, 68, 68)"
GREEN: Final = "rgb(34, 197, 94)"


@dataclass(frozen=True)
class Area:
    """The loaded area: the device with the critical alarm and a quiet one."""

    alarmed: str
    quiet: str


def _devices(alarmed: str) -> str:
    return f"""id,gateway,kind,location,labels,plan_x,plan_y
{alarmed},gw-a,smoke,{UNIT},room=301,40,35
manhole-k1,gw-a,manhole,{COMPOUND},utility=sewer,150,70
bin-k1,gw-a,bin,{COMPOUND},stream=residual,180,120
smoke-k2,gw-a,smoke,d1/s1/c1/g2/k2,room=101,60,40
"""


def _import(world: World, what: str, path: Path) -> None:
    """`cloud-ingest <what> import <path>` against the world's database."""
    result = subprocess.run(
        [sys.executable, "-m", "cloud_ingest.cli", what, "import", str(path)],
        cwd=path.parent,
        env=cloud_ingest_env({"STEWARD_DATABASE_URL": world.server.db_url}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _devices_and_resident(url: str, devices: str) -> None:
    """The devices through the registry's import, and a resident of the compound's unit."""

    async def run() -> None:
        engine = create_engine(url)
        try:
            await import_devices(engine, parse_devices(devices))
            await add_user(engine, RESIDENT, role="resident", company="A", area=UNIT)
            await set_password(engine, RESIDENT, PASSWORD)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="module")
def area(world: World, tmp_path_factory: pytest.TempPathFactory) -> Area:
    """The site tree and devices imported from CSV, a resident, and one critical alarm."""
    folder = tmp_path_factory.mktemp("overview")
    alarmed = f"smoke-k1-{world.counter + 1}"  # the name `world.alarm` gives its next device
    (folder / "sites.csv").write_text(SITES, encoding="utf-8")
    _import(world, "sites", folder / "sites.csv")
    _devices_and_resident(world.server.db_url, _devices(alarmed))
    fingerprint = world.alarm("smoke-k1", "smoke", location=UNIT, description="烟雾报警")
    assert fingerprint == f"{UNIT}/{alarmed}/smoke"
    return Area(alarmed=alarmed, quiet="manhole-k1")


@pytest.fixture(scope="module")
def signed_in(browser: Browser, world: World, area: Area) -> Iterator[Session]:
    """The operator `op`, signed in once for the module."""
    session = open_session(browser)
    sign_in(session, world, "op")
    expect(session.page).to_have_url(f"{world.url}/console/alarms")
    yield session
    session.context.close()


@pytest.fixture
def operator(signed_in: Session) -> Iterator[Session]:
    """The signed-in operator; the test must log no console error."""
    signed_in.errors.clear()
    yield signed_in
    assert signed_in.errors == [], signed_in.errors


def tile(page: Page, path: str) -> str:
    """The selector of the tile of `path`."""
    return f'#tiles li.ov-tile[data-path="{path}"]'


def critical_on(page: Page, path: str) -> str:
    """The critical count shown on the tile of `path`."""
    return page.locator(f'{tile(page, path)} .ov-sev[data-severity="critical"] b').inner_text()


def live(page: Page) -> None:
    """Wait until the page's stream is connected."""
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live", timeout=WAIT_MS)


def test_drilling_down_reaches_the_compound_with_the_alarm_on_the_right_tile_and_a_red_marker(
    operator: Session, world: World, area: Area
) -> None:
    page = operator.page
    page.goto(f"{world.url}/console/alarms")
    page.click('.nav a[href="/console/overview"]')
    expect(page).to_have_url(f"{world.url}/console/overview")
    expect(page.locator('.nav a[href="/console/overview"]')).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.locator(tile(page, "d1"))).to_have_class("ov-tile sev-critical")
    assert critical_on(page, "d1") == "1"
    for path in ("d1", "d1/s1", "d1/s1/c1"):
        page.click(f"{tile(page, path)} a")
        expect(page.locator(".ov-crumbs [aria-current=page]")).to_be_visible()
    # the community: its grids as tiles and as rows, the alarm in the first grid only
    assert critical_on(page, "d1/s1/c1/g1") == "1"
    assert critical_on(page, "d1/s1/c1/g2") == "0"
    expect(page.locator('#grids tr[data-path="d1/s1/c1/g1"] .sev-critical')).to_have_text("1")
    page.click(f"{tile(page, 'd1/s1/c1/g1')} a")
    page.click(f"{tile(page, COMPOUND)} a")
    expect(page).to_have_url(f"{world.url}/console/overview?site={COMPOUND}")
    crumbs = page.locator(".ov-crumbs li").all_inner_texts()
    assert crumbs == ["全域", "东城区", "和平街道", "幸福社区", "第一网格", "荷花苑"], crumbs
    assert critical_on(page, f"{COMPOUND}/b1") == "1"
    assert critical_on(page, f"{COMPOUND}/b2") == "0"
    expect(page.locator('#kpi-alarms .ov-sev[data-severity="critical"] b')).to_have_text("1")
    # the plan: inlined, the alarmed device's marker red, the quiet one green
    expect(page.locator("#plan")).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
    marker = page.locator(f'#plan g.device[data-device-id="{area.alarmed}"]')
    expect(marker).to_have_attribute("data-severity", "critical")
    fill = marker.locator(":scope > :not(title)").evaluate("e => getComputedStyle(e).fill")
    assert fill == RED
    quiet = page.locator(f'#plan g.device[data-device-id="{area.quiet}"]')
    assert quiet.locator(":scope > :not(title)").evaluate("e => getComputedStyle(e).fill") == GREEN
    assert page.locator("#plan script, #plan foreignObject").count() == 0
    live(page)
    page.wait_for_timeout(300)  # the pulse of the critical marker, mid-way
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOT))
    # a marker opens the device's page; a building its own overview
    with page.expect_navigation():
        marker.click()
    assert page.url == f"{world.url}/console/devices/{area.alarmed}"
    page.go_back()
    expect(page.locator("#plan")).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
    page.locator(f'#plan g.site[data-site-path="{COMPOUND}/b2"] polygon').click()
    expect(page).to_have_url(f"{world.url}/console/overview?site={COMPOUND}/b2")


def test_a_new_alarm_updates_the_figures_and_the_plan_without_a_reload(
    operator: Session, world: World, area: Area
) -> None:
    page = operator.page
    page.goto(f"{world.url}/console/overview?site={COMPOUND}")
    expect(page.locator("#plan")).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
    live(page)
    page.evaluate("window.stillHere = true")
    before = int(page.locator("#kpi-alarms .ov-kpi-value").get_attribute("data-value") or "0")
    raised = int(page.locator("#kpi-raised .ov-kpi-value").get_attribute("data-value") or "0")
    warnings = int(page.locator(f"{tile(page, f'{COMPOUND}/b1')} .sev-warning b").inner_text())
    world.alarm("heat-k1", "heat", severity=Severity.WARNING, location=UNIT)
    expect(page.locator("#kpi-alarms .ov-kpi-value")).to_have_text(str(before + 1), timeout=WAIT_MS)
    expect(page.locator("#kpi-raised .ov-kpi-value")).to_have_text(str(raised + 1))
    expect(page.locator(f"{tile(page, f'{COMPOUND}/b1')} .sev-warning b")).to_have_text(
        str(warnings + 1)
    )
    assert page.evaluate("window.stillHere") is True
    assert page.evaluate("window.stewardOverview.refreshes") >= 1
    # the alarmed device is still red on the plan, drawn again
    page.wait_for_function("() => window.stewardOverview.plans >= 2", timeout=WAIT_MS)
    marker = page.locator(f'#plan g.device[data-device-id="{area.alarmed}"]')
    expect(marker).to_have_attribute("data-severity", "critical")


def test_a_site_name_that_is_markup_is_shown_as_text_on_the_tiles_and_the_plan(
    operator: Session, world: World, area: Area
) -> None:
    page = operator.page
    page.goto(f"{world.url}/console/overview?site=d1/s1/c1/g2/k2")
    expect(page.locator("#plan")).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
    expect(page.locator(f"{tile(page, 'd1/s1/c1/g2/k2/b1')} .ov-tile-name")).to_have_text(HOSTILE)
    expect(page.locator('#plan g.site[data-site-path="d1/s1/c1/g2/k2/b1"] text')).to_have_text(
        HOSTILE
    )
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None
    smoke = page.locator('#plan g.device[data-device-id="smoke-k2"]')
    expect(smoke).to_have_attribute("data-severity", "none")


def test_the_english_page_names_the_figures_in_english(
    operator: Session, world: World, area: Area
) -> None:
    page = operator.page
    page.goto(f"{world.url}/console/overview?site=d1/s1/c1")
    page.click("#lang")
    expect(page.locator("#kpi-alarms .ov-kpi-label")).to_have_text("Open alarms")
    expect(page.locator("#grids-title")).to_contain_text("Orders by grid")
    page.click("#lang")
    expect(page.locator("#kpi-alarms .ov-kpi-label")).to_have_text("当前告警")


def test_a_resident_is_refused_the_page_and_the_api(
    browser: Browser, world: World, area: Area
) -> None:
    session = open_session(browser)
    try:
        page = sign_in(session, world, RESIDENT)
        expect(page).to_have_url(f"{world.url}/console/alarms")
        expect(page.locator('.nav a[href="/console/overview"]')).to_have_count(0)
        response = page.goto(f"{world.url}/console/overview")
        assert response is not None
        assert response.status == 403
        expect(page.locator("#refused")).to_be_visible()
        assert page.locator("#figures, #plan").count() == 0
        for url in (
            "/api/v1/overview",
            f"/api/v1/plans/{COMPOUND}.svg",
            "/console/overview/figures",
        ):
            assert page.request.get(f"{world.url}{url}").status == 403, url
    finally:
        session.context.close()


def test_the_nav_shows_the_overview_to_the_roles_its_api_admits() -> None:
    items = {item.key: item for item in NAV}
    assert items["overview"].href == PAGE_PATH
    assert items["overview"].roles == frozenset(STAFF)
    assert Role.RESIDENT not in items["overview"].roles


def test_a_place_is_coloured_by_its_worst_open_alarm_and_linked_by_its_path() -> None:
    quiet = Figures.of(None)
    assert worst(quiet) == "none"
    warning = quiet.model_copy(
        update={"alarms": quiet.alarms.model_copy(update={"warning": 2, "info": 5, "total": 7})}
    )
    assert worst(warning) == "warning"
    assert page_href("") == PAGE_PATH
    assert page_href("d1/s1 x") == f"{PAGE_PATH}?site=d1/s1%20x"
    assert on_time(None) == "—"
    assert on_time(2 / 3) == "67%"
