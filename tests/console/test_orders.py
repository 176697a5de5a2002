"""The work-order board and the order page in a real headless Chromium against a real server.

An alarm from the simulated gateway opens an order that appears in the NEW column live; the
operator accepts it and dispatches it, in the browser, to a technician registered and on duty
(through the dispatch API); the card moves columns on another operator's board without a reload;
a cancel without a reason shows the API's 422 message; a technician sees exactly the buttons the
API allows and the API refuses the others anyway; a resident gets no board. A screenshot of the
wall-screen board goes to `SCREENSHOTS` (console_browser).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import uuid4

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
from ingest_server import Publisher
from playwright.sync_api import Browser, Page, expect

from cloud_ingest.auth.service import add_user
from cloud_ingest.auth.sessions import set_password
from cloud_ingest.console.orders import COLUMNS, Filters, card_key, columns_of
from cloud_ingest.infra.db import create_engine
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import Envelope, Reading

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SHOT: Final = SCREENSHOTS / "console-orders.png"
ARRIVAL_MS: Final = 10_000
"""A hang guard only: every wait ends as soon as its condition holds."""
REFUSED_422: Final = "the server responded with a status of 422 (Unprocessable Entity)"
MORE_PEOPLE: Final = {"sup": ("supervisor", None), "res": ("resident", "d1/s1/c1")}


def _add_people(url: str) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            for name, (role, area) in MORE_PEOPLE.items():
                await add_user(engine, name, role=role, company=COMPANY, area=area)
                await set_password(engine, name, PASSWORD)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        pool.submit(asyncio.run, run()).result()


def publish_readings(world: World, device: str) -> None:
    """Half an hour of `device`'s smoke density and temperature, rising, as a gateway sends it."""
    now = datetime.now(UTC)
    readings = tuple(
        Reading(device, metric, value, now - timedelta(minutes=30 - n))
        for n in range(30)
        for metric, value in (
            (Metric.SMOKE_PCT, 0.5 + (n / 29) ** 3 * 11.5),
            (Metric.TEMPERATURE_C, 24.0 + n * 0.4),
        )
    )
    envelope = Envelope(GATEWAY, uuid4(), now, readings=readings)
    publisher = Publisher(world.broker, [(f"steward/v1/{GATEWAY}/up", dumps(envelope))])
    publisher.start()
    publisher.finish(10)


def csrf_of(page: Page) -> dict[str, str]:
    """The CSRF header of the signed-in page (as base.html hands it to htmx)."""
    headers: dict[str, str] = page.evaluate(
        "JSON.parse(document.body.getAttribute('hx-headers') || '{}')"
    )
    return headers


def api(page: Page, world: World, path: str, body: dict[str, Any]) -> Any:
    """POST `body` to the API as the page's user; the JSON answer (asserts success)."""
    response = page.request.post(f"{world.url}/api/v1{path}", data=body, headers=csrf_of(page))
    assert response.ok, response.text()
    return response.json()


def signed_in(browser: Browser, world: World, name: str, path: str = "/console/orders") -> Session:
    """`name` signed in, on `path`."""
    session = open_session(browser)
    sign_in(session, world, name)
    session.page.goto(f"{world.url}{path}")
    return session


def live(page: Page) -> None:
    """Wait until the page's stream is connected."""
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")


def card_in(page: Page, state: str, order_id: int) -> str:
    """The selector of the card of `order_id` in the column of `state`."""
    return f'[data-column="{state}"] #wo-{order_id}'


@pytest.fixture(scope="module")
def crew(browser: Browser, world: World) -> Iterator[Session]:
    """A supervisor who registered team 1 (the whole site) with `tech` on duty now."""
    _add_people(world.server.db_url)
    session = signed_in(browser, world, "sup", "/console/alarms")
    page = session.page
    team = api(page, world, "/teams", {"name": "一组", "area": "d1/s1"})
    api(page, world, "/technicians", {"name": "tech", "team_id": team["id"]})
    now = datetime.now(UTC)
    shift = {
        "technician": "tech",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=8)).isoformat(),
    }
    api(page, world, "/rosters", {"shifts": [shift]})
    yield session
    session.context.close()
    assert session.errors == []


@pytest.fixture(scope="module")
def board(browser: Browser, world: World, crew: Session) -> Iterator[Session]:
    """The operator `op`, watching the board."""
    session = signed_in(browser, world, "op")
    expect(session.page.locator("h1.panel-title")).to_contain_text("工单看板")
    live(session.page)
    yield session
    session.context.close()
    assert session.errors == [], session.errors


@pytest.fixture(scope="module")
def opened(board: Session, world: World) -> int:
    """An order opened by an alarm of the simulated gateway, seen arriving on the board."""
    page = board.page
    page.evaluate("window.__notReloaded = true")
    location = "d1/s1/c1/g2/b7"
    publish_readings(world, f"smoke-det-{world.counter + 1}")  # the device `alarm` names next
    world.alarm("smoke-det", "smoke", location=location, description="7 号楼烟感报警")
    card = page.locator(f'[data-column="NEW"] .wo-card[data-location="{location}"]')
    expect(card).to_be_visible(timeout=ARRIVAL_MS)
    order_id = int(card.get_attribute("data-id") or 0)
    assert page.evaluate("window.__notReloaded") is True
    expect(card.locator(".wo-prio")).to_have_text("P1")
    expect(card).to_have_class(re.compile(r"\bprio-P1\b"))
    expect(card.locator("[data-sla]")).to_contain_text("剩余")
    first = card.locator("[data-sla]").inner_text()
    expect(card.locator("[data-sla]")).not_to_have_text(first, timeout=3000)  # it ticks
    due = card.get_attribute("data-due")
    card.evaluate("card => { card.dataset.due = String(Date.now() - 61000); }")
    expect(card).to_have_class(re.compile(r"\boverdue\b"))  # past due: highlighted
    expect(card.locator("[data-sla]")).to_contain_text("超时 00:01:0")
    card.evaluate("(card, due) => { card.dataset.due = due; }", due)
    expect(card).not_to_have_class(re.compile(r"\boverdue\b"))
    return order_id


def test_an_alarm_opens_an_order_in_the_new_column_live(board: Session, opened: int) -> None:
    expect(board.page.locator(card_in(board.page, "NEW", opened))).to_be_visible()
    assert board.page.evaluate("window.stewardOrders.seen")[str(opened)]["state"] == "NEW"


def test_the_operator_accepts_and_dispatches_to_an_on_duty_technician(
    browser: Browser, world: World, board: Session, opened: int
) -> None:
    session = signed_in(browser, world, "op")
    page = session.page
    page.click(f"#wo-{opened}")
    expect(page).to_have_url(f"{world.url}/console/orders/{opened}")
    live(page)
    expect(page.locator("#wo-state")).to_have_text("待受理")
    # the telemetry of the alarm's device around the alarm time, from GET /api/v1/telemetry
    page.wait_for_function("() => window.stewardOrders.charted === true")
    expect(page.locator('.wo-chart[data-metric="smoke_pct"] svg')).to_be_visible()
    charts = page.evaluate("window.stewardOrders.charts")
    assert [c["metric"] for c in charts] == ["smoke_pct", "temperature_c"]
    assert all(c["points"] > 0 for c in charts), charts
    page.click('[data-action="accept"]')
    expect(page.locator("#wo-state")).to_have_text("已受理", timeout=ARRIVAL_MS)
    expect(board.page.locator(card_in(board.page, "ACCEPTED", opened))).to_be_visible(
        timeout=ARRIVAL_MS
    )
    page.click('[data-action="dispatch"]')
    expect(page.locator("#wo-techs option")).to_have_count(1)
    page.select_option("#wo-target", "tech:tech")
    page.click("#wo-submit")
    expect(page.locator("#wo-state")).to_have_text("已派单", timeout=ARRIVAL_MS)
    expect(page.locator("#wo-assignee")).to_have_text("tech")
    expect(page.locator('.wo-event[data-action="dispatch"]')).to_contain_text("tech")
    moved = board.page.locator(card_in(board.page, "DISPATCHED", opened))
    expect(moved).to_be_visible(timeout=ARRIVAL_MS)
    expect(moved.locator(".wo-assignee")).to_have_text("tech")
    expect(board.page.locator(card_in(board.page, "NEW", opened))).to_have_count(0)
    assert board.page.evaluate("window.stewardOrders.moves") >= 2
    assert board.page.evaluate("window.__notReloaded") is True
    # a cancel without a reason: the API's 422, shown in the dialog
    page.click('[data-action="cancel"]')
    page.click("#wo-submit")
    expect(page.locator("#wo-error")).to_contain_text("'cancel' requires 'reason'")
    page.click("#wo-cancel")
    expect(page.locator("#wo-state")).to_have_text("已派单", timeout=ARRIVAL_MS)
    session.context.close()
    # The refused cancel is logged by the browser as a failed request: expected, and the only one.
    assert session.errors == [f"Failed to load resource: {REFUSED_422}"], session.errors


def test_a_technician_sees_only_the_allowed_buttons_and_the_api_refuses_the_rest(
    browser: Browser, world: World, board: Session, opened: int
) -> None:
    session = signed_in(browser, world, "tech", f"/console/orders/{opened}")
    page = session.page
    live(page)
    detail = page.request.get(f"{world.url}/api/v1/work-orders/{opened}").json()
    allowed = detail["allowed_actions"]
    assert set(allowed) == {"reject", "confirm", "start", "escalate", "comment"}
    shown = page.eval_on_selector_all(
        "#wo-actions [data-action]", "bs => bs.map(b => b.dataset.action)"
    )
    assert shown == allowed
    for refused in ("accept", "dispatch", "cancel", "verify"):
        expect(page.locator(f'#wo-actions [data-action="{refused}"]')).to_have_count(0)
    answer = page.request.post(
        f"{world.url}/api/v1/work-orders/{opened}/actions",
        data={"action": "cancel", "reason": "not mine to cancel"},
        headers=csrf_of(page),
    )
    assert answer.status == 403, answer.text()
    page.click('[data-action="start"]')
    expect(page.locator("#wo-state")).to_have_text("处理中", timeout=ARRIVAL_MS)
    expect(board.page.locator(card_in(board.page, "IN_PROGRESS", opened))).to_be_visible(
        timeout=ARRIVAL_MS
    )
    session.context.close()
    assert session.errors == [], session.errors


def test_a_resident_gets_no_board(browser: Browser, world: World, crew: Session) -> None:
    session = open_session(browser)
    sign_in(session, world, "res")
    page = session.page
    expect(page.locator('.nav a[href="/console/orders"]')).to_have_count(0)
    assert page.request.get(f"{world.url}/console/orders").status == 403
    assert page.request.get(f"{world.url}/api/v1/work-orders").status == 403
    session.context.close()


def test_the_wall_screen_board(browser: Browser, world: World, crew: Session) -> None:
    """A compound's open orders in every column; a screenshot of the wall screen."""
    session = signed_in(browser, world, "wall")
    page = session.page
    live(page)
    now = datetime.now(UTC)
    requests = [
        ("hotline_12345", "drainage", "P2", "东门雨水井堵塞积水", "g1/gate-east", 40),
        ("inspector", "sanitation", "P3", "5 号楼垃圾桶满溢", "g1/b5", None),
        ("hotline_12345", "lighting", "P3", "北侧路灯不亮", "g2/road-n", None),
        ("inspector", "elevator", "P2", "3 号楼 2 单元电梯异响", "g1/b3/u2", None),
        ("inspector", "security", "P1", "北侧围界破损", "g2/fence-n", None),
        ("hotline_12345", "greening", "P4", "中心花园树枝折断", "g1/garden", None),
        ("inspector", "drainage", "P2", "地下车库 B2 渗水", "g1/garage-b2", None),
        ("hotline_12345", "sanitation", "P3", "8 号楼楼道堆放杂物", "g2/b8", None),
    ]
    ids = []
    for n, (source, category, priority, title, where, minutes) in enumerate(requests):
        body: dict[str, Any] = {
            "source": source,
            "category": category,
            "priority": priority,
            "title": title,
            "text": title,
            "location": f"d1/s1/c9/{where}",
        }
        if source == "hotline_12345":
            body["external_ref"] = f"12345-{n:04d}"
            if minutes is not None:
                body["external_deadline"] = (now + timedelta(minutes=minutes)).isoformat()
        ids.append(int(api(page, world, "/requests", body)["id"]))
    for order_id in ids[1:]:
        api(page, world, f"/work-orders/{order_id}/actions", {"action": "accept"})
    for order_id in ids[3:]:
        api(page, world, f"/work-orders/{order_id}/actions", {"action": "dispatch"})  # automatic
    tech = signed_in(browser, world, "tech", "/console/alarms")
    for order_id in ids[5:]:
        api(tech.page, world, f"/work-orders/{order_id}/actions", {"action": "start"})
    api(
        tech.page,
        world,
        f"/work-orders/{ids[7]}/actions",
        {"action": "submit", "result": "已清理楼道杂物"},
    )
    api(
        tech.page,
        world,
        f"/work-orders/{ids[6]}/actions",
        {"action": "hold", "reason": "等待防水材料到货"},
    )
    api(
        page,
        world,
        f"/work-orders/{ids[4]}/actions",
        {"action": "escalate", "reason": "围界破损范围大, 需街道协调"},
    )
    tech.context.close()
    for state, order_id in [
        ("NEW", ids[0]),
        ("ACCEPTED", ids[1]),
        ("DISPATCHED", ids[4]),
        ("IN_PROGRESS", ids[5]),
        ("ON_HOLD", ids[6]),
        ("AWAITING_VERIFICATION", ids[7]),
    ]:
        expect(page.locator(card_in(page, state, order_id))).to_be_visible(timeout=ARRIVAL_MS)
    expect(page.locator(f"#wo-{ids[4]} .wo-level")).to_have_text("社区")
    expect(page.locator("#wo-total")).to_have_text(str(len(ids)))
    # the grid filter: only the orders of grid g2
    page.fill("#f-grid", "d1/s1/c9/g2")
    page.click(".wo-filters button[type=submit]")
    expect(page.locator(".wo-card")).to_have_count(3)
    page.click(".wo-filters a.button")
    expect(page.locator(".wo-card")).to_have_count(len(ids))
    live(page)
    expect(page.locator(".wo-card.arrived")).to_have_count(0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOT), full_page=False)
    assert SHOT.stat().st_size > 10_000
    session.context.close()
    assert session.errors == [], session.errors


# --- the board's pure parts ----------------------------------------------------------------------


def _row(order_id: int, state: str, due_min: float | None, **fields: str) -> dict[str, Any]:
    now = datetime(2026, 12, 8, 10, tzinfo=UTC)
    due = None if due_min is None else now + timedelta(minutes=due_min)
    return {"id": order_id, "state": state, "due_at": due, "location": "d1/s1/c1/g1/b1",
            "category": "drainage", "company": "A", **fields}  # fmt: skip


def test_columns_hold_every_open_state_with_the_earliest_due_first() -> None:
    rows = [
        _row(1, "NEW", None),
        _row(2, "NEW", 30),
        _row(3, "NEW", -5),
        _row(4, "ACCEPTED", 10),
        _row(5, "CLOSED", 1),
    ]
    columns = columns_of(rows)
    assert list(columns) == [state.value for state in COLUMNS]
    assert [r["id"] for r in columns["NEW"]] == [3, 2, 1]  # overdue, then due, then no SLA
    assert [r["id"] for r in columns["ACCEPTED"]] == [4]
    assert all(r["id"] != 5 for cards in columns.values() for r in cards)
    assert card_key(rows[0]) > card_key(rows[1])


def test_the_filters_take_a_grid_and_below_a_category_and_a_company() -> None:
    row = _row(1, "NEW", None, location="d1/s1/c1/g1/b1")
    assert Filters().admits(row)
    assert Filters(grid="d1/s1/c1/g1").admits(row)
    assert Filters(grid="d1/s1/c1").admits(row)
    assert not Filters(grid="d1/s1/c1/g").admits(row)  # whole segments only
    assert not Filters(category="lighting").admits(row)
    assert not Filters(company="B").admits(row)
    assert Filters(grid="d1/s1", category="drainage", company="A").admits(row)
    assert Filters(grid="d1/s1", company="A").query() == {"grid": "d1/s1", "company": "A"}
