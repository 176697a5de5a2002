"""Dispatch through the API, on SQLite and PostgreSQL: teams, technicians and rosters per company,
automatic assignment and its override, and the shared pool lending a technician or equipment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.service import add_user
from cloud_ingest.dispatch.schemas import EquipmentIn, LoanIn
from cloud_ingest.dispatch.service import ConflictError, Dispatch
from cloud_ingest.infra.config import load_settings
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON

API: Final = "/api/v1"
GRID: Final = "d1/s1/c1/g1"
USERS: Final = {  # name: (role, company, area)
    "admin": ("admin", None, None),
    "sup-a": ("supervisor", "A", None),
    "op-a": ("operator", "A", None),
    "tech-a1": ("technician", "A", None),
    "tech-a2": ("technician", "A", None),
    "tech-a3": ("technician", "A", None),
    "tech-a4": ("technician", "A", None),
    "sup-b": ("supervisor", "B", None),
    "op-b": ("operator", "B", None),
    "tech-b1": ("technician", "B", None),
    "sup-c": ("supervisor", "C", None),
    "street-officer": ("supervisor", None, "d1/s1"),
}


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)

    async def call(
        self, method: str, path: str, user: str, body: object = None, **params: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return await self.client.request(
            method, API + path, json=body, params=params or None, headers=headers
        )

    async def ok(
        self, method: str, path: str, user: str, body: object = None, **params: Any
    ) -> Any:
        response = await self.call(method, path, user, body, **params)
        assert response.status_code in {200, 201}, response.text
        return response.json()

    async def items(self, path: str, user: str, **params: Any) -> list[dict[str, Any]]:
        page = await self.ok("GET", path, user, limit=500, **params)
        assert page["next"] is None
        items: list[dict[str, Any]] = page["items"]
        return items

    async def order(self, user: str, category: str, location: str = GRID) -> int:
        """An inspector's report filed by `user` (their company's), accepted."""
        body = {"source": "inspector", "text": f"{category} problem", "category": category}
        created = await self.ok("POST", "/requests", user, {**body, "location": location})
        await self.ok("POST", f"/work-orders/{created['id']}/actions", user, {"action": "accept"})
        order_id: int = created["id"]
        return order_id

    async def act(self, user: str, order_id: int, action: str, **fields: Any) -> httpx.Response:
        return await self.call(
            "POST", f"/work-orders/{order_id}/actions", user, {"action": action, **fields}
        )

    async def dispatch_event(self, user: str, order_id: int) -> dict[str, Any]:
        detail = await self.ok("GET", f"/work-orders/{order_id}", user)
        (event,) = [e for e in detail["events"] if e["action"] == "dispatch"][-1:]
        data: dict[str, Any] = event["data"]
        return data


def is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers.get("content-type") == PROBLEM_JSON
        and response.json().get("status") == status
    )


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
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
        async with httpx.AsyncClient(transport=transport, base_url="http://dispatch") as client:
            api = Api(client, app)
            for name, (role, company, area) in USERS.items():
                api.tokens[name] = await add_user(
                    app.state.engine, name, role=role, company=company, area=area
                )
            yield api


def shift(technician: str, start: timedelta, hours: float = 8) -> dict[str, str]:
    begins = datetime.now(UTC) + start
    return {
        "technician": technician,
        "starts_at": begins.isoformat(),
        "ends_at": (begins + timedelta(hours=hours)).isoformat(),
    }


ON_DUTY: Final = timedelta(hours=-1)
LATER: Final = timedelta(hours=10)


async def team(api: Api, user: str, name: str, area: str, categories: list[str]) -> int:
    body = {"name": name, "area": area, "categories": categories}
    created = await api.ok("POST", "/teams", user, body)
    team_id: int = created["id"]
    return team_id


async def technician(api: Api, user: str, name: str, team_id: int, **extra: Any) -> None:
    await api.ok("POST", "/technicians", user, {"name": name, "team_id": team_id, **extra})


# --- the registry, per company --------------------------------------------------------------------


async def test_teams_technicians_and_rosters_belong_to_their_company(api: Api) -> None:
    team_id = await team(api, "sup-a", "grid one", GRID, ["water", "electric"])
    assert is_problem(await api.call("POST", "/teams", "op-a", {"name": "x"}), 403)
    assert is_problem(await api.call("POST", "/teams", "sup-a", {"name": "grid one"}), 409)
    bad = await api.call("POST", "/teams", "sup-a", {"name": "bad", "area": "d1//s1"})
    assert is_problem(bad, 422)
    assert is_problem(await api.call("POST", "/teams", "admin", {"name": "no company"}), 422)
    await api.ok("POST", "/teams", "admin", {"name": "grid one", "company": "B"})

    assert [t["name"] for t in await api.items("/teams", "op-a")] == ["grid one"]
    assert [t["company"] for t in await api.items("/teams", "sup-b")] == ["B"]
    assert len(await api.items("/teams", "admin")) == 2
    assert is_problem(await api.call("GET", f"/teams/{team_id}", "sup-b"), 404)
    assert is_problem(await api.call("PATCH", f"/teams/{team_id}", "sup-b", {"name": "x"}), 404)
    patched = await api.ok("PATCH", f"/teams/{team_id}", "sup-a", {"categories": ["water"]})
    assert (patched["name"], patched["categories"]) == ("grid one", ["water"])

    await technician(api, "sup-a", "tech-a1", team_id, skills=["water"])
    for name, says in [("tech-b1", "not of company 'A'"), ("op-a", "not a user of role")]:
        refused = await api.call(
            "POST", "/technicians", "sup-a", {"name": name, "team_id": team_id}
        )
        assert is_problem(refused, 422), refused.text
        assert says in refused.json()["detail"]
    again = await api.call("POST", "/technicians", "sup-a", {"name": "tech-a1", "team_id": team_id})
    assert is_problem(again, 409)
    foreign = await api.call(
        "POST", "/technicians", "sup-b", {"name": "tech-b1", "team_id": team_id}
    )
    assert is_problem(foreign, 404)  # A's team is not B's to see
    await technician(api, "sup-a", "tech-a2", team_id)
    seen = await api.ok("GET", "/technicians/tech-a1", "op-a")
    assert (seen["team_id"], seen["skills"], seen["open_load"]) == (team_id, ["water"], 0)
    assert is_problem(await api.call("GET", "/technicians/tech-a1", "sup-b"), 404)
    assert await api.items("/technicians", "sup-b") == []

    shifts = await api.ok(
        "POST",
        "/rosters",
        "sup-a",
        {"shifts": [shift("tech-a1", ON_DUTY), shift("tech-a2", LATER)]},
    )
    assert [s["technician"] for s in shifts] == ["tech-a1", "tech-a2"]
    backwards = shift("tech-a1", LATER, hours=-1)
    assert is_problem(await api.call("POST", "/rosters", "sup-a", {"shifts": [backwards]}), 422)
    foreign_shift = {"shifts": [shift("tech-a1", LATER)]}
    assert is_problem(await api.call("POST", "/rosters", "sup-b", foreign_shift), 422)
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(days=1)).isoformat(),
        "end": (now + timedelta(days=1)).isoformat(),
    }
    assert len(await api.items("/rosters", "op-a", **window)) == 2
    mine = await api.items("/rosters", "tech-a1", **window)
    assert [s["technician"] for s in mine] == ["tech-a1"]  # a technician reads their own
    assert await api.items("/rosters", "sup-b", **window) == []
    assert len(await api.items("/rosters", "sup-a", technician="tech-a2", **window)) == 1
    assert len(await api.items("/rosters", "sup-a", team=team_id, **window)) == 2
    assert is_problem(await api.call("DELETE", f"/rosters/{shifts[0]['id']}", "sup-b"), 404)
    deleted = await api.call("DELETE", f"/rosters/{shifts[0]['id']}", "sup-a")
    assert deleted.status_code == 204
    assert len(await api.items("/rosters", "op-a", **window)) == 1
    # a street officer (no company) reads teams within their street and changes nothing
    assert {t["company"] for t in await api.items("/teams", "street-officer")} == {"A"}
    assert is_problem(await api.call("POST", "/teams", "street-officer", {"name": "x"}), 403)


# --- dispatching an order --------------------------------------------------------------------------


async def test_dispatch_without_assignee_follows_category_area_roster_and_load(api: Api) -> None:
    grid = await team(api, "sup-a", "grid", GRID, ["water"])
    street = await team(api, "sup-a", "street", "d1/s1", [])
    await technician(api, "sup-a", "tech-a1", grid)
    await technician(api, "sup-a", "tech-a2", grid)  # off duty until later
    await technician(api, "sup-a", "tech-a3", street, skills=["electric"])
    await technician(api, "sup-a", "tech-a4", grid)
    roster = [
        shift("tech-a1", ON_DUTY),
        shift("tech-a2", LATER),
        shift("tech-a3", ON_DUTY),
        shift("tech-a4", ON_DUTY),
    ]
    await api.ok("POST", "/rosters", "sup-a", {"shifts": roster})

    first, second = await api.order("op-a", "water"), await api.order("op-a", "water")
    assert (await api.act("op-a", first, "dispatch")).json()["assignee"] == "tech-a1"
    assert await api.dispatch_event("op-a", first) == {
        "assignee": "tech-a1",
        "assignee_company": "A",
        "loan_id": None,
        "team": grid,
        "assignment": "automatic",
    }
    # tech-a1 now holds one order: the next goes to tech-a4 (tech-a2 is off duty)
    assert (await api.act("op-a", second, "dispatch")).json()["assignee"] == "tech-a4"
    assert (await api.ok("GET", "/technicians/tech-a1", "op-a"))["open_load"] == 1

    electric = await api.order("op-a", "electric", "d1/s1/c2")
    assert (await api.act("op-a", electric, "dispatch")).json()["assignee"] == "tech-a3"
    within = await api.order("op-a", "water")
    refused = await api.act("op-a", within, "dispatch", team=street)  # tech-a3 handles electric
    assert is_problem(refused, 422)
    assert "handling category 'water'" in refused.json()["detail"]
    other_company_team = await team(api, "sup-b", "b-grid", GRID, [])
    refused = await api.act("op-a", within, "dispatch", team=other_company_team)
    assert is_problem(refused, 422)
    assert "no team" in refused.json()["detail"]

    elsewhere = await api.order("op-a", "water", "d2/s1")
    refused = await api.act("op-a", elsewhere, "dispatch")
    assert is_problem(refused, 422)
    assert "area covers 'd2/s1'" in refused.json()["detail"]
    # a technician who rejects an order is not chosen for it again
    assert (await api.act("tech-a1", first, "reject", reason="no ladder")).status_code == 200
    assert (await api.act("op-a", first, "dispatch")).json()["assignee"] == "tech-a4"
    # state is checked before anyone is looked for
    fresh = await api.ok(
        "POST", "/requests", "op-a", {"source": "inspector", "text": "x", "location": GRID}
    )
    assert is_problem(await api.act("op-a", fresh["id"], "dispatch"), 409)


async def test_a_manual_assignee_must_be_a_technician_of_the_company(api: Api) -> None:
    grid = await team(api, "sup-a", "grid", GRID, [])
    await technician(api, "sup-a", "tech-a2", grid)
    order_id = await api.order("op-a", "water")
    for name, says in [
        ("tech-b1", "company 'B', not 'A'"),
        ("op-a", "not a technician"),
        ("nobody", "not a technician"),
    ]:
        refused = await api.act("op-a", order_id, "dispatch", assignee=name)
        assert is_problem(refused, 422), refused.text
        assert says in refused.json()["detail"]
    await api.ok("PATCH", "/technicians/tech-a2", "sup-a", {"active": False})
    inactive = await api.act("op-a", order_id, "dispatch", assignee="tech-a2")
    assert is_problem(inactive, 422)
    assert "not active" in inactive.json()["detail"]
    # off duty and unregistered are no obstacle to a person's choice
    assert (await api.act("op-a", order_id, "dispatch", assignee="tech-a3")).status_code == 200
    assert await api.dispatch_event("op-a", order_id) == {
        "assignee": "tech-a3",
        "assignee_company": "A",
        "loan_id": None,
        "team": None,
        "assignment": "manual",
    }
    assert (await api.act("tech-a3", order_id, "confirm")).status_code == 200
    assert (await api.act("tech-a1", order_id, "confirm")).status_code == 403  # not theirs


# --- the shared pool --------------------------------------------------------------------------------


async def test_a_technician_borrowed_through_the_pool_handles_the_order(api: Api) -> None:
    order_id = await api.order("op-b", "water")
    assert is_problem(await api.call("GET", f"/work-orders/{order_id}", "tech-a1"), 404)
    loan = await api.ok(
        "POST",
        "/pool",
        "sup-b",
        {"kind": "technician", "lender": "A", "technician": "tech-a1", "order_id": order_id},
    )
    assert (loan["state"], loan["borrower"], loan["requested_by"]) == ("REQUESTED", "B", "sup-b")
    assert loan["allowed_actions"] == ["cancel"]
    path = f"/pool/{loan['id']}"

    # not approved yet: no dispatch
    early = await api.act("op-b", order_id, "dispatch", assignee="tech-a1")
    assert is_problem(early, 422)
    assert "not lent" in early.json()["detail"]
    assert is_problem(
        await api.call("POST", f"{path}/actions", "sup-b", {"action": "approve"}), 403
    )
    assert is_problem(await api.call("GET", path, "sup-c"), 404)  # a third company
    assert await api.items("/pool", "sup-c") == []
    (listed,) = await api.items("/pool", "sup-a")
    assert listed["allowed_actions"] == ["approve", "reject"]

    approved = await api.ok("POST", f"{path}/actions", "sup-a", {"action": "approve"})
    assert (approved["state"], approved["decided_by"]) == ("APPROVED", "sup-a")
    twice = await api.call("POST", f"{path}/actions", "sup-a", {"action": "approve"})
    assert is_problem(twice, 409)
    assert (twice.json()["state"], twice.json()["allowed_actions"]) == ("APPROVED", ["return"])

    dispatched = await api.act("op-b", order_id, "dispatch", assignee="tech-a1")
    assert dispatched.status_code == 200, dispatched.text
    assert await api.dispatch_event("op-b", order_id) == {
        "assignee": "tech-a1",
        "assignee_company": "A",
        "loan_id": loan["id"],
        "team": None,
        "assignment": "manual",
    }
    # the borrowed technician sees the order and works it; A's operator still does not see it
    assert [o["id"] for o in await api.items("/work-orders", "tech-a1")] == [order_id]
    assert is_problem(await api.call("GET", f"/work-orders/{order_id}", "op-a"), 404)
    for action, fields in [("confirm", {}), ("start", {}), ("submit", {"result": "pipe fixed"})]:
        response = await api.act("tech-a1", order_id, action, **fields)
        assert response.status_code == 200, (action, response.text)
    closed = await api.act("sup-b", order_id, "verify")
    assert (closed.json()["state"], closed.json()["handler"]) == ("CLOSED", "tech-a1")
    returned = await api.ok("POST", f"{path}/actions", "sup-b", {"action": "return"})
    assert (returned["state"], returned["returned_by"]) == ("RETURNED", "sup-b")
    assert (await api.ok("GET", path, "tech-a1"))["state"] == "RETURNED"  # the loan of them


async def test_a_rejected_or_unapproved_loan_refuses_dispatch(api: Api) -> None:
    order_id = await api.order("op-b", "water")
    other_id = await api.order("op-b", "water")
    ask = {"kind": "technician", "lender": "A", "technician": "tech-a1", "order_id": order_id}
    refused_loan = await api.ok("POST", "/pool", "op-b", ask)
    no_reason = await api.call(
        "POST", f"/pool/{refused_loan['id']}/actions", "sup-a", {"action": "reject"}
    )
    assert is_problem(no_reason, 422)
    rejected = await api.ok(
        "POST",
        f"/pool/{refused_loan['id']}/actions",
        "sup-a",
        {"action": "reject", "reason": "needed here"},
    )
    assert (rejected["state"], rejected["reason"]) == ("REJECTED", "needed here")
    assert is_problem(await api.act("op-b", order_id, "dispatch", assignee="tech-a1"), 422)
    # approved for another order: still not for this one
    for_other = await api.ok("POST", "/pool", "sup-b", {**ask, "order_id": other_id})
    await api.ok("POST", f"/pool/{for_other['id']}/actions", "sup-a", {"action": "approve"})
    assert is_problem(await api.act("op-b", order_id, "dispatch", assignee="tech-a1"), 422)
    # automatic assignment finds no own technician of B, and no loan for this order
    automatic = await api.act("op-b", order_id, "dispatch")
    assert is_problem(automatic, 422)
    assert "no technician" in automatic.json()["detail"]
    # the loan for the other order is used there, automatically
    assert (await api.act("op-b", other_id, "dispatch")).json()["assignee"] == "tech-a1"
    data = await api.dispatch_event("op-b", other_id)
    assert (data["assignee_company"], data["loan_id"]) == ("A", for_other["id"])
    # an open-ended loan lends them for any of B's orders
    open_ended = await api.ok("POST", "/pool", "sup-b", {**ask, "order_id": None})
    await api.ok("POST", f"/pool/{open_ended['id']}/actions", "sup-a", {"action": "approve"})
    assert (await api.act("op-b", order_id, "dispatch", assignee="tech-a1")).status_code == 200
    assert (await api.dispatch_event("op-b", order_id))["loan_id"] == open_ended["id"]

    # requests that cannot be lent
    for body, says in [
        ({**ask, "lender": "B"}, "from itself"),
        ({**ask, "technician": "tech-b1"}, "not a technician of 'A'"),
        ({**ask, "technician": None}, "names the 'technician'"),
        ({**ask, "order_id": 999999}, "no work order"),
    ]:
        response = await api.call("POST", "/pool", "sup-b", body)
        assert is_problem(response, 422), response.text
        assert says in response.json()["detail"]
    a_order = await api.order("op-a", "water")
    mine = await api.call("POST", "/pool", "sup-b", {**ask, "order_id": a_order})
    assert is_problem(mine, 422)  # A's order is not B's to borrow for
    assert is_problem(await api.call("POST", "/pool", "tech-b1", ask), 403)


async def test_equipment_is_lent_to_one_borrower_at_a_time(api: Api) -> None:
    pump = await api.ok("POST", "/equipment", "sup-a", {"name": "pump 1", "kind": "pump"})
    assert is_problem(
        await api.call("POST", "/equipment", "sup-a", {"name": "pump 1", "kind": "pump"}), 409
    )
    assert [e["name"] for e in await api.items("/equipment", "op-a")] == ["pump 1"]
    assert await api.items("/equipment", "sup-b") == []
    ask = {"kind": "equipment", "lender": "A", "equipment_id": pump["id"]}
    first = await api.ok("POST", "/pool", "sup-b", ask)
    second = await api.ok("POST", "/pool", "sup-c", ask)
    await api.ok("POST", f"/pool/{first['id']}/actions", "sup-a", {"action": "approve"})
    busy = await api.call("POST", f"/pool/{second['id']}/actions", "sup-a", {"action": "approve"})
    assert is_problem(busy, 409)
    assert "lent already" in busy.json()["detail"]
    await api.ok("POST", f"/pool/{first['id']}/actions", "sup-a", {"action": "return"})
    approved = await api.ok("POST", f"/pool/{second['id']}/actions", "sup-a", {"action": "approve"})
    assert approved["state"] == "APPROVED"
    assert {loan["id"] for loan in await api.items("/pool", "sup-a")} == {first["id"], second["id"]}
    assert [loan["id"] for loan in await api.items("/pool", "sup-b")] == [first["id"]]
    assert [loan["id"] for loan in await api.items("/pool", "sup-a", state="APPROVED")] == [
        second["id"]
    ]
    wrong = await api.call("POST", "/pool", "sup-b", {**ask, "equipment_id": 424242})
    assert is_problem(wrong, 422)


async def test_loan_pages_and_cursor(api: Api) -> None:
    ask: Mapping[str, object] = {"kind": "technician", "lender": "A", "technician": "tech-a1"}
    ids = [(await api.ok("POST", "/pool", "sup-b", dict(ask)))["id"] for _ in range(3)]
    page = await api.ok("GET", "/pool", "sup-b", limit=2)
    assert [loan["id"] for loan in page["items"]] == ids[::-1][:2]
    rest = await api.ok("GET", "/pool", "sup-b", limit=2, after=page["next"])
    assert ([loan["id"] for loan in rest["items"]], rest["next"]) == ([ids[0]], None)


async def test_a_stale_loan_version_is_refused(api: Api) -> None:
    ask = {"kind": "technician", "lender": "A", "technician": "tech-a1"}
    loan = await api.ok("POST", "/pool", "sup-b", ask)
    path = f"/pool/{loan['id']}/actions"
    stale = await api.call("POST", path, "sup-a", {"action": "approve", "expected_version": 2})
    assert is_problem(stale, 409)
    assert stale.json()["state"] == "REQUESTED"
    approved = await api.ok("POST", path, "sup-a", {"action": "approve", "expected_version": 1})
    assert approved["version"] == 2


async def test_concurrent_approvals_lend_a_piece_of_equipment_once(engine: AsyncEngine) -> None:
    service = Dispatch(engine)
    lender = User("sup-a", Role.SUPERVISOR, "A", "")
    pump = await service.create_equipment(
        lender, EquipmentIn.model_validate({"name": "pump", "kind": "pump"})
    )
    asks = [
        await service.request_loan(
            User(f"sup-{company}", Role.SUPERVISOR, company, ""),
            LoanIn.model_validate({"kind": "equipment", "lender": "A", "equipment_id": pump["id"]}),
        )
        for company in "BCDEFGHIJK"
    ]

    async def approve(loan_id: int) -> str:
        try:
            await service.act_on_loan(lender, loan_id, "approve")
        except ConflictError:
            return "lent already"
        return "ok"

    outcomes = await asyncio.gather(*(approve(int(loan["id"])) for loan in asks))
    assert sorted(outcomes) == ["lent already"] * 9 + ["ok"]
    states = [(await service.get_loan(lender, int(loan["id"])))["state"] for loan in asks]
    assert states.count("APPROVED") == 1
    assert states.count("REQUESTED") == 9
