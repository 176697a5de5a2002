"""SLA breaches: the scheduler escalates overdue orders one level per limit and tells that level;
several schedulers on PostgreSQL escalate each breach once; a hold is asked for, approved, denied
and resumed with the time that was left.

Time is a `ManualClock`; every order is at `HERE` (district d1, street s1, community c1, grid g1),
and notification subscriptions for each level's area show who is told.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiohttp import web
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest import migrations
from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.service import add_user
from cloud_ingest.clock import ManualClock
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.db import WRITE_TRANSACTION, create_engine
from cloud_ingest.infra.schema import (
    notification_channels,
    notification_deliveries,
    notification_subscriptions,
    work_order_escalations,
    work_order_events,
    work_orders,
)
from cloud_ingest.ingest.work_orders import AlarmInstanceChange
from cloud_ingest.main import create_app
from cloud_ingest.notify.worker import DeliveryWorker, WorkerSettings
from cloud_ingest.work_orders.breaches import BreachScheduler, escalate_order
from cloud_ingest.work_orders.lifecycle import (
    ActionForbiddenError,
    IllegalActionError,
    OrderFacts,
    SlaClock,
    State,
    decide,
)
from cloud_ingest.work_orders.service import WorkOrders
from cloud_ingest.work_orders.sla import default_policy

SH = ZoneInfo("Asia/Shanghai")
HERE = "d1/s1/c1/g1"
WATER = {"category": "water"}  # working hours: acceptance 15 min, handling 1 working day
FIRE = {"category": "fire", "priority": "urgent"}  # wall time: acceptance 2 min
AREAS = {"grid": HERE, "community": "d1/s1/c1", "street": "d1/s1", "district": "d1"}
SUP = User("sup-a", Role.SUPERVISOR, "A", "")
OP = User("op-a", Role.OPERATOR, "A", "")
TECH = User("tech-a", Role.TECHNICIAN, "A", "")


def sh(day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall time in December 2026 (the 7th is a Monday)."""
    return datetime(2026, 12, day, hour, minute, tzinfo=SH)


def change(
    at: datetime, hint: Mapping[str, object], *, n: int = 1, location: str = HERE
) -> AlarmInstanceChange:
    return AlarmInstanceChange(
        fingerprint=f"gw-a/dev-{n}/alarm",
        gateway_id="gw-a",
        device_id=f"dev-{n}",
        rule_id="alarm",
        location=location,
        state="firing",
        severity="critical",
        last_seq=1,
        last_event_at=at,
        valid_until=None,
        work_order=hint,
        stale=False,
    )


async def prepare(engine: AsyncEngine, hook: str = "http://127.0.0.1:9/hook") -> None:
    """Gateway gw-a of company A, and one channel subscribed per level's area."""
    await add_gateway(engine, "gw-a", company="A", site="d1")
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        for level, area in AREAS.items():
            channel = (
                await conn.execute(
                    insert(notification_channels)
                    .values(
                        company="A",
                        name=level,
                        kind="webhook",
                        target=hook,
                        options={},
                        created_at=now,
                    )
                    .returning(notification_channels.c.id)
                )
            ).scalar_one()
            await conn.execute(
                insert(notification_subscriptions).values(
                    channel_id=channel, company="", topic="work_order.*", area=area, created_at=now
                )
            )


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await migrations.upgrade(engine)
    await prepare(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def the_order(engine: AsyncEngine, order_id: int | None = None) -> dict[str, Any]:
    async with engine.connect() as conn:
        query = select(work_orders).order_by(work_orders.c.id)
        if order_id is not None:
            query = query.where(work_orders.c.id == order_id)
        return dict((await conn.execute(query.limit(1))).mappings().one())


async def rows(engine: AsyncEngine, table: Any, order_id: int) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(table).where(table.c.order_id == order_id).order_by(table.c.id)
        )
        return [dict(r) for r in result.mappings()]


async def told(engine: AsyncEngine, topic: str = "work_order.breach") -> dict[str, list[Any]]:
    """The payloads queued per channel (named after its level) for `topic`."""
    async with engine.connect() as conn:
        result = await conn.execute(
            select(notification_channels.c.name, notification_deliveries.c.payload)
            .join(
                notification_channels,
                notification_channels.c.id == notification_deliveries.c.channel_id,
            )
            .where(notification_deliveries.c.topic == topic)
            .order_by(notification_deliveries.c.id)
        )
        by_level: dict[str, list[Any]] = {level: [] for level in AREAS}
        for name, payload in result:
            by_level[name].append(payload)
        return by_level


# --- climbing the levels -------------------------------------------------------------------------


async def test_a_working_hours_order_climbs_one_level_per_limit_and_each_level_is_told(
    engine: AsyncEngine,
) -> None:
    clock = ManualClock(sh(7, 17, 50))
    await WorkOrders(engine, clock=clock).alarm_instances_changed([change(clock.now(), WATER)])
    order = await the_order(engine)
    assert order["due_at"] == sh(8, 9, 5)  # 10 working minutes today, 5 tomorrow
    scheduler = BreachScheduler(engine, clock=clock)

    clock.set(sh(7, 23, 0))  # five wall hours later: still ten working minutes
    assert await scheduler.run_once() == []
    clock.set(sh(8, 9, 5))
    (first,) = await scheduler.run_once()
    assert (first.step.from_level, first.step.to_level) == ("grid", "community")
    assert (first.target, first.next_due_at) == ("d1/s1/c1", sh(8, 9, 20))
    assert await scheduler.run_once() == []  # done once

    clock.set(sh(8, 9, 19))
    assert await scheduler.run_once() == []
    clock.set(sh(8, 9, 20))
    (second,) = await scheduler.run_once()
    assert (second.step.to_level, second.target) == ("street", "d1/s1")

    order = await the_order(engine)
    assert (order["state"], order["escalation_level"]) == ("NEW", 2)
    assert order["due_at"] == sh(8, 9, 35)
    history = await rows(engine, work_order_events, order["id"])
    assert [e["action"] for e in history] == ["open", "breach", "breach"]
    assert [e["seq"] for e in history] == [1, 2, 3] == [1, 2, order["version"]]
    breach = history[1]
    assert (breach["actor"], breach["from_state"], breach["to_state"]) == ("system", "NEW", "NEW")
    assert breach["data"]["stage"] == "acceptance"
    assert (breach["data"]["from_level"], breach["data"]["to_level"]) == ("grid", "community")
    assert breach["data"]["target"] == "d1/s1/c1"
    assert "escalated from grid to community" in breach["reason"]
    escalations = await rows(engine, work_order_escalations, order["id"])
    assert [e["key"] for e in escalations] == [
        f"{order['id']}:acceptance:grid",
        f"{order['id']}:acceptance:community",
    ]
    assert [e["due_at"] for e in escalations] == [sh(8, 9, 5), sh(8, 9, 20)]

    # the community is told of the first; the street of the second (and, being wider, the first);
    # the grid the order left is not told
    got = await told(engine)
    assert [p["data"]["level"] for p in got["community"]] == ["community"]
    assert [p["data"]["level"] for p in got["street"]] == ["community", "street"]
    assert [p["location"] for p in got["street"]] == ["d1/s1/c1", "d1/s1"]
    assert got["grid"] == []
    assert got["district"] == got["street"]
    payload = got["street"][1]
    assert payload["data"]["location"] == HERE
    assert payload["severity"] == "warning"  # a P3 order's breach is at least a warning
    assert "escalated to the street" in payload["title"]
    assert (scheduler.stats.escalations, scheduler.stats.failures) == (2, 0)


async def test_a_fire_escalates_on_wall_time_and_the_district_is_told_again(
    engine: AsyncEngine,
) -> None:
    clock = ManualClock(sh(12, 23, 0))  # a Saturday night
    await WorkOrders(engine, clock=clock).alarm_instances_changed([change(clock.now(), FIRE)])
    order = await the_order(engine)
    assert order["due_at"] == sh(12, 23, 2)
    scheduler = BreachScheduler(engine, clock=clock)
    clock.advance(timedelta(minutes=1, seconds=59))
    assert await scheduler.run_once() == []
    steps: list[tuple[str, bool, str]] = []
    for _ in range(5):
        clock.set(sh(12, 23, 2 + 2 * len(steps)))
        (escalation,) = await scheduler.run_once()
        steps.append((escalation.step.to_level, escalation.step.exhausted, escalation.target))
    assert steps == [
        ("community", False, "d1/s1/c1"),
        ("street", False, "d1/s1"),
        ("district", False, "d1"),
        ("district", True, "d1"),
        ("district", True, "d1"),
    ]
    order = await the_order(engine)
    assert (order["escalation_level"], order["due_at"]) == (3, sh(12, 23, 12))
    keys = [e["key"] for e in await rows(engine, work_order_escalations, order["id"])]
    assert len(set(keys)) == 5
    assert keys[3].startswith(f"{order['id']}:acceptance:district@")
    got = await told(engine)
    assert [p["severity"] for p in got["district"]] == ["critical"] * 5
    assert len(got["community"]) == 1
    assert (scheduler.stats.escalations, scheduler.stats.renotified) == (3, 2)

    # accepting starts the dispatch stage: its breach is told at the district again
    order = await WorkOrders(engine, clock=clock).act(order["id"], "accept", OP, {})
    assert order["due_at"] == clock.now() + timedelta(minutes=5)
    clock.advance(timedelta(minutes=5))
    (escalation,) = await scheduler.run_once()
    assert (escalation.step.stage.value, escalation.step.exhausted) == ("dispatch", True)


async def test_a_manual_escalation_is_told_to_the_level_it_reaches(engine: AsyncEngine) -> None:
    clock = ManualClock(sh(7, 10, 0))
    service = WorkOrders(engine, clock=clock)
    await service.alarm_instances_changed([change(clock.now(), WATER)])
    order = await the_order(engine)
    await service.act(order["id"], "escalate", TECH, {"reason": "needs the community's help"})
    got = await told(engine, "work_order.escalate")
    assert len(got["community"]) == len(got["street"]) == 1
    assert got["grid"] == []
    (payload,) = got["community"]
    assert (payload["location"], payload["data"]["target"]) == ("d1/s1/c1", "d1/s1/c1")
    assert payload["data"]["reason"] == "needs the community's help"
    # a later breach starts from the level the order was raised to
    clock.advance(timedelta(minutes=15))
    (escalation,) = await BreachScheduler(engine, clock=clock).run_once()
    assert (escalation.step.from_level, escalation.step.to_level) == ("community", "street")


# --- several processes on PostgreSQL -------------------------------------------------------------


async def test_concurrent_schedulers_escalate_each_breach_once(postgres_url: str) -> None:
    engines = [create_engine(postgres_url) for _ in range(3)]
    try:
        await migrations.upgrade(engines[0])
        await prepare(engines[0])
        clock = ManualClock(sh(12, 23, 0))
        service = WorkOrders(engines[0], clock=clock)
        count = 20
        await service.alarm_instances_changed(
            [change(clock.now(), FIRE, n=i, location=f"d1/s1/c1/g{i}") for i in range(count)]
        )
        schedulers = [BreachScheduler(e, clock=clock) for e in engines]
        for minutes in (2, 4):
            clock.set(sh(12, 23, minutes))
            await asyncio.gather(*(s.run_once() for s in schedulers for _ in range(2)))
        assert sum(s.stats.escalations for s in schedulers) == 2 * count
        assert sum(s.stats.failures for s in schedulers) == 0

        async with engines[0].connect() as conn:
            ids = list((await conn.execute(select(work_orders.c.id))).scalars())
        assert len(ids) == count
        for order_id in ids:
            order = await the_order(engines[0], order_id)
            assert order["escalation_level"] == 2
            history = await rows(engines[0], work_order_events, order_id)
            assert [e["action"] for e in history] == ["open", "breach", "breach"]
            escalations = await rows(engines[0], work_order_escalations, order_id)
            assert [e["to_level"] for e in escalations] == ["community", "street"]
        got = await told(engines[0])
        assert len(got["community"]) == count  # one delivery per breach told to the community
        assert len(got["street"]) == 2 * count
    finally:
        for e in engines:
            await e.dispose()


async def test_a_breach_another_transaction_holds_is_left_to_it(postgres_url: str) -> None:
    """Both read the overdue order before either commits: the second waits on the first's key,
    then finds it taken and does nothing."""
    one, two = create_engine(postgres_url), create_engine(postgres_url)
    try:
        await migrations.upgrade(one)
        await prepare(one)
        clock = ManualClock(sh(12, 23, 0))
        await WorkOrders(one, clock=clock).alarm_instances_changed([change(clock.now(), FIRE)])
        order = await the_order(one)
        now, policy = sh(12, 23, 3), default_policy()
        async with one.connect() as a, two.connect() as b:
            first_tx = await a.begin()
            first = await escalate_order(a, order["id"], now, policy)
            assert first is not None
            second_tx = await b.begin()
            second = asyncio.create_task(escalate_order(b, order["id"], now, policy))
            await asyncio.sleep(0.3)
            assert not second.done()  # waiting on the first's uncommitted key
            await first_tx.commit()
            assert await asyncio.wait_for(second, 10) is None
            await second_tx.commit()
        assert [e["action"] for e in await rows(one, work_order_events, order["id"])] == [
            "open",
            "breach",
        ]
        assert len((await told(one))["community"]) == 1
    finally:
        await one.dispose()
        await two.dispose()


# --- a hold --------------------------------------------------------------------------------------


async def in_progress(engine: AsyncEngine, clock: ManualClock) -> tuple[WorkOrders, int]:
    service = WorkOrders(engine, clock=clock)
    await add_user(engine, TECH.name, role="technician", company="A")
    await service.alarm_instances_changed([change(clock.now(), WATER)])
    order_id = int((await the_order(engine))["id"])
    await service.act(order_id, "accept", OP, {})
    await service.act(order_id, "dispatch", OP, {"assignee": "tech-a"})
    await service.act(order_id, "start", TECH, {})
    return service, order_id


async def test_an_approved_hold_stops_the_clock_and_resume_gives_back_the_time_left(
    engine: AsyncEngine,
) -> None:
    clock = ManualClock(sh(7, 10, 0))  # Monday 10:00
    service, order_id = await in_progress(engine, clock)
    due = (await the_order(engine))["due_at"]
    assert due == sh(8, 10, 0)  # one working day of handling: 8 working hours

    clock.set(sh(7, 15, 0))
    held = await service.act(order_id, "hold", TECH, {"reason": "waiting for a spare pump"})
    assert (held["state"], held["due_at"]) == ("ON_HOLD", due)  # pending: the clock runs
    with pytest.raises(ActionForbiddenError):
        await service.act(order_id, "approve_hold", TECH, {})

    clock.set(sh(7, 16, 0))  # 3 working hours left: 16-18 today, 9-10 tomorrow
    approved = await service.act(order_id, "approve_hold", SUP, {})
    assert (approved["state"], approved["due_at"]) == ("ON_HOLD", None)
    assert (approved["hold_approved_at"], approved["hold_due_at"]) == (sh(7, 16, 0), due)
    for action, payload in (("approve_hold", {}), ("deny_hold", {"reason": "no"})):
        with pytest.raises(IllegalActionError) as err:
            await service.act(order_id, action, SUP, payload)
        assert "approve_hold" not in err.value.allowed
        assert "resume" in err.value.allowed

    clock.set(sh(9, 9, 0))  # long after the due time it had: a held order does not breach
    assert await BreachScheduler(engine, clock=clock).run_once() == []
    resumed = await service.act(order_id, "resume", TECH, {})
    assert resumed["state"] == "IN_PROGRESS"
    assert resumed["due_at"] == sh(9, 12, 0)
    assert (resumed["hold_approved_at"], resumed["hold_due_at"]) == (None, None)
    history = await rows(engine, work_order_events, order_id)
    assert [e["action"] for e in history][-3:] == ["hold", "approve_hold", "resume"]


async def test_a_pending_hold_runs_on_and_a_denied_one_keeps_its_due_time(
    engine: AsyncEngine,
) -> None:
    clock = ManualClock(sh(7, 10, 0))
    service, order_id = await in_progress(engine, clock)
    due = (await the_order(engine))["due_at"]
    clock.set(sh(7, 15, 0))
    await service.act(order_id, "hold", TECH, {"reason": "the resident is away"})

    clock.set(due)  # still pending when the handling stage falls due: it escalates
    (escalation,) = await BreachScheduler(engine, clock=clock).run_once()
    assert (escalation.step.stage.value, escalation.step.to_level) == ("handling", "community")
    escalated_due = (await the_order(engine))["due_at"]
    assert escalated_due == escalation.next_due_at == sh(9, 10, 0)  # one more working day

    denied = await service.act(order_id, "deny_hold", SUP, {"reason": "go back today"})
    assert (denied["state"], denied["due_at"]) == ("IN_PROGRESS", escalated_due)
    with pytest.raises(IllegalActionError):
        await service.act(order_id, "deny_hold", SUP, {"reason": "again"})

    # a hold withdrawn before approval (resume) keeps the due time too
    await service.act(order_id, "hold", TECH, {"reason": "rain"})
    withdrawn = await service.act(order_id, "resume", TECH, {})
    assert (withdrawn["state"], withdrawn["due_at"]) == ("IN_PROGRESS", escalated_due)
    # and an approved hold, when cancelled, leaves no hold behind
    await service.act(order_id, "hold", TECH, {"reason": "rain again"})
    await service.act(order_id, "approve_hold", SUP, {})
    cancelled = await service.act(order_id, "cancel", SUP, {"reason": "duplicate"})
    assert (cancelled["due_at"], cancelled["hold_approved_at"]) == (None, None)


# --- in the running application, with the real delivery worker ----------------------------------


@dataclass
class Hook:
    """A webhook receiver on 127.0.0.1 keeping every JSON body."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def receive(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return web.json_response({"ok": True})


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    state = Hook()
    app = web.Application()
    app.router.add_post("/hook", state.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_the_app_runs_the_scheduler_and_the_escalation_reaches_a_webhook(
    tmp_path: Path, hook: Hook
) -> None:
    flags = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/steward.db",
        "alarm_sweep_interval_s": 0,
        "notify_worker": False,
        "sla_breach_interval_s": 0.05,
    }
    app = create_app(load_settings(environ={}, flags=flags))
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        engine: AsyncEngine = app.state.engine
        await prepare(engine, hook.url)
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)  # its 2 minutes are long gone
        clock = ManualClock(an_hour_ago)
        await WorkOrders(engine, clock=clock).alarm_instances_changed([change(an_hour_ago, FIRE)])
        order_id = int((await the_order(engine))["id"])
        for _ in range(500):  # the scheduler runs every 50 ms
            if await rows(engine, work_order_escalations, order_id):
                break
            await asyncio.sleep(0.02)
        scheduler: BreachScheduler = app.state.breach_scheduler
        assert scheduler.stats.escalations >= 1
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wo") as client:
            metrics = (await client.get("/metrics")).text
        assert "steward_ingest_sla_breaches_escalations_total" in metrics

        worker = DeliveryWorker(engine, WorkerSettings())
        try:
            async with engine.connect() as connection:
                conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
                async with conn.begin():
                    await conn.execute(
                        notification_deliveries.delete().where(
                            notification_deliveries.c.topic != "work_order.breach"
                        )
                    )
            await worker.run_once()
        finally:
            await worker.stop()
    sent = [b for b in hook.bodies if b["data"].get("level") == "community"]
    assert sent
    assert sent[0]["topic"] == "work_order.breach"
    assert sent[0]["location"] == "d1/s1/c1"
    assert sent[0]["data"]["id"] == order_id


@pytest.mark.parametrize(
    ("state", "action", "approved", "clock"),
    [
        (State.IN_PROGRESS, "hold", False, SlaClock.KEEP),
        (State.ON_HOLD, "approve_hold", False, SlaClock.PAUSE),
        (State.ON_HOLD, "deny_hold", False, SlaClock.KEEP),
        (State.ON_HOLD, "resume", False, SlaClock.KEEP),
        (State.ON_HOLD, "resume", True, SlaClock.RESUME),
        (State.ON_HOLD, "comment", True, SlaClock.RESTART),
        (State.ON_HOLD, "cancel", True, SlaClock.RESTART),
        (State.IN_PROGRESS, "submit", False, SlaClock.RESTART),
    ],
)
def test_what_each_action_does_to_the_sla_clock(
    state: State, action: str, approved: bool, clock: SlaClock
) -> None:
    facts = OrderFacts(state, assignee="sup", hold_approved=approved)
    payload = {"reason": "r", "comment": "c", "result": "done"}
    decision = decide(facts, action, "sup", Role.SUPERVISOR, payload)
    assert decision.sla_clock is clock
    leaves_hold = state is State.ON_HOLD and decision.to_state is not State.ON_HOLD
    cleared = {"hold_approved_at": None, "hold_due_at": None}
    assert (cleared.items() <= decision.changes.items()) is (leaves_hold or action == "hold")
