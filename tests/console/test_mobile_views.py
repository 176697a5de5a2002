"""The phone views in a real headless Chromium at 390x844 against a real server.

A technician signs in and lands on "my tasks": only the orders dispatched to them are listed,
and one dispatched while they look arrives from the live stream. They accept a task, go on site
and hand in the result with a photo from the camera input (a file that is not an image is
refused by the photo API first, and its message is shown); the order reaches
AWAITING_VERIFICATION with the photo's hash as evidence. They ask for a hold and reject another
task, each with a reason. A resident signs in and lands on their requests: they report a repair
with a photo, see it listed as NEW, follow it live while staff accept, dispatch, work and close
it through the API (without seeing the staff's names), and rate it 5 stars. A resident gets no
task view, and the API refuses them a technician's action anyway. No page logs a console error.
Screenshots go to `SCREENSHOTS` (console_browser).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import pytest
from console_browser import COMPANY, PASSWORD, SCREENSHOTS, Session, World
from images import png
from playwright.sync_api import Browser, FilePayload, Page, expect

from cloud_ingest.auth.models import Role
from cloud_ingest.auth.service import add_user
from cloud_ingest.auth.sessions import set_password
from cloud_ingest.console import nav, resident, tasks
from cloud_ingest.infra.db import create_engine
from cloud_ingest.work_orders.lifecycle import State

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PHONE: Final = {"width": 390, "height": 844}
TASKS_SHOT: Final = SCREENSHOTS / "console-tasks.png"
RESIDENT_SHOT: Final = SCREENSHOTS / "console-resident.png"
MORE_PEOPLE: Final = {
    "sup": ("supervisor", None),
    "sup2": ("supervisor", None),
    "res": ("resident", "d1/s1/c1/g1/b7"),
}
"""`sup` dispatches and verifies; `sup2` hands in a resident's repair (the verifier must differ)."""
PHOTO: Final = png(64, 48, salt=b"pump room after repair")
RESIDENT_PHOTO: Final = png(40, 30, salt=b"leaking tap")


# --- the pure parts ------------------------------------------------------------------------------


def test_a_task_offers_the_technicians_actions_its_state_admits() -> None:
    technician = Role.TECHNICIAN
    assert tasks.task_actions(State.DISPATCHED, technician, confirmed=False) == (
        "confirm",
        "reject",
    )
    assert tasks.task_actions(State.DISPATCHED, technician, confirmed=True) == ("start", "reject")
    assert tasks.task_actions(State.IN_PROGRESS, technician, confirmed=True) == ("submit", "hold")
    assert tasks.task_actions(State.ON_HOLD, technician, confirmed=True) == ("resume",)
    assert tasks.task_actions(State.AWAITING_VERIFICATION, technician, confirmed=True) == ()
    assert tasks.task_actions(State.DISPATCHED, Role.RESIDENT, confirmed=False) == ()
    events = [
        {"order_id": 1, "seq": 3, "action": "dispatch"},
        {"order_id": 1, "seq": 4, "action": "confirm"},
        {"order_id": 2, "seq": 4, "action": "confirm"},
        {"order_id": 2, "seq": 6, "action": "dispatch"},  # re-dispatched after a reject
    ]
    assert tasks.confirmed_orders(events) == {1}


def test_a_resident_is_told_the_states_not_the_staffs_moves() -> None:
    at = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)

    def event(action: str, before: str | None, after: str, **extra: Any) -> dict[str, Any]:
        return {"action": action, "from_state": before, "to_state": after, "at": at, **extra}

    steps = resident.timeline(
        [
            event("open", None, "NEW"),
            event("accept", "NEW", "ACCEPTED"),
            event("dispatch", "ACCEPTED", "DISPATCHED", data={"assignee": "tech"}),
            event("reject", "DISPATCHED", "ACCEPTED", reason="no ladder"),
            event("dispatch", "ACCEPTED", "DISPATCHED"),
            event("confirm", "DISPATCHED", "DISPATCHED"),
            event("start", "DISPATCHED", "IN_PROGRESS"),
            event("hold", "IN_PROGRESS", "ON_HOLD", reason="part on order"),
            event("resume", "ON_HOLD", "IN_PROGRESS"),
            event("submit", "IN_PROGRESS", "AWAITING_VERIFICATION", data={"result": "new tap"}),
            event("verify", "AWAITING_VERIFICATION", "CLOSED"),
            event("rate", "CLOSED", "RATED", data={"rating": 5}),
        ]
    )
    assert [s.state for s in steps] == [
        "NEW",
        "ACCEPTED",
        "DISPATCHED",
        "IN_PROGRESS",
        "AWAITING_VERIFICATION",
        "CLOSED",
        "RATED",
    ]
    assert [s.note for s in steps if s.note] == ["new tap"]
    assert steps[-1].rating == 5


def test_the_nav_shows_each_view_to_the_roles_its_route_admits() -> None:
    items = {item.key: item for item in nav.NAV}
    assert items["tasks"].roles == frozenset(tasks.ROLES)
    assert items["requests"].roles == frozenset(resident.ROLES)


# --- the browser ---------------------------------------------------------------------------------


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


def phone(browser: Browser) -> Session:
    """A fresh phone-sized context (no cookies), its page watched for console errors."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)  # type: ignore[arg-type]
    page = context.new_page()
    session = Session(context, page)
    page.on("console", session.watch)
    page.on("pageerror", lambda error: session.errors.append(str(error)))
    return session


def sign_in_home(session: Session, world: World, name: str) -> Page:
    """`name` signs in through the form without asking for a page: where they land."""
    page = session.page
    page.goto(f"{world.url}/console/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    return page


def csrf_of(page: Page) -> dict[str, str]:
    """The CSRF header of the signed-in page (as base.html hands it to htmx)."""
    headers: dict[str, str] = page.evaluate(
        "JSON.parse(document.body.getAttribute('hx-headers') || '{}')"
    )
    return headers


def api(page: Page, world: World, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST `body` (or GET without one) to the API as the page's user; the JSON (asserts success)."""
    url = f"{world.url}/api/v1{path}"
    if body is None:
        response = page.request.get(url)
    else:
        response = page.request.post(url, data=body, headers=csrf_of(page))
    assert response.ok, f"{path}: {response.status} {response.text()}"
    return response.json()


def act(page: Page, world: World, order_id: int, action: str, **fields: Any) -> Any:
    """Take `action` on the order through the API as the page's user."""
    return api(page, world, f"/work-orders/{order_id}/actions", {"action": action, **fields})


@pytest.fixture(scope="module")
def staff(browser: Browser, world: World) -> Iterator[Session]:
    """The supervisor `sup`, signed in (an ordinary-sized browser drives the API)."""
    _add_people(world.server.db_url)
    session = phone(browser)
    page = sign_in_home(session, world, "sup")
    expect(page).to_have_url(f"{world.url}/console/alarms")  # a supervisor's home: the alarms
    yield session
    session.context.close()
    assert session.errors == [], session.errors


def dispatched(staff: Session, world: World, title: str, location: str, **extra: Any) -> int:
    """An inspector's report at `location`, accepted and dispatched to `tech`; its id."""
    page = staff.page
    body = {"source": "inspector", "text": title, "location": location, **extra}
    order = api(page, world, "/requests", body)
    act(page, world, order["id"], "accept")
    act(page, world, order["id"], "dispatch", assignee="tech")
    return int(order["id"])


@dataclass
class Technician:
    """`tech` signed in on the phone, and the orders made for them (by key)."""

    session: Session
    orders: dict[str, int]

    @property
    def page(self) -> Page:
        """The technician's page."""
        return self.session.page


@pytest.fixture(scope="module")
def technician(browser: Browser, world: World, staff: Session) -> Iterator[Technician]:
    """`tech` with four tasks dispatched to them (and one order of theirs not dispatched)."""
    orders = {
        "pump": dispatched(staff, world, "2 号泵房水泵异响", "d1/s1/c1/g1/b2"),
        "fire": dispatched(staff, world, "5 号楼消防通道堵塞", "d1/s1/c1/g1/b5", category="fire"),
        "light": dispatched(staff, world, "3 号楼楼道灯不亮", "d1/s1/c1/g1/b3"),
        "gate": dispatched(staff, world, "东门道闸抬杆故障", "d1/s1/c1/g2"),
    }
    unassigned = api(
        staff.page,
        world,
        "/requests",
        {"source": "inspector", "text": "绿化带积水", "location": "d1/s1/c1/g1"},
    )
    session = phone(browser)
    page = sign_in_home(session, world, "tech")
    expect(page).to_have_url(f"{world.url}/console/tasks")
    yield Technician(session, {**orders, "unassigned": int(unassigned["id"])})
    session.context.close()


def card(order_id: int) -> str:
    """The selector of task `order_id`'s card."""
    return f"#task-{order_id}"


def test_a_technician_accepts_starts_and_hands_in_a_task_with_a_photo(
    technician: Technician, staff: Session, world: World
) -> None:
    page, orders = technician.page, technician.orders
    expect(page.locator("h1")).to_have_text("我的任务")
    for key in ("pump", "fire", "light", "gate"):
        expect(page.locator(card(orders[key]))).to_be_visible()
    # the technician's scope shows the undispatched order; "my tasks" does not
    listed = api(page, world, "/work-orders")
    assert orders["unassigned"] in {o["id"] for o in listed["items"]}
    expect(page.locator(card(orders["unassigned"]))).to_have_count(0)
    expect(page.locator("body")).to_have_attribute("data-stream", "live")
    late = dispatched(staff, world, "6 号楼电梯按钮失灵", "d1/s1/c1/g1/b6")
    expect(page.locator(card(late))).to_be_visible()  # from the stream, without a reload
    fire = page.locator(card(orders["fire"]))
    expect(fire.locator(".prio")).to_have_text("P1")
    expect(fire.locator(".fact dd.mono")).to_have_text("d1/s1/c1/g1/b5")
    expect(fire.locator("time")).to_have_count(1)  # its due time

    pump = orders["pump"]
    task = page.locator(card(pump))
    expect(task.locator("[data-action]")).to_have_text(["接单", "拒单"])
    task.locator('[data-action="confirm"]').click()
    expect(task.locator(".note-ok")).to_be_visible()
    expect(task.locator("[data-action]")).to_have_text(["到场开工", "拒单"])
    task.locator('[data-action="start"]').click()
    expect(task.locator(".state-pill")).to_have_text("处理中")
    expect(task.locator("[data-action]")).to_have_text(["提交结果", "申请延期"])
    hand_in(page, pump)
    expect(task.locator(".state-pill")).to_have_text("待核验")
    expect(task.locator("[data-action]")).to_have_count(0)

    order = api(staff.page, world, f"/work-orders/{pump}")
    assert order["state"] == "AWAITING_VERIFICATION"
    assert order["handler"] == "tech"
    submitted = order["events"][-1]
    sha = hashlib.sha256(PHOTO).hexdigest()
    assert submitted["action"] == "submit"
    assert submitted["evidence"] == {"photos": [sha]}
    assert submitted["data"]["result"].startswith("更换了水泵轴承")
    assert [e["action"] for e in order["events"][-3:]] == ["confirm", "start", "submit"]
    stored = staff.page.request.get(f"{world.url}/api/v1/photos/{sha}")
    assert stored.ok
    assert stored.body() == PHOTO

    hold_and_reject(technician, staff, world)
    page.reload()
    expect(page.locator(".task")).to_have_count(4)
    expect(page.locator("#open-count")).to_have_text("3")
    page.evaluate("window.scrollTo(0, 0)")
    TASKS_SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(TASKS_SHOT))
    errors = technician.session.errors
    assert [e for e in errors if "status of 415" not in e] == [], errors  # the refused upload's


def hand_in(page: Page, order_id: int) -> None:
    """Hand in task `order_id`'s result: a file that is no image first (refused), then a PNG."""
    page.locator(card(order_id)).locator('[data-action="submit"]').click()
    dialog = page.locator("#submit-dialog")
    expect(dialog).to_be_visible()
    camera = page.locator("#photo-input")
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("accept") == "image/*"
    assert camera.get_attribute("multiple") is not None
    page.fill("#result-text", "更换了水泵轴承和密封圈 试运行 10 分钟无异响")
    not_an_image = FilePayload(name="notes.png", mimeType="image/png", buffer=b"just some text")
    camera.set_input_files(files=[not_an_image])
    page.click("#submit-send")
    error = page.locator("#submit-error")
    expect(error).to_contain_text("只能上传 JPEG、PNG 或 WebP 图片")
    expect(error).to_contain_text("not a JPEG")  # and the API's own detail
    assert page.evaluate("window.stewardTasks.done.map(d => d.action)") == ["confirm", "start"]
    page.locator("#previews .remove").click()
    camera.set_input_files(files=[FilePayload(name="pump.png", mimeType="image/png", buffer=PHOTO)])
    expect(page.locator("#previews img")).to_have_count(1)
    page.click("#submit-send")
    expect(dialog).to_be_hidden()


def hold_and_reject(technician: Technician, staff: Session, world: World) -> None:
    """The technician asks for a hold on one task and rejects another, each with a reason."""
    page, orders = technician.page, technician.orders
    light = page.locator(card(orders["light"]))
    light.locator('[data-action="confirm"]').click()
    light.locator('[data-action="start"]').click()
    light.locator('[data-action="hold"]').click()
    page.click("#reason-submit")
    expect(page.locator("#reason-error")).to_have_text("请填写原因")
    page.fill("#reason-text", "灯具型号缺货 明日到货")
    page.click("#reason-submit")
    expect(light.locator(".note-wait")).to_be_visible()
    gate = page.locator(card(orders["gate"]))
    gate.locator('[data-action="reject"]').click()
    page.fill("#reason-text", "道闸属设备厂家保修范围")
    page.click("#reason-submit")
    expect(gate).to_have_count(0)
    rejected = api(staff.page, world, f"/work-orders/{orders['gate']}")
    assert rejected["state"] == "ACCEPTED"
    assert rejected["events"][-1]["reason"] == "道闸属设备厂家保修范围"
    held = api(staff.page, world, f"/work-orders/{orders['light']}")
    assert held["state"] == "ON_HOLD"


@pytest.fixture(scope="module")
def resident_session(browser: Browser, world: World, staff: Session) -> Iterator[Session]:
    """The resident `res`, signed in."""
    session = phone(browser)
    page = sign_in_home(session, world, "res")
    expect(page).to_have_url(f"{world.url}/console/requests")
    yield session
    session.context.close()
    assert session.errors == [], session.errors


def test_a_resident_reports_a_repair_with_a_photo_follows_it_and_rates_it(
    resident_session: Session, technician: Technician, staff: Session, world: World
) -> None:
    page = resident_session.page
    expect(page.locator("h1")).to_have_text("报事报修")
    expect(page.locator("#empty")).to_be_visible()
    page.click("#request-send")
    expect(page.locator("#request-error")).to_have_text("请描述遇到的问题")
    page.fill("#request-text", "厨房水龙头一直滴水 关不紧")
    page.locator(".choice", has_text="供水").click()
    page.locator("#request-photo").set_input_files(
        files=[FilePayload(name="tap.png", mimeType="image/png", buffer=RESIDENT_PHOTO)]
    )
    expect(page.locator("#request-previews img")).to_have_count(1)
    page.click("#request-send")
    expect(page.locator("#toast")).to_contain_text("已提交报修")
    mine = page.locator(".request")
    expect(mine).to_have_count(1)
    expect(mine.locator(".state-pill")).to_have_text("待受理")
    expect(mine).to_have_attribute("data-state", "NEW")
    expect(mine.locator(".meta")).to_contain_text("供水")
    thumb = mine.locator(".thumbs img")
    expect(thumb).to_have_count(1)
    page.wait_for_function("() => document.querySelector('.thumbs img').naturalWidth === 40")
    order_id = int(page.evaluate("window.stewardResident.filed[0]"))

    expect(page.locator("body")).to_have_attribute("data-stream", "live")
    close_through_the_api(page, order_id, technician, staff, world)
    # the progress moves on from the stream, without a reload
    expect(mine.locator(".state-pill")).to_have_text("已关闭")
    steps = mine.locator(".step-state")
    expect(steps).to_have_text(["待受理", "已受理", "已派单", "处理中", "待核验", "已关闭"])
    expect(mine.locator(".step-note")).to_have_text(["更换了水龙头阀芯 已不再滴水"])
    text = mine.inner_text()
    assert "tech" not in text  # no staff names
    assert "sup" not in text
    mine.locator("label.star").nth(1).click()  # the row runs 5..1 in the page: the fourth star
    mine.locator("label.star").first.click()  # then the fifth
    mine.locator("textarea").fill("师傅很准时 修得很好")
    mine.locator(".rate-form button[type=submit]").click()
    expect(page.locator("#toast")).to_contain_text("感谢您的评价")
    expect(mine.locator(".state-pill")).to_have_text("已评价")
    expect(mine.locator(".stars-shown .on")).to_have_count(5)
    expect(mine.locator(".rate-form")).to_have_count(0)
    rated = api(staff.page, world, f"/work-orders/{order_id}")
    assert (rated["state"], rated["rating"]) == ("RATED", 5)
    assert rated["events"][-1]["data"]["comment"] == "师傅很准时 修得很好"

    page.fill("#request-text", "单元门禁刷卡没反应")
    page.locator(".choice", has_text="安全隐患").click()
    page.click("#request-send")
    expect(mine).to_have_count(2)
    page.evaluate("document.getElementById('toast').hidden = true")  # not over the list
    RESIDENT_SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(RESIDENT_SHOT), full_page=True)


def close_through_the_api(
    page: Page, order_id: int, technician: Technician, staff: Session, world: World
) -> None:
    """Staff accept, dispatch, work and close the resident's request `order_id` through the API."""
    sup, tech = staff.page, technician.page
    filed = api(sup, world, f"/work-orders/{order_id}")
    assert (filed["source"], filed["requester"], filed["category"]) == ("resident", "res", "water")
    assert filed["location"] == "d1/s1/c1/g1/b7"
    assert filed["events"][0]["evidence"] == {
        "photos": [hashlib.sha256(RESIDENT_PHOTO).hexdigest()]
    }
    act(sup, world, order_id, "accept")
    act(sup, world, order_id, "dispatch", assignee="tech")
    # a resident is refused a technician's action on their own request, whatever the page shows
    refused = page.request.post(
        f"{world.url}/api/v1/work-orders/{order_id}/actions",
        data={"action": "start"},
        headers=csrf_of(page),
    )
    assert refused.status == 403, refused.text()
    act(tech, world, order_id, "start")
    act(tech, world, order_id, "submit", result="更换了水龙头阀芯 已不再滴水")
    act(sup, world, order_id, "verify")


def test_a_resident_gets_no_task_view_and_the_api_refuses_anyway(
    resident_session: Session, technician: Technician, world: World
) -> None:
    page = resident_session.page
    expect(page.locator('.nav a[href="/console/requests"]')).to_have_count(1)
    expect(page.locator('.nav a[href="/console/tasks"]')).to_have_count(0)
    assert page.request.get(f"{world.url}/console/tasks").status == 403
    orders = technician.orders
    fragment = page.request.get(f"{world.url}/console/tasks/card?id={orders['fire']}")
    assert fragment.status == 403
    refused = page.request.post(
        f"{world.url}/api/v1/work-orders/{orders['fire']}/actions",
        data={"action": "confirm"},
        headers=csrf_of(page),
    )
    assert refused.status in {403, 404}, refused.text()  # not theirs: not even visible
    home = page.request.get(f"{world.url}/console", max_redirects=0)
    assert home.headers["location"] == "/console/requests"  # each role's own home
    tech = technician.page
    home = tech.request.get(f"{world.url}/console", max_redirects=0)
    assert home.headers["location"] == "/console/tasks"
    expect(tech.locator('.nav a[href="/console/tasks"]')).to_have_count(1)
    expect(tech.locator('.nav a[href="/console/requests"]')).to_have_count(0)
    assert tech.request.get(f"{world.url}/console/requests").status == 403


def test_the_phone_views_speak_english_when_asked(browser: Browser, world: World) -> None:
    session = phone(browser)
    page = session.page
    page.goto(f"{world.url}/console/login?lang=en")
    page.fill("#name", "tech")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{world.url}/console/tasks")
    expect(page.locator("h1")).to_have_text("My tasks")
    expect(page.locator('.nav a[aria-current="page"]')).to_have_text("My tasks")
    session.context.close()
    assert session.errors == [], session.errors
