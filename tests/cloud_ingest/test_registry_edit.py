"""`PATCH /api/v1/gateways/{id}` and `PATCH /api/v1/devices/{id}`: merge patches, roles, scope."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cloud_ingest.auth.service import add_user
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.config import load_settings
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON
from cloud_ingest.registry.csv_import import parse_devices
from cloud_ingest.registry.imports import import_devices

DEVICES = """\
id,gateway,kind,location,labels,plan_x,plan_y
dev-1,gw-a,smoke,d1/s1/c1/g1/k1/b1/u1,room=301;floor=3,10,20
dev-2,gw-a,bin,d2/s1/c1,,,
dev-b,gw-b,smoke,d1/s1/c1/g1/k1/b1/u1,,,
"""
USERS = {
    "admin": ("admin", None, None),
    "op-a": ("operator", "A", None),
    "sup-a": ("supervisor", "A", None),
    "tech-a": ("technician", "A", "d1/s1"),
    "sup-a-d1": ("supervisor", "A", "d1"),
    "sup-b": ("supervisor", "B", None),
    "resident-a": ("resident", "A", "d1/s1"),
}
MERGE_PATCH = "application/merge-patch+json"


@dataclass
class World:
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, user: str, content_type: str = MERGE_PATCH) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}", "Content-Type": content_type}

    async def patch(self, user: str, path: str, body: Any, **kw: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.client.patch(path, content=content, headers=self.headers(user, **kw))

    async def patched(self, user: str, path: str, body: Any) -> dict[str, Any]:
        response = await self.patch(user, path, body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def get(self, user: str, path: str) -> dict[str, Any]:
        response = await self.client.get(path, headers=self.headers(user))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@asynccontextmanager
async def edit_world(url: str) -> AsyncIterator[World]:
    app: FastAPI = create_app(
        load_settings(environ={}, flags={"database_url": url, "migrate_on_start": True})
    )
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            engine = app.state.engine
            await add_gateway(engine, "gw-a", company="A", site="d1/s1")
            await add_gateway(engine, "gw-b", company="B", site="d1/s1")
            await import_devices(engine, parse_devices(DEVICES))
            world = World(client)
            for name, (role, company, area) in USERS.items():
                world.tokens[name] = await add_user(
                    engine, name, role=role, company=company, area=area
                )
            yield world


@pytest.fixture(params=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """A served app with its gateways, devices and users, on a fresh database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/steward.db"
    else:
        url = request.getfixturevalue("postgres_url")
    async with edit_world(url) as built:
        yield built


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# --- devices ----------------------------------------------------------------------------------


async def test_a_device_patch_merges_and_leaves_absent_fields_alone(world: World) -> None:
    path = "/api/v1/devices/dev-1"
    before = await world.get("tech-a", path)
    assert before["labels"] == {"room": "301", "floor": "3"}
    assert (before["plan_x"], before["plan_y"]) == (10.0, 20.0)

    after = await world.patched("tech-a", path, {"labels": {"floor": "4", "sensor": "v2"}})
    assert after["labels"] == {"room": "301", "floor": "4", "sensor": "v2"}
    assert {k: v for k, v in after.items() if k != "labels"} == {
        k: v for k, v in before.items() if k != "labels"
    }
    after = await world.patched("tech-a", path, {"labels": {"room": None, "nothing": None}})
    assert after["labels"] == {"floor": "4", "sensor": "v2"}
    after = await world.patched(
        "tech-a", path, {"kind": "perimeter", "location": "/d1/s1/c2/", "plan_x": 1, "plan_y": 2.5}
    )
    assert (after["kind"], after["location"]) == ("perimeter", "d1/s1/c2")
    assert (after["plan_x"], after["plan_y"]) == (1.0, 2.5)
    assert after["labels"] == {"floor": "4", "sensor": "v2"}
    after = await world.patched("tech-a", path, {"plan_x": None, "plan_y": None, "labels": None})
    assert (after["plan_x"], after["plan_y"], after["labels"]) == (None, None, {})
    after = await world.patched("sup-a", path, {"kind": None, "location": None})
    assert (after["kind"], after["location"]) == ("", "")
    assert await world.patched("admin", path, {}) == after
    # plain JSON is taken as a merge patch too; the change is stored
    response = await world.patch("admin", path, {"kind": "smoke"}, content_type="application/json")
    assert response.status_code == 200
    assert (await world.get("admin", path))["kind"] == "smoke"


async def test_a_bad_device_patch_is_a_422_problem_and_changes_nothing(world: World) -> None:
    path = "/api/v1/devices/dev-1"
    before = await world.get("admin", path)
    for body in [
        {"plan_y": None},  # plan_x stays set
        {"plan_x": 5, "plan_y": None},
        {"plan_x": "5", "plan_y": 1},
        b'{"plan_x": NaN, "plan_y": 1}',
        b'{"plan_x": Infinity, "plan_y": 1}',
        {"kind": "toaster"},
        {"kind": 3},
        {"location": "d1//s1"},
        {"location": "d1/ s1"},
        {"location": "a/b/c/d/e/f/g/h"},
        {"labels": {"floor": 3}},
        {"labels": {"floor": {"nested": "x"}}},
        {"labels": ["floor"]},
        {"labels": {"a=b": "x"}},
        {"labels": {"note": "x" * 300}},
        {"labels": {f"k{n}": "v" for n in range(40)}},
        {"colour": "red"},
        {"gateway_id": "gw-b"},
        [1, 2],
        b"{not json",
        b"",
    ]:
        response = await world.patch("admin", path, body)
        assert_problem(response, 422)
    assert await world.get("admin", path) == before


async def test_device_edits_are_scoped_and_stay_in_the_users_area(world: World) -> None:
    # out of scope is 404, like an unknown device
    for user, device in [
        ("tech-a", "dev-2"),  # in d2, outside the area d1/s1
        ("sup-b", "dev-1"),  # another company's
        ("sup-a", "dev-b"),
        ("admin", "dev-none"),
    ]:
        response = await world.patch(user, f"/api/v1/devices/{device}", {"kind": "bin"})
        assert_problem(response, 404)
    # a user with an area cannot move a device out of it
    path = "/api/v1/devices/dev-1"
    for location in ["d2/s1", "d1/s10", "d1", None, ""]:
        response = await world.patch("tech-a", path, {"location": location})
        body = assert_problem(response, 403)
        assert "outside your area" in body["detail"]
    assert (await world.get("tech-a", path))["location"] == "d1/s1/c1/g1/k1/b1/u1"
    moved = await world.patched("tech-a", path, {"location": "d1/s1"})
    assert moved["location"] == "d1/s1"
    # the company-wide supervisor may move it anywhere, even out of the technician's sight
    assert (await world.patched("sup-a", path, {"location": "d2/s9"}))["location"] == "d2/s9"
    assert_problem(await world.patch("tech-a", path, {"kind": "bin"}), 404)
    # other companies' devices are untouched
    assert (await world.get("admin", "/api/v1/devices/dev-b"))["kind"] == "smoke"


async def test_only_technicians_supervisors_and_admins_edit_devices(world: World) -> None:
    for user in ["op-a", "resident-a"]:
        response = await world.patch(user, "/api/v1/devices/dev-1", {"kind": "bin"})
        assert_problem(response, 403)
    response = await world.client.patch("/api/v1/devices/dev-1", json={"kind": "bin"})
    assert_problem(response, 401)
    assert (await world.get("admin", "/api/v1/devices/dev-1"))["kind"] == "smoke"


# --- gateways ---------------------------------------------------------------------------------


async def test_gateway_site_by_supervisors_company_by_administrators(world: World) -> None:
    path = "/api/v1/gateways/gw-a"
    changed = await world.patched("sup-a", path, {"site": "/d1/s2/"})
    assert (changed["site"], changed["company"]) == ("d1/s2", "A")
    assert (await world.patched("sup-a", path, {"site": None}))["site"] == ""
    assert (await world.patched("sup-a-d1", path, {"site": "d1/s3"}))["site"] == "d1/s3"
    assert_problem(await world.patch("sup-a-d1", path, {"site": "d2"}), 403)
    body = assert_problem(await world.patch("sup-a", path, {"company": "B"}), 403)
    assert "administrator" in body["detail"]
    for user in ["op-a", "tech-a", "resident-a"]:
        assert_problem(await world.patch(user, path, {"site": "d1"}), 403)
    assert_problem(await world.patch("sup-b", path, {"site": "d1"}), 404)
    assert_problem(await world.patch("admin", "/api/v1/gateways/gw-z", {"site": "d1"}), 404)
    for body_ in [{"company": None}, {"company": ""}, {"site": "d1//x"}, {"status": "online"}]:
        assert_problem(await world.patch("admin", path, body_), 422)
    assert (await world.get("admin", path))["company"] == "A"

    moved = await world.patched("admin", path, {"company": "B"})
    assert moved["company"] == "B"
    # it and its devices are now company B's
    assert_problem(await world.patch("sup-a", path, {"site": "d1"}), 404)
    assert (await world.get("sup-b", "/api/v1/devices/dev-1"))["gateway_id"] == "gw-a"


async def test_openapi_documents_the_patches(world: World) -> None:
    paths = (await world.client.get("/openapi.json")).json()["paths"]
    for path in ["/api/v1/gateways/{gateway_id}", "/api/v1/devices/{device_id}"]:
        assert "patch" in paths[path]
        assert paths[path]["patch"]["security"] == [{"HTTPBearer": []}]
    assert "/api/v1/sites/{path}" in paths
