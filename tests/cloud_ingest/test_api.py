"""API v1: user tokens, the permission dependency, row scoping and the read endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from cloud_ingest.auth.service import add_user
from cloud_ingest.cli import main
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.schema import stream_events, users
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON
from core.envelope_json import dumps
from core.types import AlarmEvent, AlarmState, Envelope, Severity

NOW = datetime.now(UTC).replace(microsecond=0)

# (fingerprint's device, location, state, severity, seconds before NOW of its last event)
A_ALARMS = [
    ("dev-1", "d1/s1/c1/g1", AlarmState.FIRING, Severity.CRITICAL, 10),
    ("dev-2", "d1/s1/c1/g2", AlarmState.FIRING, Severity.WARNING, 20),
    ("dev-3", "d1/s1/c2/g1", AlarmState.RESOLVED, Severity.CRITICAL, 30),
    ("dev-4", "d1/s1/c2/g1", AlarmState.FIRING, Severity.CRITICAL, 30),  # same time as dev-3
    ("dev-5", "d1/s10/c1/g1", AlarmState.FIRING, Severity.INFO, 40),  # not within d1/s1
    ("dev-6", "d2/s1/c1/g1", AlarmState.PENDING, Severity.WARNING, 50),
    ("dev-7", "d1/s1/c1/g1", AlarmState.FIRING, Severity.CRITICAL, 60),
]
B_ALARMS = [("dev-b1", "d1/s1/c1/g1", AlarmState.FIRING, Severity.CRITICAL, 5)]


def fingerprint(device: str) -> str:
    return f"site/{device}/smoke"


def alarm(
    device: str,
    location: str,
    state: AlarmState,
    severity: Severity,
    ago: int,
    *,
    seq: int = 1,
) -> AlarmEvent:
    at = NOW - timedelta(seconds=ago)
    return AlarmEvent(
        fingerprint=fingerprint(device),
        seq=seq,
        state=state,
        severity=severity,
        starts_at=NOW - timedelta(seconds=120),
        at=at,
        rule_id="smoke",
        device_id=device,
        location=location,
        description=f"smoke at {location}",
        valid_until=at + timedelta(minutes=5) if state is AlarmState.FIRING else None,
        value=True,
        evidence={"smoke_pct": 12.5},
    )


def up(gateway: str, *events: AlarmEvent) -> Incoming:
    envelope = Envelope(
        gateway_id=gateway,
        batch_id=uuid4(),
        sent_at=NOW,
        readings=(),
        alarm_events=events,
    )
    return Incoming(f"steward/v1/{gateway}/up", dumps(envelope), NOW)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


@dataclass
class World:
    """A served app with gateways of two companies, their alarms, and users of every kind."""

    client: httpx.AsyncClient
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)
    gateway_token: str = ""

    async def get(self, user: str, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return await self.client.get(path, params=params, headers=headers)

    async def post(self, user: str, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return await self.client.post(path, json=body, headers=headers)

    async def ok(self, user: str, path: str, **params: Any) -> Any:
        response = await self.get(user, path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    async def all_pages(self, user: str, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(100):
            page = await self.ok(user, path, **params, **({"after": after} if after else {}))
            assert set(page) == {"items", "next"}
            items += page["items"]
            after = page["next"]
            if after is None:
                return items
        raise AssertionError("pages never ended")


USERS = {
    "admin": ("admin", None, None),
    "op-a": ("operator", "A", None),
    "tech-a": ("technician", "A", "d1/s1"),
    "op-a-d2": ("operator", "A", "d2"),
    "sup-a": ("supervisor", "A", None),
    "resident-a": ("resident", "A", "d1/s1/c1"),
    "op-b": ("operator", "B", None),
    "sup-b": ("supervisor", "B", None),
}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with built_world(f"sqlite+aiosqlite:///{tmp_path}/steward.db") as world:
        yield world


@asynccontextmanager
async def built_world(url: str) -> AsyncIterator[World]:
    flags = {"database_url": url, "migrate_on_start": True}
    app = create_app(load_settings(environ={}, flags=flags))
    async with serving(app) as client:
        engine = app.state.engine
        world = World(client, app)
        creds = await add_gateway(engine, "gw-a", company="A", site="d1")
        world.gateway_token = creds.http_token
        await add_gateway(engine, "gw-b", company="B", site="d1")
        for name, (role, company, area) in USERS.items():
            world.tokens[name] = await add_user(engine, name, role=role, company=company, area=area)
        ingest = app.state.ingest
        await ingest([up("gw-a", *(alarm(*row) for row in A_ALARMS))])
        await ingest([up("gw-b", *(alarm(*row) for row in B_ALARMS))])
        await ingest(
            [
                Incoming("steward/v1/gw-a/up", b"{not json", NOW),
                Incoming("steward/v1/gw-b/up", b"{not json either", NOW),
                Incoming("steward/v1/gw-a/up", b'{"schema_version": 99}', NOW),
            ]
        )
        yield world


def a_fingerprints(*devices: str) -> list[str]:
    return [fingerprint(d) for d in devices]


# --- users and tokens -------------------------------------------------------------------------


def test_users_add_prints_a_token_once_and_stores_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/steward.db"
    add = ["users", "add", "ann", "--role", "operator", "--company", "A", "--area", "/d1/s1/"]
    assert main([*add, "--db", db]) == 0
    out = capsys.readouterr().out
    token = next(line.split(": ", 1)[1] for line in out.splitlines() if "api token" in line)
    assert len(token) >= 40

    async def stored() -> list[dict[str, Any]]:
        from cloud_ingest.infra.db import create_engine  # noqa: PLC0415

        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/steward.db")
        try:
            async with engine.connect() as conn:
                return [dict(r) for r in (await conn.execute(select(users))).mappings()]
        finally:
            await engine.dispose()

    import asyncio  # noqa: PLC0415

    (row,) = asyncio.run(stored())
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(v) for v in row.values()}
    assert (row["name"], row["role"], row["company"], row["area"]) == (
        "ann",
        "operator",
        "A",
        "d1/s1",
    )

    assert main([*add, "--db", db]) == 1  # a duplicate is refused
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "already exists; use --rotate" in err

    assert main(["users", "add", "ann", "--rotate", "--db", db]) == 0
    out = capsys.readouterr().out
    rotated = next(line.split(": ", 1)[1] for line in out.splitlines() if "api token" in line)
    assert rotated != token
    (row,) = asyncio.run(stored())
    assert row["token_hash"] == hashlib.sha256(rotated.encode()).hexdigest()
    assert row["role"] == "operator"

    for bad, code in [
        (["users", "add", "bob", "--role", "boss", "--company", "A"], 2),
        (["users", "add", "bob", "--role", "operator"], 2),  # no company
        (["users", "add", "bob bob", "--role", "admin"], 2),
        (["users", "add", "bob", "--role", "operator", "--company", "A", "--area", "a//b"], 2),
        (["users", "add", "nobody", "--rotate"], 1),
    ]:
        assert main([*bad, "--db", db]) == code, bad
        err = capsys.readouterr().err
        assert err.startswith("cloud-ingest users add: error: "), err
        assert err.count("\n") == 1, err


def test_users_add_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["users", "add", "--help"])
    assert exited.value.code == 0
    assert "--role" in capsys.readouterr().out


async def test_missing_bad_and_gateway_tokens_are_401(world: World) -> None:
    paths = ["/api/v1/alarms", "/api/v1/gateways", "/api/v1/devices", "/api/v1/dead-letters"]
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {world.gateway_token}"},
        {"Authorization": f"Basic {world.tokens['admin']}"},
        {"Authorization": "Bearer"},
    ]
    for path in [*paths, f"/api/v1/alarms/{fingerprint('dev-1')}", "/api/v1/gateways/gw-a"]:
        for headers in attempts:
            response = await world.client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["content-type"] == PROBLEM_JSON
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["status"] == 401


async def test_a_role_not_allowed_is_403(world: World) -> None:
    for user, path in [
        ("resident-a", "/api/v1/gateways"),
        ("resident-a", "/api/v1/devices"),
        ("resident-a", "/api/v1/gateways/gw-a"),
        ("op-a", "/api/v1/dead-letters"),
        ("tech-a", "/api/v1/dead-letters"),
    ]:
        response = await world.get(user, path)
        assert response.status_code == 403, (user, path)
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "allowed: admin, supervisor" in response.json()["detail"] or user == "resident-a"
    assert (await world.get("resident-a", "/api/v1/alarms")).status_code == 200


# --- alarms -----------------------------------------------------------------------------------


async def test_alarms_newest_first_with_summary_columns(world: World) -> None:
    page = await world.ok("op-a", "/api/v1/alarms")
    assert page["next"] is None
    got = [item["fingerprint"] for item in page["items"]]
    # newest last event first; equal times by fingerprint, descending
    assert got == a_fingerprints("dev-1", "dev-2", "dev-4", "dev-3", "dev-5", "dev-6", "dev-7")
    first = page["items"][0]
    assert "events" not in first
    assert "work_order" not in first
    assert first["last_event_at"] == (NOW - timedelta(seconds=10)).isoformat()
    assert first["last_event_at"].endswith("+00:00")
    assert (first["state"], first["severity"], first["location"], first["gateway_id"]) == (
        "firing",
        "critical",
        "d1/s1/c1/g1",
        "gw-a",
    )


async def test_alarms_filtered_by_state_severity_and_location(world: World) -> None:
    async def fingerprints(**params: Any) -> list[str]:
        page = await world.ok("op-a", "/api/v1/alarms", **params)
        return [item["fingerprint"] for item in page["items"]]

    assert await fingerprints(state="firing") == a_fingerprints(
        "dev-1", "dev-2", "dev-4", "dev-5", "dev-7"
    )
    assert await fingerprints(severity="critical") == a_fingerprints(
        "dev-1", "dev-4", "dev-3", "dev-7"
    )
    assert await fingerprints(location="d1/s1") == a_fingerprints(
        "dev-1", "dev-2", "dev-4", "dev-3", "dev-7"
    )
    assert await fingerprints(location="d1/s1/c1/g1", state="firing", severity="critical") == (
        a_fingerprints("dev-1", "dev-7")
    )
    assert await fingerprints(location="d1/s") == []  # a path prefix is whole segments
    assert await fingerprints(location="d1_s1") == []


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
async def test_alarm_pages_follow_next_until_null_without_duplicates_or_gaps(
    world: World, limit: int
) -> None:
    everything = [i["fingerprint"] for i in (await world.ok("admin", "/api/v1/alarms"))["items"]]
    assert len(everything) == len(A_ALARMS) + len(B_ALARMS)
    paged = await world.all_pages("admin", "/api/v1/alarms", limit=limit)
    assert [i["fingerprint"] for i in paged] == everything
    critical = await world.all_pages("op-a", "/api/v1/alarms", limit=limit, severity="critical")
    assert [i["fingerprint"] for i in critical] == a_fingerprints(
        "dev-1", "dev-4", "dev-3", "dev-7"
    )


async def test_alarm_detail_has_its_events_in_seq_order(world: World) -> None:
    app_ingest = world.app.state.ingest
    row = A_ALARMS[0]
    # seq 3 arrives first, then 2: the instance keeps seq 3's state, the events are all kept
    resolved = alarm(row[0], row[1], AlarmState.RESOLVED, row[3], 1, seq=3)
    recovering = alarm(row[0], row[1], AlarmState.RECOVERING, row[3], 5, seq=2)
    await app_ingest([up("gw-a", resolved)])
    await app_ingest([up("gw-a", recovering)])
    path = "/api/v1/alarms/" + quote(fingerprint("dev-1"), safe="")
    detail = await world.ok("op-a", path)
    assert detail["fingerprint"] == fingerprint("dev-1")
    assert (detail["state"], detail["last_seq"]) == ("resolved", 3)
    assert [e["seq"] for e in detail["events"]] == [1, 2, 3]
    assert [e["state"] for e in detail["events"]] == ["firing", "recovering", "resolved"]
    assert detail["events"][0]["evidence"] == {"smoke_pct": 12.5}
    assert detail["events"][0]["at"].endswith("+00:00")
    assert "work_order" in detail
    # the fingerprint's slashes may also be sent as they are
    assert (await world.ok("op-a", f"/api/v1/alarms/{fingerprint('dev-1')}"))["last_seq"] == 3

    missing = await world.get("op-a", "/api/v1/alarms/site/nothing/here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_JSON


# --- scoping ----------------------------------------------------------------------------------


async def test_users_see_only_their_company_and_area(world: World) -> None:
    async def fingerprints(user: str) -> set[str]:
        return {i["fingerprint"] for i in await world.all_pages(user, "/api/v1/alarms")}

    a_all = set(a_fingerprints(*(row[0] for row in A_ALARMS)))
    b_all = set(a_fingerprints(*(row[0] for row in B_ALARMS)))
    assert await fingerprints("admin") == a_all | b_all
    assert await fingerprints("op-a") == a_all
    assert await fingerprints("op-b") == b_all  # same locations as A's, another company
    assert await fingerprints("tech-a") == set(
        a_fingerprints("dev-1", "dev-2", "dev-3", "dev-4", "dev-7")
    )
    assert await fingerprints("op-a-d2") == set(a_fingerprints("dev-6"))
    assert await fingerprints("resident-a") == set(a_fingerprints("dev-1", "dev-2", "dev-7"))

    a_detail = "/api/v1/alarms/" + fingerprint("dev-1")
    assert (await world.get("op-b", a_detail)).status_code == 404
    assert (await world.get("op-a-d2", a_detail)).status_code == 404
    assert (await world.get("op-b", "/api/v1/gateways/gw-a")).status_code == 404
    assert (await world.get("op-b", "/api/v1/devices/dev-1")).status_code == 404
    assert (await world.get("op-a-d2", "/api/v1/devices/dev-1")).status_code == 404

    gateways_b = await world.all_pages("op-b", "/api/v1/gateways")
    assert [g["id"] for g in gateways_b] == ["gw-b"]
    devices_b = await world.all_pages("op-b", "/api/v1/devices")
    assert [d["id"] for d in devices_b] == ["dev-b1"]
    devices_d2 = await world.all_pages("op-a-d2", "/api/v1/devices")
    assert [d["id"] for d in devices_d2] == ["dev-6"]
    letters_b = await world.all_pages("sup-b", "/api/v1/dead-letters")
    assert [d["topic"] for d in letters_b] == ["steward/v1/gw-b/up"]


# --- registry and dead letters ----------------------------------------------------------------


async def test_gateways_list_and_detail(world: World) -> None:
    everything = await world.all_pages("admin", "/api/v1/gateways", limit=1)
    assert [g["id"] for g in everything] == ["gw-a", "gw-b"]
    gw = await world.ok("op-a", "/api/v1/gateways/gw-a")
    assert set(gw) == {"id", "company", "site", "status", "last_seen", "version", "created_at"}
    assert (gw["company"], gw["site"], gw["status"]) == ("A", "d1", "unknown")
    assert gw["created_at"].endswith("+00:00")
    assert (await world.get("admin", "/api/v1/gateways/gw-z")).status_code == 404


async def test_devices_list_filters_and_detail(world: World) -> None:
    devices = await world.all_pages("op-a", "/api/v1/devices", limit=2)
    assert [d["id"] for d in devices] == [f"dev-{n}" for n in range(1, 8)]
    located = await world.all_pages("op-a", "/api/v1/devices", location="d1/s1/c2")
    assert [d["id"] for d in located] == ["dev-3", "dev-4"]
    assert await world.all_pages("admin", "/api/v1/devices", gateway="gw-b") == [
        await world.ok("admin", "/api/v1/devices/dev-b1")
    ]
    assert await world.all_pages("op-a", "/api/v1/devices", kind="pump") == []
    device = await world.ok("tech-a", "/api/v1/devices/dev-1")
    assert (device["gateway_id"], device["location"]) == ("gw-a", "d1/s1/c1/g1")
    assert device["first_seen"].endswith("+00:00")


async def test_dead_letters_summary_without_payload(world: World) -> None:
    letters = await world.all_pages("admin", "/api/v1/dead-letters", limit=1)
    assert len(letters) == 3
    assert [d["id"] for d in letters] == sorted((d["id"] for d in letters), reverse=True)
    assert all("payload" not in d and d["payload_size"] > 0 for d in letters)
    assert all(d["received_at"].endswith("+00:00") for d in letters)
    mine = await world.all_pages("sup-a", "/api/v1/dead-letters")
    assert {d["topic"] for d in mine} == {"steward/v1/gw-a/up"}
    assert len(mine) == 2
    reasons = {d["reason"] for d in letters}
    for reason in reasons:
        only = await world.all_pages("admin", "/api/v1/dead-letters", reason=reason)
        assert only
        assert {d["reason"] for d in only} == {reason}


# --- conventions ------------------------------------------------------------------------------


async def test_every_error_is_a_problem_document(world: World) -> None:
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("/api/v1/alarms", {"after": "not-a-cursor"}, 400),
        ("/api/v1/alarms", {"after": "WyJ4Il0"}, 400),  # ["x"]: a cursor of another list
        ("/api/v1/gateways", {"after": "WzFd"}, 400),  # [1]
        ("/api/v1/dead-letters", {"after": "WyJ4Il0"}, 400),
        ("/api/v1/alarms", {"state": "burning"}, 422),
        ("/api/v1/alarms", {"limit": 0}, 422),
        ("/api/v1/alarms", {"limit": 100000}, 422),
        ("/api/v1/nothing", {}, 404),
    ]
    for path, params, status in cases:
        response = await world.get("admin", path, **params)
        assert response.status_code == status, (path, params, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["status"] == status


async def test_openapi_documents_the_api(world: World) -> None:
    schema = (await world.client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in [
        "/api/v1/alarms",
        "/api/v1/alarms/{fingerprint}",
        "/api/v1/gateways",
        "/api/v1/gateways/{gateway_id}",
        "/api/v1/devices",
        "/api/v1/devices/{device_id}",
        "/api/v1/dead-letters",
    ]:
        assert path in paths, sorted(paths)
        assert paths[path]["get"]["security"] == [{"HTTPBearer": []}]
    components = schema["components"]["schemas"]
    assert {"AlarmSummary", "AlarmDetail", "GatewayOut", "DeviceOut", "DeadLetterSummary"} <= set(
        components
    )
    assert components["AlarmSummary"]["properties"]["last_event_at"]["format"] == "date-time"


async def test_the_queries_run_on_postgresql(postgres_url: str) -> None:
    async with built_world(postgres_url) as world:
        await test_alarms_newest_first_with_summary_columns(world)
        await test_alarms_filtered_by_state_severity_and_location(world)
        await test_alarm_pages_follow_next_until_null_without_duplicates_or_gaps(world, 2)
        await test_users_see_only_their_company_and_area(world)
        await test_devices_list_filters_and_detail(world)
        await test_dead_letters_summary_without_payload(world)
        await test_alarm_detail_has_its_events_in_seq_order(world)
        await test_an_alarm_is_acknowledged_once_per_episode_with_a_comment(world)


async def test_concurrent_acknowledgements_on_postgresql_one_wins(postgres_url: str) -> None:
    async with built_world(postgres_url) as world:
        path = f"/api/v1/alarms/{quote(fingerprint('dev-1'))}/actions"
        answers = await asyncio.gather(
            *(
                world.post(name, path, {"action": "ack", "comment": f"mine {i}"})
                for i, name in enumerate(["op-a", "sup-a", "admin"] * 4)
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200] + [409] * 11, codes
        detail = await world.ok("admin", f"/api/v1/alarms/{quote(fingerprint('dev-1'))}")
        assert [n["kind"] for n in detail["notes"]] == ["ack"]


# --- acknowledging alarms ---------------------------------------------------------------------


async def test_an_alarm_is_acknowledged_once_per_episode_with_a_comment(world: World) -> None:
    fp = fingerprint("dev-1")
    path = f"/api/v1/alarms/{quote(fp)}/actions"
    before = await world.ok("op-a", f"/api/v1/alarms/{quote(fp)}")
    unacked = await world.all_pages("op-a", "/api/v1/alarms", acknowledged="false")
    assert fp in {a["fingerprint"] for a in unacked}

    answer = await world.post("op-a", path, {"action": "ack", "comment": " on my way "})
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    assert (detail["acknowledged"], detail["acked_by"]) == (True, "op-a")
    assert detail["state"] == before["state"]  # acknowledging is not clearing
    assert [(n["kind"], n["actor"], n["text"]) for n in detail["notes"]] == [
        ("ack", "op-a", "on my way")
    ]
    acked = await world.all_pages("op-a", "/api/v1/alarms", acknowledged="true")
    assert [a["fingerprint"] for a in acked] == [fp]
    assert fp not in {
        a["fingerprint"]
        for a in await world.all_pages("op-a", "/api/v1/alarms", acknowledged="false")
    }

    again = await world.post("sup-a", path, {"action": "ack"})
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM_JSON
    assert again.json()["acked_by"] == "op-a"

    assert (await world.post("sup-a", path, {"action": "comment"})).status_code == 422
    assert (
        await world.post("sup-a", path, {"action": "comment", "comment": "  "})
    ).status_code == 422
    noted = await world.post("sup-a", path, {"action": "comment", "comment": "技术员已到场"})
    assert [n["text"] for n in noted.json()["notes"]] == ["on my way", "技术员已到场"]
    assert (await world.post("sup-a", path, {"action": "clear"})).status_code == 422

    # Who may: not a technician; not another company (its alarm is not found).
    assert (await world.post("tech-a", path, {"action": "ack"})).status_code == 403
    assert (await world.post("op-b", path, {"action": "ack"})).status_code == 404

    # Every note is a live-stream event of the alarm, with who said what.
    async with world.app.state.engine.connect() as conn:
        streamed = (
            (
                await conn.execute(
                    select(stream_events.c.data)
                    .where(stream_events.c.kind == "alarm", stream_events.c.key == fp)
                    .order_by(stream_events.c.id)
                )
            )
            .scalars()
            .all()
        )
    notes = [d["note"] for d in streamed if "note" in d]
    assert [(n["kind"], n["actor"]) for n in notes] == [("ack", "op-a"), ("comment", "sup-a")]
    assert streamed[-1]["acknowledged"] is True

    # The alarm resolves and fires again: a new episode, unacknowledged until someone acks it.
    first = alarm("dev-1", "d1/s1/c1/g1", AlarmState.FIRING, Severity.CRITICAL, 10)
    seq = before["last_seq"]
    resolved = dataclasses.replace(
        first,
        seq=seq + 1,
        state=AlarmState.RESOLVED,
        at=NOW - timedelta(seconds=5),
        valid_until=None,
    )
    refired = dataclasses.replace(
        first, seq=seq + 2, at=NOW - timedelta(seconds=2), starts_at=NOW - timedelta(seconds=3)
    )
    await world.app.state.ingest([up("gw-a", resolved, refired)])
    detail = await world.ok("op-a", f"/api/v1/alarms/{quote(fp)}")
    assert (detail["state"], detail["acknowledged"], detail["acked_by"]) == ("firing", False, None)
    assert (await world.post("sup-a", path, {"action": "ack"})).status_code == 200
    detail = await world.ok("op-a", f"/api/v1/alarms/{quote(fp)}")
    assert [(n["kind"], n["actor"]) for n in detail["notes"]][-1] == ("ack", "sup-a")
