"""Work orders: alarms into orders (grouping, redelivery), the lifecycle through the API, requests,
scoping, and concurrent actions on PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from images import png
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest import migrations
from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.service import add_user
from cloud_ingest.clock import ManualClock
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.db import create_engine
from cloud_ingest.infra.schema import (
    notification_channels,
    notification_deliveries,
    notification_subscriptions,
    stream_events,
    work_order_alarms,
    work_order_events,
    work_orders,
)
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.work_orders import AlarmInstanceChange
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON
from cloud_ingest.work_orders.service import WorkOrders
from core.envelope_json import dumps
from core.types import AlarmEvent, AlarmState, Envelope, Priority, Severity, WorkOrderHint

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai
FIRE = {"category": "fire", "priority": "urgent"}
BIN = {"category": "sanitation", "priority": "normal"}
HERE = "d1/s1/c1/g1"


def change(
    fingerprint: str = "gw-a/dev-1/smoke_alarm",
    seq: int = 1,
    state: str = "firing",
    *,
    location: str = HERE,
    rule_id: str | None = None,
    severity: str = "critical",
    hint: Mapping[str, object] | None = FIRE,
    at: datetime = T0,
    stale: bool = False,
    gateway: str = "gw-a",
) -> AlarmInstanceChange:
    return AlarmInstanceChange(
        fingerprint=fingerprint,
        gateway_id=gateway,
        device_id=fingerprint.split("/")[1],
        rule_id=rule_id or fingerprint.rsplit("/", maxsplit=1)[-1],
        location=location,
        state=state,
        severity=severity,
        last_seq=seq,
        last_event_at=at,
        valid_until=None,
        work_order=hint,
        stale=stale,
    )


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await migrations.upgrade(engine)
    await add_gateway(engine, "gw-a", company="A", site="d1")
    await add_gateway(engine, "gw-b", company="B", site="d1")
    try:
        yield engine
    finally:
        await engine.dispose()


async def orders(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(work_orders).order_by(work_orders.c.id))
        return [dict(r) for r in rows.mappings()]


async def events(engine: AsyncEngine, order_id: int) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(work_order_events)
            .where(work_order_events.c.order_id == order_id)
            .order_by(work_order_events.c.seq)
        )
        return [dict(r) for r in rows.mappings()]


def assert_consistent(order: Mapping[str, Any], history: list[dict[str, Any]]) -> None:
    """seq gap-free from 1, each event from the state the previous left, version == events."""
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
    assert history[0]["from_state"] is None
    for before, after in itertools.pairwise(history):
        assert after["from_state"] == before["to_state"], (before, after)
    assert order["version"] == len(history)
    assert order["state"] == history[-1]["to_state"]


# --- alarms into orders -------------------------------------------------------------------------


async def test_an_alarm_opens_one_order_despite_redelivery_and_flapping(
    engine: AsyncEngine,
) -> None:
    service = WorkOrders(engine, clock=ManualClock(T0))
    first = change()
    await service.alarm_instances_changed([first])
    await service.alarm_instances_changed([first])  # redelivered
    flaps = [
        change(seq=s, state=st, at=T0 + timedelta(minutes=s))
        for s, st in [(2, "resolved"), (3, "firing"), (4, "resolved"), (5, "firing")]
    ]
    await service.alarm_instances_changed(flaps)
    await service.alarm_instances_changed([first, *flaps])  # all of it again

    (order,) = await orders(engine)
    assert re.fullmatch(r"WO-20261207-0001", order["number"])
    assert (order["source"], order["category"], order["priority"]) == ("alarm", "fire", "P1")
    assert (order["company"], order["location"], order["state"]) == ("A", HERE, "NEW")
    assert order["fingerprint"] == first.fingerprint
    history = await events(engine, order["id"])
    assert [e["action"] for e in history] == ["open", "alarm", "alarm", "alarm", "alarm"]
    assert [e["evidence"]["alarms"][0]["seq"] for e in history] == [1, 2, 3, 4, 5]
    assert_consistent(order, history)
    assert service.stats.duplicates == 6
    assert service.stats.orders_opened == 1


async def test_a_neighbouring_detector_attaches_within_the_window_and_not_after(
    engine: AsyncEngine,
) -> None:
    service = WorkOrders(engine, clock=ManualClock(T0))
    await service.alarm_instances_changed([change("gw-a/dev-1/smoke_alarm")])
    await service.alarm_instances_changed(
        [
            change("gw-a/dev-2/smoke_alarm", at=T0 + timedelta(minutes=10)),  # neighbour
            change("gw-a/dev-3/smoke_alarm", location="d1/s1/c1/g2"),  # elsewhere
            change(
                "gw-a/dev-4/water_leak",
                rule_id="water_leak",
                hint={"category": "water"},
                severity="warning",
            ),
        ]
    )
    later = T0 + timedelta(minutes=10 + 31)
    await service.alarm_instances_changed([change("gw-a/dev-5/smoke_alarm", at=later)])

    rows = await orders(engine)
    assert [(o["location"], o["category"]) for o in rows] == [
        (HERE, "fire"),
        ("d1/s1/c1/g2", "fire"),
        (HERE, "water"),
        (HERE, "fire"),
    ]
    async with engine.connect() as conn:
        attached = await conn.execute(
            select(work_order_alarms.c.fingerprint).where(
                work_order_alarms.c.order_id == rows[0]["id"]
            )
        )
        assert sorted(fp for (fp,) in attached) == [
            "gw-a/dev-1/smoke_alarm",
            "gw-a/dev-2/smoke_alarm",
        ]
    assert rows[2]["priority"] == "P3"  # a water hint without priority: normal


async def test_resolved_is_evidence_and_closes_only_a_self_verifying_category(
    engine: AsyncEngine,
) -> None:
    service = WorkOrders(engine, clock=ManualClock(T0))
    bin_fp = "gw-a/bin-1/bin_fill_high"
    await service.alarm_instances_changed(
        [change(), change(bin_fp, rule_id="bin_fill_high", severity="warning", hint=BIN)]
    )
    await service.alarm_instances_changed(
        [
            change(seq=2, state="resolved"),
            change(bin_fp, 2, "resolved", rule_id="bin_fill_high", severity="warning", hint=BIN),
        ]
    )
    fire, bin_order = await orders(engine)
    assert fire["state"] == "NEW"
    assert (await events(engine, fire["id"]))[-1]["data"]["alarm_state"] == "resolved"
    assert (bin_order["state"], bin_order["verifier"]) == ("CLOSED", "system")
    history = await events(engine, bin_order["id"])
    assert [e["action"] for e in history] == ["open", "alarm", "auto_verify"]
    assert_consistent(bin_order, history)


async def test_which_alarms_open_orders_and_at_what_priority(engine: AsyncEngine) -> None:
    service = WorkOrders(engine, clock=ManualClock(T0))
    await service.alarm_instances_changed(
        [
            change("gw-a/m-1/manhole_cover_moved", hint={"category": "manhole_cover"}),
            change(
                "gw-a/d-1/device_battery_low",
                location="d1/s1/c2",
                severity="warning",
                hint={"category": "device_maintenance", "priority": "low"},
            ),
            change("gw-a/d-2/temp_high", location="d1/s1/c3", severity="warning", hint=None),
            change("gw-a/d-3/door_open", location="d1/s1/c4", hint=None),  # critical
            change("gw-a/d-4/smoke_alarm", location="d1/s1/c5", stale=True),
            change("gw-a/d-5/smoke_alarm", location="d1/s1/c6", state="pending"),
            change("gw-a/d-6/smoke_alarm", location="d1/s1/c7", state="resolved"),
            change(
                "gw-b/d-7/device_offline",
                location="d1/s1/c8",
                state="no_data",
                severity="warning",
                hint={"category": "device_maintenance"},
                gateway="gw-b",
            ),
        ]
    )
    got = [
        (o["fingerprint"], o["category"], o["priority"], o["company"]) for o in await orders(engine)
    ]
    assert got == [
        ("gw-a/m-1/manhole_cover_moved", "manhole_cover", "P1", "A"),
        ("gw-a/d-1/device_battery_low", "device_maintenance", "P4", "A"),
        ("gw-a/d-3/door_open", "alarm", "P2", "A"),
        ("gw-b/d-7/device_offline", "device_maintenance", "P3", "B"),
    ]
    assert service.stats.ignored == 4


async def test_two_processes_delivering_one_group_open_one_order(engine: AsyncEngine) -> None:
    one, two = WorkOrders(engine), WorkOrders(engine)
    batch = [change(f"gw-a/dev-{i}/smoke_alarm", at=T0 + timedelta(seconds=i)) for i in range(6)]
    await asyncio.gather(
        one.alarm_instances_changed(batch),
        two.alarm_instances_changed(list(reversed(batch))),
        one.alarm_instances_changed(batch[::2]),
    )
    (order,) = await orders(engine)
    history = await events(engine, order["id"])
    assert len(history) == 6  # each change applied once
    assert_consistent(order, history)
    assert one.stats.failures == two.stats.failures == 0


async def test_every_change_is_streamed_in_its_transaction(engine: AsyncEngine) -> None:
    service = WorkOrders(engine, clock=ManualClock(T0))
    await service.alarm_instances_changed([change(), change(seq=2, state="resolved")])
    (order,) = await orders(engine)
    async with engine.connect() as conn:
        streamed = await conn.execute(
            select(stream_events.c.data)
            .where(stream_events.c.kind == "work_order", stream_events.c.key == str(order["id"]))
            .order_by(stream_events.c.id)
        )
        assert [d["action"] for (d,) in streamed] == ["open", "alarm"]


# --- the API ------------------------------------------------------------------------------------

USERS = {
    "admin": ("admin", None, None),
    "op-a": ("operator", "A", None),
    "sup-a": ("supervisor", "A", None),
    "tech-a": ("technician", "A", "d1/s1"),
    "tech-a2": ("technician", "A", None),
    "resident-a": ("resident", "A", "d1/s1/c1/g1/b1"),
    "resident-a2": ("resident", "A", "d1/s1/c1/g1/b2"),
    "op-b": ("operator", "B", None),
    "tech-b": ("technician", "B", None),
}


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def service(self) -> WorkOrders:
        service: WorkOrders = self.app.state.work_orders
        return service

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    async def get(self, user: str, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.headers(user))

    async def post(self, user: str, path: str, body: Mapping[str, Any]) -> httpx.Response:
        return await self.client.post(path, json=dict(body), headers=self.headers(user))

    async def act(self, user: str, order_id: int, action: str, **fields: Any) -> httpx.Response:
        path = f"/api/v1/work-orders/{order_id}/actions"
        return await self.post(user, path, {"action": action, **fields})

    async def photo(self, user: str, name: str) -> str:
        """Upload a photo (a small PNG made by `name`) as `user`; its hash."""
        headers = {**self.headers(user), "Content-Type": "image/png"}
        answer = await self.client.post(
            "/api/v1/photos", content=png(salt=name.encode()), headers=headers
        )
        assert answer.status_code in {200, 201}, answer.text
        sha256: str = answer.json()["sha256"]
        return sha256

    async def ok(self, user: str, order_id: int, action: str, **fields: Any) -> dict[str, Any]:
        response = await self.act(user, order_id, action, **fields)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def serving(url: str) -> AsyncIterator[Api]:
    flags = {
        "database_url": url,
        "migrate_on_start": True,
        "alarm_sweep_interval_s": 0,
        "notify_worker": False,
    }
    app = create_app(load_settings(environ={}, flags=flags))
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://wo") as client:
            api = Api(client, app)
            engine = app.state.engine
            await add_gateway(engine, "gw-a", company="A", site="d1")
            await add_gateway(engine, "gw-b", company="B", site="d1")
            for name, (role, company, area) in USERS.items():
                api.tokens[name] = await add_user(
                    engine, name, role=role, company=company, area=area
                )
            yield api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(f"sqlite+aiosqlite:///{tmp_path}/steward.db") as api:
        yield api


async def fire_order(api: Api) -> int:
    await api.service.alarm_instances_changed([change()])
    page = (await api.get("op-a", "/api/v1/work-orders", category="fire")).json()
    order_id: int = page["items"][0]["id"]
    return order_id


async def test_an_ingested_alarm_opens_an_order_in_the_running_app(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    event = AlarmEvent(
        fingerprint="gw-a/dev-9/smoke_alarm",
        seq=1,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=now - timedelta(minutes=1),
        at=now,
        rule_id="smoke_alarm",
        device_id="dev-9",
        location=HERE,
        description="smoke in the stairwell",
        valid_until=now + timedelta(minutes=5),
        work_order=WorkOrderHint("fire", Priority.URGENT),
    )
    envelope = Envelope(gateway_id="gw-a", batch_id=uuid4(), sent_at=now, alarm_events=(event,))
    message = Incoming("steward/v1/gw-a/up", dumps(envelope), now)
    await api.app.state.ingest([message])
    await api.app.state.ingest([message])  # redelivered by the broker
    page = (await api.get("op-a", "/api/v1/work-orders")).json()
    (order,) = page["items"]
    assert (order["fingerprint"], order["priority"], order["state"]) == (
        event.fingerprint,
        "P1",
        "NEW",
    )
    assert order["description"] == "smoke in the stairwell"
    assert order["version"] == 1
    assert order["due_at"] is not None


async def test_a_fire_goes_through_the_whole_loop_and_is_verified_by_someone_else(
    api: Api,
) -> None:
    order_id = await fire_order(api)
    await api.ok("op-a", order_id, "accept")
    order = await api.ok("op-a", order_id, "dispatch", assignee="tech-a")
    assert order["allowed_actions"] == ["cancel", "escalate", "comment"]  # an operator's
    await api.ok("tech-a", order_id, "start")
    put_out = await api.photo("tech-a", "put out")
    await api.ok("tech-a", order_id, "submit", result="put out", photos=[put_out])
    await api.ok("tech-a", order_id, "escalate", reason="needs the fire brigade's report")

    # the handler may not verify their own work, whatever their role
    await api.ok("sup-a", order_id, "comment", comment="checking")
    same = await api.act("tech-a", order_id, "verify")
    assert same.status_code == 403
    order = await api.ok("sup-a", order_id, "verify")
    assert (order["state"], order["handler"], order["verifier"]) == ("CLOSED", "tech-a", "sup-a")
    assert order["escalation_level"] == 1

    detail = (await api.get("sup-a", f"/api/v1/work-orders/{order_id}")).json()
    actions = [e["action"] for e in detail["events"]]
    assert actions == [
        "open",
        "accept",
        "dispatch",
        "start",
        "submit",
        "escalate",
        "comment",
        "verify",
    ]
    assert detail["events"][4]["evidence"] == {"photos": [put_out]}
    assert detail["events"][4]["data"] == {"result": "put out"}
    assert detail["version"] == len(detail["events"])
    assert detail["alarms"][0]["fingerprint"] == change().fingerprint

    # ... and it notified the subscribers of the steps people act on
    engine: AsyncEngine = api.app.state.engine
    async with engine.connect() as conn:
        topics = (
            await conn.execute(
                select(stream_events.c.data["action"].as_string()).where(
                    stream_events.c.key == str(order_id)
                )
            )
        ).scalars()
        assert list(topics) == actions


async def test_notifications_are_enqueued_for_subscribers(api: Api) -> None:
    engine: AsyncEngine = api.app.state.engine
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        channel = await conn.execute(
            notification_channels.insert()
            .values(
                name="console",
                kind="webhook",
                company="A",
                enabled=True,
                target="http://127.0.0.1:9/hook",
                options={},
                created_at=now,
            )
            .returning(notification_channels.c.id)
        )
        await conn.execute(
            notification_subscriptions.insert().values(
                channel_id=channel.scalar_one(),
                topic="work_order.*",
                min_severity="info",
                company="A",
                area="",
                role=None,
                enabled=True,
                created_at=now,
            )
        )
    order_id = await fire_order(api)
    await api.ok("op-a", order_id, "accept")
    await api.ok("op-a", order_id, "dispatch", assignee="tech-a")
    async with engine.connect() as conn:
        topics = (
            await conn.execute(
                select(notification_deliveries.c.topic).order_by(notification_deliveries.c.id)
            )
        ).scalars()
        assert list(topics) == ["work_order.open", "work_order.dispatch"]


async def test_an_illegal_action_is_409_with_the_state_and_allowed_actions(api: Api) -> None:
    order_id = await fire_order(api)
    response = await api.act("op-a", order_id, "verify")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["state"] == "NEW"
    assert body["allowed_actions"] == ["accept", "cancel", "escalate", "comment"]
    unknown = await api.act("op-a", order_id, "teleport")
    assert unknown.status_code == 409


async def test_cancel_needs_a_reason_and_a_stale_version_is_refused(api: Api) -> None:
    order_id = await fire_order(api)
    refused = await api.act("op-a", order_id, "cancel")
    assert refused.status_code == 422
    assert "reason" in refused.json()["detail"]
    await api.ok("op-a", order_id, "accept", expected_version=1)
    stale = await api.act("op-a", order_id, "cancel", reason="false alarm", expected_version=1)
    assert stale.status_code == 412
    assert (stale.json()["version"], stale.json()["state"]) == (2, "ACCEPTED")
    order = await api.ok("op-a", order_id, "cancel", reason="false alarm", expected_version=2)
    assert order["state"] == "CANCELLED"
    assert order["allowed_actions"] == ["comment"]


async def test_a_one_star_rating_sends_the_order_to_rework(api: Api) -> None:
    created = await api.post(
        "resident-a",
        "/api/v1/requests",
        {"text": "The stairwell light is out", "category": "lighting"},
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert (order["source"], order["requester"], order["location"]) == (
        "resident",
        "resident-a",
        "d1/s1/c1/g1/b1",
    )
    order_id = order["id"]
    for user, action, fields in [
        ("op-a", "accept", {}),
        ("op-a", "dispatch", {"assignee": "tech-a"}),
        ("tech-a", "start", {}),
        ("tech-a", "submit", {"result": "replaced the bulb"}),
        ("op-a", "verify", {}),
    ]:
        await api.ok(user, order_id, action, **fields)
    order = await api.ok("resident-a", order_id, "rate", rating=1, comment="still dark")
    assert (order["state"], order["rating"], order["rework_count"]) == ("REWORK", 1, 1)
    order = await api.ok("op-a", order_id, "dispatch", assignee="tech-a2")
    assert order["state"] == "DISPATCHED"


async def test_a_resident_request_and_a_12345_complaint_reach_follow_up(api: Api) -> None:
    resident = (
        await api.post(
            "resident-a",
            "/api/v1/requests",
            {
                "text": "Leaking pipe",
                "category": "water",
                "photos": [await api.photo("resident-a", "leak")],
            },
        )
    ).json()
    deadline = (T0 + timedelta(days=3)).isoformat()
    complaint_body = {
        "source": "hotline_12345",
        "text": "Noise from the building site at night",
        "location": "d1/s1/c1",
        "category": "noise",
        "external_ref": "12345-2026-000777",
        "external_deadline": deadline,
    }
    complaint = (await api.post("op-a", "/api/v1/requests", complaint_body)).json()
    again = (await api.post("op-a", "/api/v1/requests", complaint_body)).json()
    assert again["id"] == complaint["id"]  # a re-sent complaint is the same order
    assert complaint["external_ref"] == "12345-2026-000777"
    assert complaint["due_at"] is not None
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("op-a", "accept", {}),
        ("op-a", "dispatch", {"assignee": "tech-a"}),
        ("tech-a", "start", {}),
        ("tech-a", "submit", {"result": "done", "photos": [await api.photo("tech-a", "after")]}),
        ("sup-a", "verify", {}),
    ]
    for order in (resident, complaint):
        for user, action, fields in steps:
            await api.ok(user, order["id"], action, **fields)
    rated = await api.ok("resident-a", resident["id"], "rate", rating=5, comment="quick")
    assert rated["state"] == "RATED"
    await api.ok("op-a", complaint["id"], "rate", rating=4, comment="caller satisfied")
    for order in (resident, complaint):
        done = await api.ok("op-a", order["id"], "follow_up", comment="called back")
        assert done["state"] == "FOLLOWED_UP"


async def test_a_resident_sees_only_their_own_requests(api: Api) -> None:
    mine = (await api.post("resident-a", "/api/v1/requests", {"text": "Broken door"})).json()
    other = (await api.post("resident-a2", "/api/v1/requests", {"text": "Broken lift"})).json()
    await fire_order(api)
    listed = (await api.get("resident-a", "/api/v1/requests")).json()
    assert [o["id"] for o in listed["items"]] == [mine["id"]]
    assert (await api.get("resident-a", f"/api/v1/work-orders/{other['id']}")).status_code == 404
    assert (await api.get("resident-a", "/api/v1/work-orders")).status_code == 403
    staff = (await api.get("op-a", "/api/v1/requests")).json()
    assert {o["id"] for o in staff["items"]} == {mine["id"], other["id"]}
    outside = await api.post(
        "resident-a", "/api/v1/requests", {"text": "x", "location": "d1/s1/c1/g1/b2"}
    )
    assert outside.status_code == 403


async def test_another_company_cannot_see_or_act_on_an_order(api: Api) -> None:
    order_id = await fire_order(api)
    await api.ok("op-a", order_id, "accept")
    assert (await api.act("tech-b", order_id, "start")).status_code == 404
    assert (await api.act("op-b", order_id, "dispatch", assignee="tech-b")).status_code == 404
    assert (await api.get("op-b", f"/api/v1/work-orders/{order_id}")).status_code == 404
    assert (await api.get("op-b", "/api/v1/work-orders")).json()["items"] == []
    # a technician of the company, but not the assignee, may not start it either
    await api.ok("op-a", order_id, "dispatch", assignee="tech-a")
    assert (await api.act("tech-a2", order_id, "start")).status_code == 403
    unauthenticated = await api.client.get(f"/api/v1/work-orders/{order_id}")
    assert unauthenticated.status_code == 401


async def test_lists_filter_and_page(api: Api) -> None:
    await api.service.alarm_instances_changed(
        [change(f"gw-a/dev-{i}/smoke_alarm", location=f"d1/s1/c{i}") for i in range(5)]
    )
    first = (await api.get("op-a", "/api/v1/work-orders", limit=2)).json()
    second = (await api.get("op-a", "/api/v1/work-orders", limit=2, after=first["next"])).json()
    third = (await api.get("op-a", "/api/v1/work-orders", limit=2, after=second["next"])).json()
    ids = [o["id"] for page in (first, second, third) for o in page["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 5
    assert third["next"] is None
    located = (await api.get("op-a", "/api/v1/work-orders", location="d1/s1/c3")).json()
    assert [o["location"] for o in located["items"]] == ["d1/s1/c3"]
    new = (await api.get("op-a", "/api/v1/work-orders", state="NEW")).json()
    assert len(new["items"]) == 5
    closed = (await api.get("op-a", "/api/v1/work-orders", state="CLOSED")).json()
    assert closed["items"] == []
    assert (await api.get("op-a", "/api/v1/work-orders", after="bogus")).status_code == 400


# --- concurrency on PostgreSQL ------------------------------------------------------------------


async def test_fifty_concurrent_actions_leave_a_consistent_history(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=20, max_overflow=40)
    try:
        await migrations.upgrade(engine)
        await add_gateway(engine, "gw-a", company="A", site="d1")
        await add_user(engine, "tech-a", role="technician", company="A")
        service = WorkOrders(engine)
        await service.alarm_instances_changed([change()])
        ((order_id,),) = [(o["id"],) for o in await orders(engine)]
        sup = User("sup-a", Role.SUPERVISOR, "A", "")
        op = User("op-a", Role.OPERATOR, "A", "")
        tech = User("tech-a", Role.TECHNICIAN, "A", "")
        plan: list[tuple[User, str, dict[str, object], int | None]] = []
        for i in range(10):
            plan += [
                (op, "accept", {}, None),
                (op, "dispatch", {"assignee": "tech-a"}, None),
                (tech, "start", {}, None),
                (sup, "comment", {"comment": f"note {i}"}, None),
                (tech, "escalate", {"reason": f"late {i}"}, 1),  # only at version 1
            ]
        assert len(plan) == 50

        async def attempt(
            user: User, action: str, payload: dict[str, object], version: int | None
        ) -> str:
            try:
                await service.act(order_id, action, user, payload, version)
            except Exception as err:  # noqa: BLE001 - every outcome is counted below
                return type(err).__name__
            return "ok"

        outcomes = await asyncio.gather(*(attempt(*step) for step in plan))
        (order,) = await orders(engine)
        history = await events(engine, order_id)
        assert_consistent(order, history)
        assert outcomes.count("ok") == len(history) - 1
        assert set(outcomes) <= {"ok", "IllegalActionError", "VersionConflictError"}
        succeeded = [e["action"] for e in history[1:]]
        assert succeeded.count("accept") == succeeded.count("dispatch") == 1
        assert succeeded.count("start") == 1
        assert succeeded.count("comment") == 10
        assert succeeded.count("escalate") <= 1
        assert order["escalation_level"] == succeeded.count("escalate")
        async with engine.connect() as conn:
            streamed = await conn.scalar(
                select(func.count()).where(
                    stream_events.c.kind == "work_order", stream_events.c.key == str(order_id)
                )
            )
        assert streamed == len(history)
    finally:
        await engine.dispose()


async def test_the_api_on_postgresql(postgres_url: str) -> None:
    async with serving(postgres_url) as api:
        order_id = await fire_order(api)
        await api.ok("op-a", order_id, "accept")
        illegal = await api.act("op-a", order_id, "accept")
        assert (illegal.status_code, illegal.json()["state"]) == (409, "ACCEPTED")
        assert (await api.act("tech-b", order_id, "comment", comment="x")).status_code == 404
