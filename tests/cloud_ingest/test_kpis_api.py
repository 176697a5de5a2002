"""`GET /api/v1/kpis` and `/kpis.csv` on SQLite and PostgreSQL: orders driven through the work-order
service on a test clock, the figures each kind of user sees (a company its own, a street officer
every company in the street, a grid member the grid), lent technicians, validation and the CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.service import add_user
from cloud_ingest.clock import ManualClock
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.schema import work_order_events
from cloud_ingest.kpis.compute import EventRow, OrderRow, stage_runs
from cloud_ingest.kpis.router import kpi_service
from cloud_ingest.kpis.service import Kpis
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON
from cloud_ingest.work_orders.service import RequestInput, WorkOrders
from cloud_ingest.work_orders.sla import Stage, default_policy

T0: Final = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
RANGE: Final = {"from": "2026-12-07T00:00:00+08:00", "to": "2026-12-08T00:00:00+08:00"}
USERS: Final = {  # name: (role, company, area)
    "admin": ("admin", None, None),
    "op-a": ("operator", "A", None),
    "sup-a": ("supervisor", "A", None),
    "sup-b": ("supervisor", "B", None),
    "tech-a": ("technician", "A", None),
    "tech-b": ("technician", "B", None),
    "resident-a": ("resident", "A", "d1/s1/c1/g1/b1"),
    "street-officer": ("supervisor", None, "d1/s1"),
    "grid-member": ("operator", None, "d1/s1/c1/g1"),
}


@dataclass
class World:
    """The served app, a work-order service on a test clock, and every user's token."""

    client: httpx.AsyncClient
    app: FastAPI
    clock: ManualClock
    orders: WorkOrders
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.app.state.engine
        return engine

    def user(self, name: str) -> User:
        role, company, area = USERS[name]
        return User(name, Role(role), company or "", area or "")

    async def get(self, user: str, path: str = "/api/v1/kpis", **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return await self.client.get(path, params=params, headers=headers)

    async def rows(self, user: str, **params: str) -> list[dict[str, Any]]:
        response = await self.get(user, **{**RANGE, **params})
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows

    async def open(self, company: str, location: str, minute: float) -> int:
        self.clock.set(T0 + timedelta(minutes=minute))
        request = RequestInput(
            source="inspector",
            text="smoke in the stairwell",
            location=location,
            category="fire",
            company=company,
        )
        row = await self.orders.create_request(self.user("admin"), request)
        return int(row["id"])

    async def act(self, order_id: int, minute: float, action: str, by: str, **fields: Any) -> None:
        self.clock.set(T0 + timedelta(minutes=minute))
        await self.orders.act(order_id, action, self.user(by), fields)


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    flags = {
        "database_url": db_url,
        "migrate_on_start": True,
        "alarm_sweep_interval_s": 0,
        "notify_worker": False,
    }
    app = create_app(load_settings(environ={}, flags=flags))
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpis") as client:
            clock = ManualClock(T0)
            world = World(client, app, clock, WorkOrders(app.state.engine, clock=clock))
            for name, (role, company, area) in USERS.items():
                world.tokens[name] = await add_user(
                    app.state.engine, name, role=role, company=company, area=area
                )
            yield world


async def loop(world: World, order_id: int, start: float, *, accept_after: float = 1) -> None:
    """Accept, dispatch to company A's technician, start, submit and verify (fire limits)."""
    await world.act(order_id, start + accept_after, "accept", "sup-a")
    await world.act(order_id, start + accept_after + 2, "dispatch", "sup-a", assignee="tech-a")
    await world.act(order_id, start + accept_after + 9, "start", "tech-a")
    await world.act(order_id, start + 60, "submit", "tech-a", result="put out")
    await world.act(order_id, start + 120, "verify", "sup-a")


async def lend(world: World, order_id: int, lender: str, technician: str) -> None:
    """Record the order's dispatch as a loan from `lender`, as the shared pool's dispatch does."""
    data = {"assignee": technician, "assignee_company": lender, "loan_id": 42}
    async with world.engine.begin() as conn:
        await conn.execute(
            update(work_order_events)
            .where(
                work_order_events.c.order_id == order_id, work_order_events.c.action == "dispatch"
            )
            .values(data=data)
        )


async def incidents(world: World) -> dict[str, int]:
    """Company A and B orders in and out of street d1/s1, on the test clock (minutes after T0)."""
    ids = {
        "a-grid": await world.open("A", "d1/s1/c1/g1/b1", 0),
        "a-street": await world.open("A", "d1/s1/c2/g1", 0),
        "a-outside": await world.open("A", "d1/s2/c1/g1", 0),
        "b-grid": await world.open("B", "d1/s1/c1/g1/b2", 0),
        "b-outside": await world.open("B", "d2/s1/c1/g1", 0),
    }
    await loop(world, ids["a-grid"], 0)
    await world.act(ids["a-grid"], 130, "rate", "sup-a", rating=5)
    await loop(world, ids["a-street"], 0, accept_after=5)  # accepted 5 min after: late (2 min)
    await loop(world, ids["a-outside"], 0)
    # B's order, handled by the technician A lends it (the dispatch recorded as the pool does)
    await world.act(ids["b-grid"], 1, "accept", "sup-b")
    await world.act(ids["b-grid"], 2, "dispatch", "sup-b", assignee="tech-b")
    await lend(world, ids["b-grid"], "A", "tech-a")
    await world.act(ids["b-grid"], 10, "start", "tech-b")
    await world.act(ids["b-grid"], 50, "submit", "tech-b", result="done")
    await world.act(ids["b-grid"], 70, "verify", "sup-b")
    await world.act(ids["b-outside"], 3, "cancel", "sup-b", reason="false alarm")
    return ids


def by_company(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["company"]: row for row in rows}


async def test_each_user_sees_the_kpis_of_the_orders_they_may_see(world: World) -> None:
    await incidents(world)
    mine = by_company(await world.rows("op-a", by="company"))
    assert set(mine) == {"A"}  # and none of B's figures
    a = mine["A"]
    assert (a["opened"], a["accepted"], a["closed"], a["cancelled"]) == (3, 3, 3, 0)
    assert a["acceptance"] == {"numerator": 2, "denominator": 3, "rate": 2 / 3, "overdue_open": 0}
    assert (a["closure"]["numerator"], a["closure"]["denominator"]) == (2, 3)
    assert (a["satisfaction"]["numerator"], a["satisfaction"]["denominator"]) == (1, 1)
    assert a["mean_rating"] == 5.0
    assert a["mtta_s"] == pytest.approx((60 + 300 + 60) / 3)
    assert a["mttr_s"] == 7200.0
    assert (a["lent_handled"], a["borrowed_handled"]) == (1, 0)  # its technician's work for B

    b_view = by_company(await world.rows("sup-b", by="company"))
    b = b_view["B"]
    assert (b["opened"], b["cancelled"], b["closed"], b["borrowed_handled"]) == (2, 1, 1, 1)
    assert b["handling"]["denominator"] == 1
    assert b_view["A"]["lent_handled"] == 1
    assert b_view["A"]["opened"] == 0  # nothing else of company A

    street = by_company(await world.rows("street-officer", by="company"))
    assert (street["A"]["opened"], street["B"]["opened"]) == (2, 1)  # not d1/s2 nor d2
    assert (street["A"]["lent_handled"], street["B"]["borrowed_handled"]) == (1, 1)
    assert street["B"]["cancelled"] == 0

    grid = await world.rows("grid-member", by="grid,company")
    assert [(r["grid"], r["company"], r["opened"]) for r in grid] == [
        ("d1/s1/c1/g1", "A", 1),
        ("d1/s1/c1/g1", "B", 1),
    ]
    everything = await world.rows("admin", by="grid")
    assert [(r["grid"], r["opened"]) for r in everything] == [
        ("d1/s1/c1/g1", 2),
        ("d1/s1/c2/g1", 1),
        ("d1/s2/c1/g1", 1),
        ("d2/s1/c1/g1", 1),
    ]
    (total,) = await world.rows("admin")
    assert (total["opened"], total["cancelled"], total["closed"]) == (5, 1, 4)
    assert total["category"] is None


async def test_periods_are_local_days_and_the_report_names_its_query(world: World) -> None:
    await incidents(world)
    response = await world.get(
        "admin",
        **{"from": "2026-12-01T00:00:00+08:00", "to": "2026-12-31T00:00:00+08:00"},
        by="category",
        period="week",
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["from"] == "2026-11-30T16:00:00+00:00"
    assert report["to"] == "2026-12-30T16:00:00+00:00"
    assert (report["by"], report["period"], report["timezone"]) == (
        ["category", "period"],
        "week",
        "Asia/Shanghai",
    )
    (row,) = report["rows"]
    assert (row["category"], row["period"], row["opened"]) == ("fire", "2026-W50", 5)
    assert row["period_start"] == "2026-12-07T00:00:00+08:00"  # Monday 00:00, local


async def test_the_csv_export_has_the_json_rows_for_excel(world: World) -> None:
    await incidents(world)
    response = await world.get("street-officer", "/api/v1/kpis.csv", **RANGE, by="company,grid")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="kpis-20261207-20261208.csv"'
    )
    assert response.content.startswith("\ufeff".encode())
    lines = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    rows = await world.rows("street-officer", by="company,grid")
    assert [(x["company"], x["grid"], x["opened"]) for x in lines] == [
        (r["company"], r["grid"], str(r["opened"])) for r in rows
    ]
    assert lines[0]["acceptance_rate"] == "1.0000"
    assert lines[1]["acceptance_rate"] == "0.0000"  # company A in d1/s1/c2/g1: late


async def test_the_kpi_timing_agrees_with_the_due_times_the_service_sets(world: World) -> None:
    """After every action, the running stage's due time in the replay is the order's `due_at`."""
    policy = default_policy()
    complaint = RequestInput(
        source="hotline_12345",
        text="noise at night",
        location="d1/s1/c1/g1",
        category="noise",
        external_ref="12345-0001",
        external_deadline=T0 + timedelta(days=2),
        company="A",
    )
    pipe = RequestInput(
        source="inspector",
        text="burst pipe",
        location="d1/s1/c1/g1",
        category="water",
        priority="P1",
        company="A",
    )
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("accept", "sup-a", {}),
        ("dispatch", "sup-a", {"assignee": "tech-a"}),
        ("start", "tech-a", {}),
        ("hold", "tech-a", {"reason": "waiting for a part"}),
        ("approve_hold", "sup-a", {}),
        ("resume", "tech-a", {}),
        ("hold", "tech-a", {"reason": "waiting again"}),
        ("deny_hold", "sup-a", {"reason": "no"}),
        ("submit", "tech-a", {"result": "done"}),
        ("rework", "sup-a", {"reason": "still leaking"}),
        ("dispatch", "sup-a", {"assignee": "tech-a"}),
        ("comment", "sup-a", {"comment": "hurry"}),
    ]
    for request in (complaint, pipe):
        world.clock.set(T0)
        row = await world.orders.create_request(world.user("admin"), request)
        order_id = int(row["id"])
        for minute, (action, by, fields) in enumerate(steps, start=1):
            world.clock.set(T0 + timedelta(minutes=23 * minute))
            row = await world.orders.act(order_id, action, world.user(by), fields)
            detail = await world.orders.get(order_id, world.user("admin"))
            runs = stage_runs(
                OrderRow.of(detail), [EventRow.of(e) for e in detail["events"]], policy
            )
            running = runs[-1] if runs and runs[-1].ended is None else None
            assert row["due_at"] == (None if running is None else running.due), (
                request.category,
                action,
            )
        assert running is not None
        assert running.stage is Stage.ARRIVAL


async def test_bad_parameters_are_422_problems_and_other_roles_403(world: World) -> None:
    for params in [
        {"by": "street"},
        {"by": "grid,grid"},
        {"period": "year"},
        {"from": "2026-12-07T00:00:00"},
        {"from": "2025-01-01T00:00:00Z", "to": "2026-02-05T00:00:00Z"},
        {"from": "2026-12-08T00:00:00Z", "to": "2026-12-07T00:00:00Z"},
    ]:
        for path in ["/api/v1/kpis", "/api/v1/kpis.csv"]:
            response = await world.get("op-a", path, **params)
            assert response.status_code == 422, (params, response.text)
            assert response.headers["content-type"] == PROBLEM_JSON
    for user in ["tech-a", "resident-a"]:
        response = await world.get(user, **RANGE)
        assert response.status_code == 403, response.text
    anonymous = await world.client.get("/api/v1/kpis")
    assert anonymous.status_code == 401


async def test_the_default_range_is_the_30_days_before_now(world: World) -> None:
    await incidents(world)
    now = T0 + timedelta(days=30)
    world.app.dependency_overrides[kpi_service] = lambda: Kpis(world.engine, clock=ManualClock(now))
    response = await world.get("admin")
    report = response.json()
    assert (report["from"], report["to"]) == (T0.isoformat(), now.isoformat())
    assert report["rows"][0]["opened"] == 5
    world.app.dependency_overrides[kpi_service] = lambda: Kpis(
        world.engine, clock=ManualClock(now + timedelta(days=1))
    )
    (row,) = (await world.get("admin")).json()["rows"]
    assert row["opened"] == 0  # opened before the range
    assert row["closed"] == 0
