"""`GET /api/v1/overview` and `GET /api/v1/plans/{path}.svg` on SQLite and PostgreSQL.

A hand-built street: company A's compound `lotus` in grid g1 and company B's `pine` in grid g2
of street d1/s1, and A's `oak` in street d1/s2; gateways online, offline and unknown; alarm
instances open (firing, fault, no data), not open (pending, normal) and inhibited; open work
orders past due and escalated, orders closed today on time and not. The figures each kind of user
gets are checked against the numbers worked out by hand: a company sees its own rows only, a
street officer every company's in the street and none outside it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.service import add_user
from cloud_ingest.clock import ManualClock
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.schema import (
    alarm_instances,
    devices,
    gateways,
    sites,
    work_order_escalations,
    work_orders,
)
from cloud_ingest.main import create_app
from cloud_ingest.overview.plan_svg import OFFLINE_FILL, SEVERITY_FILL, SVG_NS
from cloud_ingest.overview.router import overview_clock
from cloud_ingest.problems import PROBLEM_JSON

T0: Final = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
EARLIER: Final = T0 - timedelta(days=2)
NS: Final = {"svg": SVG_NS}
STREET: Final = "d1/s1"
LOTUS: Final = "d1/s1/c1/g1/lotus"
PINE: Final = "d1/s1/c1/g2/pine"
OAK: Final = "d1/s2/c1/g1/oak"
HOSTILE: Final = '<script>alert("x")</script>&]]><!--'

USERS: Final = {  # name: (role, company, area)
    "admin": ("admin", None, None),
    "op-a": ("operator", "A", None),
    "sup-b": ("supervisor", "B", None),
    "tech-a-lotus": ("technician", "A", LOTUS),
    "street-officer": ("supervisor", None, STREET),
    "grid-member": ("operator", None, "d1/s1/c1/g2"),
    "resident-a": ("resident", "A", LOTUS),
}
SITES: Final = [  # path, level, company, plan
    ("d1", "district", "", None),
    ("d1/s1", "street", "", None),
    ("d1/s1/c1", "community", "", None),
    ("d1/s1/c1/g1", "grid", "", None),
    ("d1/s1/c1/g2", "grid", "", None),
    ("d1/s2", "street", "", None),
    ("d1/s2/c1", "community", "", None),
    ("d1/s2/c1/g1", "grid", "", None),
    (LOTUS, "compound", "A", {"x": 0, "y": 0, "w": 240, "h": 160}),
    (f"{LOTUS}/b1", "building", "A", {"x": 20, "y": 20, "w": 60, "h": 30}),
    (f"{LOTUS}/b2", "building", "A", {"points": [[20, 90], [80, 90], [80, 120], [20, 120]]}),
    (f"{LOTUS}/b1/u1", "unit", "A", None),
    (PINE, "compound", "B", {"x": 0, "y": 0, "w": 180, "h": 120}),
    (f"{PINE}/b1", "building", "B", {"x": 30, "y": 30, "w": 50, "h": 25}),
    (OAK, "compound", "A", {"x": 0, "y": 0, "w": 100, "h": 100}),
]
GATEWAYS: Final = {  # id: (company, site, status)
    "gw-a": ("A", LOTUS, "online"),
    "gw-a2": ("A", OAK, "offline"),
    "gw-b": ("B", PINE, "online"),
    "gw-b2": ("B", PINE, "unknown"),
}
DEVICES: Final = {  # id: (gateway, kind, location, x, y)
    "a-smoke-1": ("gw-a", "smoke", f"{LOTUS}/b1/u1", 30.0, 30.0),
    "a-smoke-2": ("gw-a", "smoke", f"{LOTUS}/b1", 40.0, 35.0),
    "a-manhole": ("gw-a", "manhole", LOTUS, 110.0, 60.0),
    "a-bin": ("gw-a", "bin", LOTUS, 95.0, 75.0),
    "a-fence": ("gw-a", "perimeter", LOTUS, 120.0, 0.0),
    "a-oak": ("gw-a2", "smoke", OAK, 10.0, 10.0),
    "b-smoke": ("gw-b", "smoke", f"{PINE}/b1", 40.0, 35.0),
    "b-bin": ("gw-b", "bin", PINE, 150.0, 100.0),
}
ALARMS: Final = [  # device, rule, state, severity, started, inhibited
    ("a-smoke-1", "smoke", "firing", "critical", T0, False),
    ("a-smoke-1", "battery", "fault", "warning", T0, False),
    ("a-smoke-2", "silent", "no_data", "warning", EARLIER, False),
    ("a-manhole", "tilt", "firing", "info", T0, False),
    ("a-manhole", "open", "normal", "critical", T0, False),  # resolved today: not open
    ("a-bin", "fill", "firing", "critical", T0, True),  # inhibited: not open
    ("a-oak", "smoke", "firing", "critical", EARLIER, False),
    ("b-smoke", "smoke", "firing", "critical", T0, False),
    ("b-bin", "fill", "pending", "warning", EARLIER, False),  # pending: not open
    ("b-bin", "lid", "firing", "major", EARLIER, False),  # another name of warning
]
ORDERS: Final = {  # number: (company, location, state, due, escalation, created, closed, breach)
    "WO-1": ("A", f"{LOTUS}/b1", "NEW", T0 - timedelta(hours=1), 0, T0, None, False),
    "WO-2": ("A", LOTUS, "IN_PROGRESS", T0 + timedelta(hours=1), 1, T0, None, False),
    "WO-3": ("B", PINE, "DISPATCHED", T0 - timedelta(minutes=5), 2, T0, None, False),
    "WO-4": ("A", LOTUS, "CLOSED", None, 0, T0, T0, False),
    "WO-5": ("A", LOTUS, "CLOSED", None, 1, T0, T0, True),
    "WO-6": ("A", OAK, "NEW", None, 0, T0, None, False),
    "WO-7": ("A", LOTUS, "CLOSED", None, 0, EARLIER, EARLIER, False),
    "WO-8": ("A", LOTUS, "ON_HOLD", None, 0, EARLIER, None, False),  # hold: no due time
}


@dataclass
class World:
    client: httpx.AsyncClient
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.app.state.engine
        return engine

    async def get(self, user: str, path: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return await self.client.get(path, params=params, headers=headers)

    async def overview(self, user: str, **params: str) -> dict[str, Any]:
        response = await self.get(user, "/api/v1/overview", **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def plan(self, user: str, path: str) -> ET.Element:
        response = await self.get(user, f"/api/v1/plans/{path}.svg")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.headers["x-content-type-options"] == "nosniff"
        return ET.fromstring(response.text)  # noqa: S314 - our own output


async def _build(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(sites),
            [
                {
                    "path": path,
                    "parent": path.rpartition("/")[0] or None,
                    "level": level,
                    "name": f"name of {path.rsplit('/', 1)[-1]}",
                    "company": company,
                    "plan": plan,
                    "updated_at": EARLIER,
                }
                for path, level, company, plan in SITES
            ],
        )
        await conn.execute(
            insert(gateways),
            [
                {"id": g, "company": c, "site": s, "status": st, "created_at": EARLIER}
                for g, (c, s, st) in GATEWAYS.items()
            ],
        )
        await conn.execute(
            insert(devices),
            [
                {
                    "id": d,
                    "gateway_id": g,
                    "kind": k,
                    "location": loc,
                    "labels": {},
                    "first_seen": EARLIER,
                    "last_seen": EARLIER,
                    "plan_x": x,
                    "plan_y": y,
                }
                for d, (g, k, loc, x, y) in DEVICES.items()
            ],
        )
        await conn.execute(
            insert(alarm_instances),
            [
                {
                    "fingerprint": f"{DEVICES[device][2]}/{device}/{rule}",
                    "gateway_id": DEVICES[device][0],
                    "device_id": device,
                    "rule_id": rule,
                    "location": DEVICES[device][2],
                    "description": rule,
                    "state": state,
                    "severity": severity,
                    "starts_at": started - timedelta(minutes=10),
                    "first_event_at": started - timedelta(minutes=10),
                    "last_event_at": started - timedelta(minutes=10),
                    "last_seq": 1,
                    "inhibited_by": "gateway/gw-a/offline" if inhibited else None,
                    "updated_at": started,
                }
                for device, rule, state, severity, started, inhibited in ALARMS
            ],
        )
        for number, (
            company,
            location,
            state,
            due,
            level,
            created,
            closed,
            breach,
        ) in ORDERS.items():
            result = await conn.execute(
                insert(work_orders).values(
                    number=number,
                    source="alarm",
                    category="fire",
                    priority="P2",
                    state=state,
                    company=company,
                    location=location,
                    title=number,
                    escalation_level=level,
                    version=1,
                    created_at=created - timedelta(minutes=30),
                    updated_at=created,
                    closed_at=closed,
                    due_at=due,
                )
            )
            if breach:
                order_id = result.inserted_primary_key[0]  # type: ignore[index]
                await conn.execute(
                    insert(work_order_escalations).values(
                        order_id=order_id,
                        key=f"{number}/accept",
                        stage="accept",
                        from_level="compound",
                        to_level="grid",
                        target="d1/s1/c1/g1",
                        due_at=T0 - timedelta(minutes=20),
                        at=T0 - timedelta(minutes=19),
                    )
                )


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    flags = {
        "database_url": db_url,
        "migrate_on_start": True,
        "alarm_sweep_interval_s": 0,
        "notify_worker": False,
    }
    app = create_app(load_settings(environ={}, flags=flags))
    app.dependency_overrides[overview_clock] = lambda: ManualClock(T0)
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://overview") as client:
            world = World(client, app)
            for name, (role, company, area) in USERS.items():
                world.tokens[name] = await add_user(
                    app.state.engine, name, role=role, company=company, area=area
                )
            await _build(world.engine)
            yield world


def by_path(places: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {place["path"]: place["figures"] for place in places}


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


async def test_a_street_officer_sees_every_company_in_the_street(world: World) -> None:
    body = await world.overview("street-officer")
    assert body["at"] == T0.isoformat()
    node = body["node"]
    assert (node["path"], node["level"], node["name"]) == (STREET, "street", "name of s1")
    total = node["figures"]
    # open: a-smoke-1 critical+warning, a-smoke-2 warning, a-manhole info, b-smoke critical,
    # b-bin major (warning)
    assert total["alarms"] == {"critical": 2, "warning": 3, "info": 1, "total": 6}
    assert list(total["alarms"]) == ["critical", "warning", "info", "total"]  # worst first
    assert total["devices"] == {
        "critical": 2,
        "warning": 2,
        "info": 1,
        "none": 2,
        "offline": 0,
        "total": 7,
    }
    assert total["gateways"] == {"online": 2, "offline": 0, "unknown": 1, "total": 3}
    orders = total["orders"]
    assert nonzero(orders["by_state"]) == {
        "NEW": 1,
        "IN_PROGRESS": 1,
        "DISPATCHED": 1,
        "ON_HOLD": 1,
    }
    assert list(orders["by_state"])[:3] == ["NEW", "ACCEPTED", "DISPATCHED"]
    assert (orders["open"], orders["breached"], orders["escalated"]) == (4, 2, 2)
    (child,) = body["children"]
    assert child["path"] == "d1/s1/c1"
    assert child["figures"] == total  # everything lies in the one community
    grids = by_path(body["grids"])
    assert set(grids) == {"d1/s1/c1/g1", "d1/s1/c1/g2"}
    g1, g2 = grids["d1/s1/c1/g1"], grids["d1/s1/c1/g2"]
    assert g1["alarms"] == {"critical": 1, "warning": 2, "info": 1, "total": 4}
    assert g2["alarms"] == {"critical": 1, "warning": 1, "info": 0, "total": 2}
    assert (g1["orders"]["open"], g1["orders"]["breached"], g1["orders"]["escalated"]) == (3, 1, 1)
    assert (g2["orders"]["open"], g2["orders"]["breached"], g2["orders"]["escalated"]) == (1, 1, 1)
    assert g2["gateways"] == {"online": 1, "offline": 0, "unknown": 1, "total": 2}
    assert body["here"]["alarms"]["total"] == 0
    today = body["today"]
    assert today["day"] == "2026-12-07"
    assert (today["start"], today["end"]) == (
        "2026-12-07T00:00:00+08:00",
        "2026-12-08T00:00:00+08:00",
    )
    # raised today: a-smoke-1 x2, a-manhole x2, a-bin, b-smoke (in the street; oak is outside)
    assert today["alarms_raised"] == 6
    assert (today["orders_opened"], today["orders_closed"], today["orders_closed_on_time"]) == (
        5,
        2,
        1,
    )
    assert today["on_time_rate"] == 0.5


async def test_a_company_sees_only_its_own_rows(world: World) -> None:
    body = await world.overview("op-a")
    assert body["node"]["path"] == ""
    assert body["node"]["level"] is None
    assert [c["path"] for c in body["children"]] == ["d1"]
    total = body["node"]["figures"]
    # A: lotus (critical 1, warning 2, info 1) and oak (critical 1); none of B's
    assert total["alarms"] == {"critical": 2, "warning": 2, "info": 1, "total": 5}
    assert total["devices"]["total"] == 6
    assert total["devices"]["offline"] == 1  # a-oak behind gw-a2
    assert total["gateways"] == {"online": 1, "offline": 1, "unknown": 0, "total": 2}
    assert nonzero(total["orders"]["by_state"]) == {"NEW": 2, "IN_PROGRESS": 1, "ON_HOLD": 1}
    assert (total["orders"]["breached"], total["orders"]["escalated"]) == (1, 1)
    grids = by_path(body["grids"])
    assert grids["d1/s1/c1/g2"]["alarms"]["total"] == 0  # B's grid: shared, but none of A's rows
    assert grids["d1/s2/c1/g1"]["devices"]["offline"] == 1
    streets = by_path((await world.overview("op-a", site="d1"))["children"])
    assert set(streets) == {"d1/s1", "d1/s2"}
    assert streets["d1/s2"]["orders"]["open"] == 1
    b = (await world.overview("sup-b", site="d1/s1/c1"))["node"]["figures"]
    assert b["alarms"] == {"critical": 1, "warning": 1, "info": 0, "total": 2}
    assert b["devices"]["total"] == 2
    assert b["orders"]["open"] == 1


async def test_a_compound_shows_its_buildings_and_what_stands_in_its_yard(world: World) -> None:
    body = await world.overview("tech-a-lotus")  # their area: the compound
    assert body["node"]["path"] == LOTUS
    assert body["grids"] is None
    children = by_path(body["children"])
    assert set(children) == {f"{LOTUS}/b1", f"{LOTUS}/b2"}
    assert children[f"{LOTUS}/b1"]["alarms"] == {
        "critical": 1,
        "warning": 2,
        "info": 0,
        "total": 3,
    }
    assert children[f"{LOTUS}/b2"]["devices"]["total"] == 0
    here = body["here"]  # the manhole, the bin and the fence stand in the compound's yard
    assert here["alarms"] == {"critical": 0, "warning": 0, "info": 1, "total": 1}
    assert here["devices"] == {
        "critical": 0,
        "warning": 0,
        "info": 1,
        "none": 2,
        "offline": 0,
        "total": 3,
    }
    assert here["gateways"]["total"] == 1
    plans = {c["path"]: c["plan"] for c in body["children"]}
    assert plans[f"{LOTUS}/b1"] == {"x": 20, "y": 20, "w": 60, "h": 30}


async def test_a_grid_member_sees_their_grid_only(world: World) -> None:
    body = await world.overview("grid-member")
    assert body["node"]["path"] == "d1/s1/c1/g2"
    assert body["grids"] is None
    assert [c["path"] for c in body["children"]] == [PINE]
    assert body["node"]["figures"]["alarms"]["total"] == 2
    for outside in ["d1/s1/c1/g1", STREET, "d1", LOTUS]:
        response = await world.get("grid-member", "/api/v1/overview", site=outside)
        assert _is_problem(response, 404), (outside, response.text)


@pytest.mark.parametrize(
    ("user", "site", "status"),
    [
        ("street-officer", "d1/s2", 404),  # another street
        ("street-officer", "d1", 404),  # above the area
        ("street-officer", "d1/s10", 404),  # a prefix, not a segment
        ("admin", "d9", 404),  # unknown
        ("op-a", PINE, 404),  # another company's compound
        ("admin", "d1//s1", 422),
        ("admin", "d1/ s1", 422),
        ("admin", "a/b/c/d/e/f/g/h", 422),
        ("admin", "d1/s1\x07", 422),
    ],
)
async def test_hostile_nodes_are_refused(world: World, user: str, site: str, status: int) -> None:
    response = await world.get(user, "/api/v1/overview", site=site)
    assert _is_problem(response, status), response.text
    name = site.replace("\x07", "%07")
    path = quote(name, safe="/%")
    response = await world.get(user, f"/api/v1/plans/{path}.svg")
    assert _is_problem(response, status), (site, response.text)


async def test_residents_read_neither(world: World) -> None:
    for path in ["/api/v1/overview", f"/api/v1/plans/{LOTUS}.svg"]:
        assert _is_problem(await world.get("resident-a", path), 403)
        assert _is_problem(await world.client.get(path), 401)


async def test_the_plan_of_a_compound_colours_each_device(world: World) -> None:
    root = await world.plan("street-officer", LOTUS)
    markers = {
        g.attrib["data-device-id"]: g for g in root.iterfind(".//svg:g[@data-device-id]", NS)
    }
    assert set(markers) == {"a-smoke-1", "a-smoke-2", "a-manhole", "a-bin", "a-fence"}
    expected = {
        "a-smoke-1": ("critical", "circle", "2"),
        "a-smoke-2": ("warning", "circle", "1"),
        "a-manhole": ("info", "square", "1"),
        "a-bin": ("none", "triangle", "0"),  # its alarm is inhibited
        "a-fence": ("none", "diamond", "0"),
    }
    for device, (severity, marker, count) in expected.items():
        group = markers[device]
        assert group.attrib["data-severity"] == severity, device
        assert group.attrib["data-marker"] == marker
        assert group.attrib["data-open-alarms"] == count
        (shape,) = [c for c in group if not c.tag.endswith("title")]
        assert shape.attrib["fill"] == SEVERITY_FILL[severity]
    sites_drawn = {
        g.attrib["data-site-path"]: g for g in root.iterfind(".//svg:g[@class='site']", NS)
    }
    assert set(sites_drawn) == {f"{LOTUS}/b1", f"{LOTUS}/b2"}
    label = sites_drawn[f"{LOTUS}/b1"].find("svg:text", NS)
    assert label is not None
    assert label.text == "name of b1"
    # the same for the company's technician; nothing of it for the other company
    assert len(list((await world.plan("tech-a-lotus", LOTUS)).iter(f"{{{SVG_NS}}}circle"))) == 2
    assert _is_problem(await world.get("sup-b", f"/api/v1/plans/{LOTUS}.svg"), 404)
    pine = await world.plan("sup-b", PINE)
    severities = {
        g.attrib["data-device-id"]: g.attrib["data-severity"]
        for g in pine.iterfind(".//svg:g[@data-device-id]", NS)
    }
    assert severities == {"b-smoke": "critical", "b-bin": "warning"}


async def test_devices_behind_an_offline_gateway_are_grey(world: World) -> None:
    root = await world.plan("op-a", OAK)
    (group,) = root.iterfind(".//svg:g[@data-device-id]", NS)
    assert group.attrib["data-device-id"] == "a-oak"
    assert group.attrib["data-offline"] == "true"
    (shape,) = [c for c in group if not c.tag.endswith("title")]
    assert shape.attrib["fill"] == OFFLINE_FILL


async def test_a_plan_above_a_compound_shows_the_places_without_devices(world: World) -> None:
    root = await world.plan("street-officer", "d1/s1/c1/g1")
    assert [g.attrib["data-site-path"] for g in root.iterfind(".//svg:g[@class='site']", NS)] == [
        LOTUS
    ]
    assert list(root.iterfind(".//svg:g[@data-device-id]", NS)) == []


async def test_a_hostile_site_name_stays_text(world: World) -> None:
    async with world.engine.begin() as conn:
        await conn.execute(
            update(sites).where(sites.c.path == f"{LOTUS}/b1").values(name=HOSTILE + "\x07")
        )
    response = await world.get("admin", f"/api/v1/plans/{LOTUS}.svg")
    assert "<script" not in response.text
    root = ET.fromstring(response.text)  # noqa: S314 - well-formed despite the name
    assert all(not element.tag.endswith("script") for element in root.iter())
    label = root.find(".//svg:g[@data-site-path='" + f"{LOTUS}/b1" + "']/svg:text", NS)
    assert label is not None
    assert label.text == HOSTILE
    body = await world.overview("admin", site=LOTUS)
    assert by_path(body["children"])  # the JSON carries the name as it is
    assert [c["name"] for c in body["children"] if c["path"] == f"{LOTUS}/b1"] == [HOSTILE + "\x07"]


def _is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers.get("content-type") == PROBLEM_JSON
        and response.json().get("status") == status
    )
