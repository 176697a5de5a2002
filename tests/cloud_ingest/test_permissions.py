"""Permissions of the API v1, every route of it: a new endpoint without a check fails here.

The coverage test enumerates the routes of `create_app()` (the application's routes and the
operations of its OpenAPI document, which must name the same ones) and, for each route under
`/api/v1`, reads the roles it admits from its `require(...)` dependency. It then asks the running
application: without a token (and with a bad one, and with a gateway's) the answer is a `401`
problem; with the token of each role the route does not admit, a `403` problem; a change asked by
an area officer (a user without a company) where the route does not admit area officers, a
`403`. A route under `/api/v1` without `require` fails the test, except the allow-listed gateway
intake, which must refuse user tokens. The console's routes under `/console` are held to the same
`require`, but for the sign-in form and the static files: without a session a console page
redirects to the sign-in page and any other console route answers a `401` problem. Other routes
outside `/api/v1` must be the health, metrics and documentation ones.

Then the scoping that the roles of grid governance add: a street officer sees every company's
alarms, devices and gateways in the street and none outside, and changes nothing; a grid member
sees their grid; a technician cannot see or change another company's device.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote
from uuid import uuid4

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import insert

from cloud_ingest.auth.models import AREA_OFFICER_ROLES, Role
from cloud_ingest.auth.permissions import SAFE_METHODS, RoleCheck, require, role_checks
from cloud_ingest.auth.service import UserError, add_user
from cloud_ingest.cli import main
from cloud_ingest.console.pages import PageRoute
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.schema import sites
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Severity

API: Final = "/api/v1"
MERGE_PATCH: Final = "application/merge-patch+json"
NOW: Final = datetime.now(UTC).replace(microsecond=0)

EXEMPT: Final = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
"""Routes outside the API: liveness, readiness, metrics and the API's own documentation."""

CONSOLE: Final = "/console"
CONSOLE_PUBLIC: Final = {
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("GET", "/console/static/{path}"),
}
"""Console routes anyone may ask: the sign-in form and the static files."""

GATEWAY_TOKEN_ROUTES: Final = {("POST", "/api/v1/ingest")}
"""Routes under `/api/v1` taking a gateway's token instead of a user's (no `require`)."""

ROLE_USERS: Final = {
    Role.OPERATOR: "operator-a",
    Role.SUPERVISOR: "supervisor-a",
    Role.TECHNICIAN: "technician-a",
    Role.RESIDENT: "resident-a",
    Role.ADMIN: "admin",
}
"""A user of each role (company A, no area; the admin of no company)."""

USERS: Final = {  # name: (role, company, area)
    **{
        name: (role.value, None if role is Role.ADMIN else "A", None)
        for role, name in ROLE_USERS.items()
    },
    "tech-a": ("technician", "A", "d1/s1"),
    "street-officer": ("supervisor", None, "d1/s1"),
    "street-watch": ("operator", None, "d1/s1"),
    "grid-member": ("operator", None, "d1/s1/c1/g1"),
}
OFFICERS: Final = {Role.SUPERVISOR: "street-officer", Role.OPERATOR: "street-watch"}

# device: (gateway, location); gw-a is company A's, gw-b and gw-c company B's
DEVICES: Final = {
    "a-in": ("gw-a", "d1/s1/c1/g1"),
    "a-in-2": ("gw-a", "d1/s1/c2/g1"),
    "a-out": ("gw-a", "d1/s2/c1/g1"),
    "a-s10": ("gw-a", "d1/s10/c1/g1"),
    "b-in": ("gw-b", "d1/s1/c1/g1"),
    "b-in-2": ("gw-b", "d1/s1/c2/g2"),
    "c-out": ("gw-c", "d2/s1/c1/g1"),
}
GATEWAY_SITES: Final = {"gw-a": ("A", "d1/s1"), "gw-b": ("B", "d1/s1/c1"), "gw-c": ("B", "d2/s1")}


SITES: Final = ["d1", "d1/s1", "d1/s1/c1", "d1/s2", "d2", "d2/s1"]
"""Shared sites (no company) of the tree."""


def _site(path: str) -> dict[str, Any]:
    levels = ["district", "street", "community"]
    parent = path.rpartition("/")[0] or None
    return {
        "path": path,
        "parent": parent,
        "level": levels[path.count("/")],
        "name": path,
        "company": "",
        "updated_at": NOW,
    }


def fingerprint(device: str) -> str:
    return f"site/{device}/smoke"


def up(gateway: str, *devices: str) -> Incoming:
    at = NOW - timedelta(seconds=10)
    events = tuple(
        AlarmEvent(
            fingerprint=fingerprint(device),
            seq=1,
            state=AlarmState.FIRING,
            severity=Severity.CRITICAL,
            starts_at=at,
            at=at,
            rule_id="smoke",
            device_id=device,
            location=DEVICES[device][1],
            valid_until=at + timedelta(minutes=5),
            value=True,
        )
        for device in devices
    )
    envelope = Envelope(
        gateway_id=gateway, batch_id=uuid4(), sent_at=NOW, readings=(), alarm_events=events
    )
    return Incoming(f"steward/v1/{gateway}/up", dumps(envelope), NOW)


@dataclass
class World:
    """A served app with three gateways of two companies, their alarms, and users of every kind."""

    client: httpx.AsyncClient
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)
    gateway_token: str = ""

    async def call(
        self, method: str, path: str, user: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {} if user is None else {"Authorization": f"Bearer {self.tokens[user]}"}
        return await self.client.request(method, path, headers=headers, **kw)

    async def patch(self, path: str, user: str, body: dict[str, Any]) -> httpx.Response:
        """A JSON merge patch of `path` by `user`."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}", "Content-Type": MERGE_PATCH}
        return await self.client.patch(path, content=json.dumps(body), headers=headers)

    async def items(self, user: str, path: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.call("GET", path, user, params={"limit": 500, **params})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["next"] is None
        items: list[dict[str, Any]] = body["items"]
        return items


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    flags = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/steward.db", "migrate_on_start": True}
    app = create_app(load_settings(environ={}, flags=flags))
    async with serving(app) as client:
        engine = app.state.engine
        world = World(client, app)
        for gateway, (owner, site) in GATEWAY_SITES.items():
            creds = await add_gateway(engine, gateway, company=owner, site=site)
            world.gateway_token = world.gateway_token or creds.http_token
        for name, (role, company, area) in USERS.items():
            world.tokens[name] = await add_user(engine, name, role=role, company=company, area=area)
        async with engine.begin() as conn:
            await conn.execute(insert(sites), [_site(path) for path in SITES])
        for gateway in GATEWAY_SITES:
            await app.state.ingest(
                [up(gateway, *(d for d, (g, _) in DEVICES.items() if g == gateway))]
            )
        await app.state.ingest([Incoming("steward/v1/gw-a/up", b"{not json", NOW)])
        yield world


# --- every route --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One method of one route: where, and the `require` checks found on it."""

    method: str
    path: str
    checks: tuple[RoleCheck, ...]
    in_schema: bool
    page: bool = False
    """A console page: without a session it redirects to the sign-in page."""


def operations(app: FastAPI) -> list[Operation]:
    """Every method of every route of `app`, routers included wherever they are mounted."""
    found: list[Operation] = []
    for route in _routes(app):
        path: str | None = route.path_format or route.path
        assert path is not None, route
        dependant = getattr(route, "dependant", None)
        checks = tuple(role_checks(dependant)) if dependant is not None else ()
        in_schema = bool(getattr(route, "include_in_schema", False))
        page = isinstance(getattr(route, "original_route", route), PageRoute)
        methods = getattr(route, "methods", None) or {"(any)"}  # a mount or a websocket: none
        found += [
            Operation(m, path, checks, in_schema, page) for m in sorted(methods) if m != "HEAD"
        ]
    return found


def _routes(app: FastAPI) -> list[Any]:
    """The routes of `app`, those of included routers one by one.

    FastAPI from 0.165 keeps an included router as one route of the app; earlier versions copy its
    routes into the app's.
    """
    try:
        from fastapi.routing import iter_route_contexts  # noqa: PLC0415
    except ImportError:  # pragma: no cover - FastAPI before 0.165
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def unguarded(app: FastAPI) -> list[str]:
    """The routes of `app` that check no permission and are not allowed to.

    Every route under `/api/v1` needs a `require(...)` dependency (the gateway intake takes a
    gateway's token instead); a route elsewhere must be a health, metrics or documentation one.
    """
    failures: list[str] = []
    for op in operations(app):
        where = f"{op.method} {op.path}"
        if op.path == CONSOLE or op.path.startswith(CONSOLE + "/"):
            if not op.checks and (op.method, op.path) not in CONSOLE_PUBLIC:
                failures.append(f"{where}: a console route without require(...), not public")
        elif not op.path.startswith(API + "/"):
            if (op.method, op.path) not in EXEMPT:
                failures.append(f"{where}: outside {API} and neither health nor documentation")
        elif not op.checks and (op.method, op.path) not in GATEWAY_TOKEN_ROUTES:
            failures.append(f"{where}: no require(...) dependency: every API route names its roles")
    return failures


def concrete(path: str) -> str:
    """`path` with every `{parameter}` filled in (a route is asked before it looks anything up)."""
    return re.sub(r"\{[^}]+\}", "1", path)


def test_the_routes_and_the_openapi_document_name_the_same_operations() -> None:
    app = create_app()
    routes = {(op.method, op.path) for op in operations(app) if op.in_schema}
    documented = {
        (method.upper(), path)
        for path, methods in app.openapi()["paths"].items()
        for method in methods
        if method.upper() in {"GET", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "TRACE"}
    }
    assert documented == routes
    inside = [op for op in operations(app) if op.path.startswith(API + "/")]
    assert len(inside) >= 13  # the API of the registry, alarms, telemetry and intake at least


async def test_every_api_route_checks_permission(world: World) -> None:
    """401 without a user token, 403 for each role not admitted, a require on every route."""
    failures = unguarded(world.app)
    checked = 0
    for op in operations(world.app):
        if not op.checks:
            continue  # reported by `unguarded`, or allowed there
        where = f"{op.method} {op.path}"
        checked += 1
        failures += await _check_route(world, op, where)
    assert not failures, "\n".join(failures)
    assert checked >= 12


async def _check_route(world: World, op: Operation, where: str) -> list[str]:
    """What is wrong with the permission answers of the guarded route `op`."""
    path = concrete(op.path)
    if op.page:
        failures = await _redirected(world, op.method, path, where)
    else:
        failures = await _unauthenticated(world, op.method, path, where)
    admitted = frozenset.intersection(*(check.roles for check in op.checks))
    for role in Role:
        if role in admitted:
            continue
        response = await world.call(op.method, path, ROLE_USERS[role])
        if not (_is_problem(response, 403) or (op.page and _is_refused_page(response))):
            failures.append(f"{where}: a {role} (not admitted) got {_said(response)}, not 403")
    officers_act = all(check.area_officers for check in op.checks)
    if op.method not in SAFE_METHODS and not officers_act:
        for role in admitted & AREA_OFFICER_ROLES:
            response = await world.call(op.method, path, OFFICERS[role])
            if not _is_problem(response, 403):
                failures.append(
                    f"{where}: an area officer ({role}) asking a change got "
                    f"{_said(response)}, not 403"
                )
    return failures


async def _unauthenticated(world: World, method: str, path: str, where: str) -> list[str]:
    failures: list[str] = []
    for label, headers in [
        ("no token", {}),
        ("a bad token", {"Authorization": "Bearer not-a-token"}),
        ("a gateway's token", {"Authorization": f"Bearer {world.gateway_token}"}),
    ]:
        response = await world.client.request(method, path, headers=headers)
        if not _is_problem(response, 401):
            failures.append(f"{where}: {label} got {_said(response)}, not a 401 problem")
        elif not response.headers.get("www-authenticate", "").startswith("Bearer"):
            failures.append(f"{where}: {label}: 401 without WWW-Authenticate: Bearer")
    return failures


async def _redirected(world: World, method: str, path: str, where: str) -> list[str]:
    """A console page asked without a session (or with a bad one) sends to the sign-in page."""
    failures: list[str] = []
    for label, cookies in [("no session", {}), ("a bad session", {"steward_session": "forged"})]:
        world.client.cookies.clear()
        world.client.cookies.update(cookies)
        response = await world.client.request(method, path)
        world.client.cookies.clear()
        location = response.headers.get("location", "")
        if response.status_code != 303 or not location.startswith("/console/login?next="):
            failures.append(f"{where}: {label} got {_said(response)}, not a redirect to sign in")
    return failures


def _is_refused_page(response: httpx.Response) -> bool:
    """A console page may refuse with a page that says so (403, HTML) instead of a problem."""
    content_type = response.headers.get("content-type", "")
    return response.status_code == HTTPStatus.FORBIDDEN and content_type.startswith("text/html")


def _is_problem(response: httpx.Response, status: int) -> bool:
    if response.status_code != status or response.headers.get("content-type") != PROBLEM_JSON:
        return False
    body = response.json()
    return isinstance(body, dict) and body.get("status") == status


def _said(response: httpx.Response) -> str:
    return f"{response.status_code} {response.headers.get('content-type')} {response.text[:120]!r}"


async def test_the_gateway_intake_refuses_user_tokens(world: World) -> None:
    for method, path in GATEWAY_TOKEN_ROUTES:
        for user in ["admin", "supervisor-a", "street-officer"]:
            response = await world.call(method, path, user, content=b"{}")
            assert _is_problem(response, 401), (path, user, _said(response))
        response = await world.client.request(method, path, content=b"{}")
        assert _is_problem(response, 401), _said(response)


def test_a_new_route_without_a_check_is_caught() -> None:
    async def sneaky() -> dict[str, str]:
        return {}

    app = create_app()
    assert unguarded(app) == []
    app.add_api_route(f"{API}/sneaky", sneaky, methods=["GET", "POST"])
    app.add_api_route("/backdoor", sneaky, methods=["DELETE"])
    hidden = APIRouter()
    hidden.add_api_route("/hidden", sneaky, include_in_schema=False)
    guarded = APIRouter(dependencies=[require(Role.ADMIN)])
    guarded.add_api_route("/guarded", sneaky)
    app.include_router(hidden, prefix=API)
    app.include_router(guarded, prefix=API)
    assert [failure.split(":")[0] for failure in unguarded(app)] == [
        f"GET {API}/sneaky",
        f"POST {API}/sneaky",
        "DELETE /backdoor",
        f"GET {API}/hidden",
    ]


def test_require_records_its_roles_and_needs_one() -> None:
    app = create_app()
    by_route = {(op.method, op.path): op for op in operations(app)}
    (dead_letters,) = by_route[("GET", "/api/v1/dead-letters")].checks
    assert dead_letters.roles == {Role.SUPERVISOR, Role.ADMIN}
    assert not dead_letters.area_officers
    with pytest.raises(ValueError, match="at least one role"):
        require()


# --- area officers and companies ------------------------------------------------------------------


async def test_a_street_officer_sees_every_company_in_the_street_and_none_outside(
    world: World,
) -> None:
    in_street = {"a-in", "a-in-2", "b-in", "b-in-2"}
    for officer in ["street-officer", "street-watch"]:
        alarms = await world.items(officer, f"{API}/alarms")
        assert {a["fingerprint"] for a in alarms} == {fingerprint(d) for d in in_street}
        assert {a["gateway_id"] for a in alarms} == {"gw-a", "gw-b"}  # both companies
        devices = await world.items(officer, f"{API}/devices")
        assert {d["id"] for d in devices} == in_street
        gateways = await world.items(officer, f"{API}/gateways")
        assert {g["id"] for g in gateways} == {"gw-a", "gw-b"}  # sited in the street
        for device in DEVICES.keys() - in_street:
            for path in [f"{API}/devices/{device}", f"{API}/alarms/{quote(fingerprint(device))}"]:
                assert (await world.call("GET", path, officer)).status_code == 404, path
            telemetry = await world.call(
                "GET",
                f"{API}/telemetry",
                officer,
                params={"device": device, "metric": Metric.TEMPERATURE_C.value},
            )
            assert telemetry.status_code == 404, telemetry.text
        ok = await world.call("GET", f"{API}/devices/b-in", officer)
        assert ok.status_code == 200, ok.text
        assert (await world.call("GET", f"{API}/gateways/gw-c", officer)).status_code == 404
        sites = await world.items(officer, f"{API}/sites")
        assert {site["path"] for site in sites} == {"d1", "d1/s1", "d1/s1/c1"}
        for path in ["d2", "d1/s2"]:
            assert (await world.call("GET", f"{API}/sites/{path}", officer)).status_code == 404
    # a grid member sees the grid
    alarms = await world.items("grid-member", f"{API}/alarms")
    assert {a["fingerprint"] for a in alarms} == {fingerprint("a-in"), fingerprint("b-in")}
    # dead letters belong to a company's staff: an officer (a supervisor) sees none
    assert len(await world.items("supervisor-a", f"{API}/dead-letters")) == 1
    assert await world.items("street-officer", f"{API}/dead-letters") == []
    # the company's staff without an area still see their whole company, and only it
    company_a = await world.items("supervisor-a", f"{API}/devices")
    assert {d["id"] for d in company_a} == {d for d, (g, _) in DEVICES.items() if g == "gw-a"}


async def test_an_area_officer_changes_nothing(world: World) -> None:
    for path, body in [
        (f"{API}/devices/b-in", {"kind": "smoke"}),
        (f"{API}/gateways/gw-b", {"site": "d1/s1/c2"}),
    ]:
        response = await world.patch(path, "street-officer", body)
        assert _is_problem(response, 403), _said(response)
        assert "area officer" in response.json()["detail"]
    device = await world.call("GET", f"{API}/devices/b-in", "street-officer")
    assert device.json()["kind"] != "smoke"


async def test_a_technician_cannot_see_or_change_another_companys_device(world: World) -> None:
    for device in ["b-in", "b-in-2"]:
        seen = await world.call("GET", f"{API}/devices/{device}", "tech-a")
        assert _is_problem(seen, 404), _said(seen)
        changed = await world.patch(f"{API}/devices/{device}", "tech-a", {"kind": "smoke"})
        assert _is_problem(changed, 404), _said(changed)
        alarm = await world.call("GET", f"{API}/alarms/{quote(fingerprint(device))}", "tech-a")
        assert _is_problem(alarm, 404), _said(alarm)
    own = await world.items("tech-a", f"{API}/devices")
    assert {d["id"] for d in own} == {"a-in", "a-in-2"}  # company A within d1/s1


# --- who may be an area officer -----------------------------------------------------------------


def test_users_add_makes_an_area_officer_without_a_company(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", f"sqlite:///{tmp_path}/steward.db"]
    officer = ["users", "add", "zhang", "--role", "supervisor", "--area", "d1/s1"]
    assert main([*officer, *db]) == 0
    assert "api token: " in capsys.readouterr().out
    for refused, says in [
        (["users", "add", "li", "--role", "operator"], "--company is required"),
        (["users", "add", "li", "--role", "technician", "--area", "d1/s1"], "needs --company"),
        (["users", "add", "li", "--role", "resident", "--area", "d1"], "needs --company"),
        (["users", "add", "zhang", "--rotate", "--area", ""], "--company is required"),
        (["users", "add", "zhang", "--rotate", "--role", "technician"], "needs --company"),
    ]:
        assert main([*refused, *db]) == 2, refused
        err = capsys.readouterr().err
        assert err.startswith("cloud-ingest users add: error: "), err
        assert says in err, err
        assert err.count("\n") == 1, err
    assert main(["users", "add", "zhang", "--rotate", "--area", "d1/s2", *db]) == 0
    assert main(["users", "add", "zhang", "--rotate", "--role", "operator", *db]) == 0


async def test_add_user_checks_the_scope(tmp_path: Path) -> None:
    from cloud_ingest import migrations  # noqa: PLC0415
    from cloud_ingest.infra.db import create_engine  # noqa: PLC0415

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/steward.db")
    try:
        await migrations.upgrade(engine)
        assert await add_user(engine, "wang", role="operator", company=None, area="d1/s1/c1/g1")
        with pytest.raises(UserError, match="needs --company"):
            await add_user(engine, "zhao", role="technician", company=None, area="d1")
        assert await add_user(engine, "root", role="admin", company=None)
    finally:
        await engine.dispose()
