"""The live stream `GET /api/v1/stream`: real `cloud-ingest serve` processes, real SSE clients.

Events are written as production writes them: alarm changes through `IngestService` (the ingest
records them in the batch's transaction), other events with `stream.outbox.record`, both from this
test process into the database the servers poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from ingest_server import cloud_ingest_env
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest import migrations
from cloud_ingest.alarms.sweep import AlarmSweep, SweepSettings
from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.service import add_user
from cloud_ingest.infra.db import create_engine
from cloud_ingest.infra.schema import gateways, stream_events
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.service import IngestService
from cloud_ingest.ingest.work_orders import NoWorkOrders
from cloud_ingest.stream.hub import Hub, HubSettings
from cloud_ingest.stream.outbox import record
from cloud_ingest.stream.scope import event_scope, sees_event
from core.envelope_json import dumps
from core.types import AlarmEvent, AlarmState, Envelope, Severity
from simulators.services import free_port

GUARD_S = 20.0
"""A hang guard only: every wait below ends as soon as its condition holds."""


# --- servers and clients ---------------------------------------------------------------------


class Server:
    """`cloud-ingest serve` on a free port (no MQTT), its log in a file."""

    def __init__(self, workdir: Path, db_url: str, env: Mapping[str, str] | None = None) -> None:
        """Prepare (not start)."""
        self.workdir, self.db_url, self.env = workdir, db_url, dict(env or {})
        self.port = free_port()
        self.log = workdir / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Server:
        """Start and wait for `/readyz`."""
        env = cloud_ingest_env(
            {"STEWARD_LOG_LEVEL": "warning", "STEWARD_STREAM_POLL_INTERVAL_S": "0.05", **self.env}
        )
        args = ["serve", "--db", self.db_url, "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-m", "cloud_ingest.cli", *args],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        async with httpx.AsyncClient() as client, asyncio.timeout(30):
            while True:
                assert self.proc.poll() is None, self.log.read_text(errors="replace")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/readyz", timeout=2)).status_code == 200:
                        return self
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """SIGTERM and wait (killed after 20 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Client:
    """An SSE client reading one stream in a task: its events, whether it connected and ended."""

    events: list[dict[str, Any]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    go: asyncio.Event = field(default_factory=asyncio.Event)
    """Cleared: the client stops reading after the `connected` comment (a slow client)."""
    task: asyncio.Task[None] | None = None

    @property
    def ids(self) -> list[int]:
        """The ids of the events received (late ones, without an SSE id, excluded)."""
        return [int(e["id"]) for e in self.events if "id" in e]

    @property
    def last_id(self) -> str | None:
        """The last SSE id received, as `EventSource` keeps it."""
        ids = [e["id"] for e in self.events if "id" in e]
        return ids[-1] if ids else None

    async def wait_for(self, count: int) -> None:
        """Until `count` events arrived (or the stream ended: then fail)."""
        async with asyncio.timeout(GUARD_S):
            while len(self.events) < count:
                assert not self.ended.is_set(), f"stream ended after {len(self.events)} events"
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Drop the connection."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def _read(
    client: Client, http: httpx.AsyncClient, url: str, headers: Mapping[str, str]
) -> None:
    try:
        async with http.stream("GET", url, headers=headers, timeout=None) as response:
            client.status = response.status_code
            if response.status_code != 200:
                await response.aread()
                return
            event: dict[str, Any] = {}
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    if line.startswith(": connected"):
                        client.connected.set()
                        await client.go.wait()
                    continue
                if not line:
                    if "data" in event:
                        event["payload"] = json.loads(event["data"])
                        client.events.append(event)
                    event = {}
                    continue
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
    finally:
        client.ended.set()
        await http.aclose()


async def connect(
    base: str,
    token: str,
    *,
    last_event_id: str | None = None,
    in_query: bool = False,
    slow: bool = False,
) -> Client:
    """Open a stream and wait until the server subscribed it (its `connected` comment)."""
    client = Client()
    if not slow:
        client.go.set()
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    if in_query:
        params["access_token"] = token
        if last_event_id is not None:
            params["last_event_id"] = last_event_id
    else:
        headers["Authorization"] = f"Bearer {token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
    url = str(httpx.URL(f"{base}/api/v1/stream", params=params))
    http = httpx.AsyncClient()
    client.task = asyncio.create_task(_read(client, http, url, headers))
    async with asyncio.timeout(GUARD_S):
        done = asyncio.create_task(client.ended.wait())
        await asyncio.wait(
            [asyncio.create_task(client.connected.wait()), done], return_when="FIRST_COMPLETED"
        )
        done.cancel()
    assert client.connected.is_set(), f"not connected: status {client.status}"
    return client


# --- data --------------------------------------------------------------------------------------


async def migrated(url: str) -> AsyncEngine:
    """An engine on `url`, migrated to the newest revision."""
    engine = create_engine(url)
    await migrations.upgrade(engine)
    return engine


async def add_gateway(engine: AsyncEngine, gateway: str, company: str) -> None:
    """Register `gateway` as `company`'s."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(gateways).values(id=gateway, company=company, created_at=datetime.now(UTC))
        )


def alarm_up(
    gateway: str, device: str, location: str, seq: int = 1, valid_s: float | None = None
) -> Incoming:
    """An envelope of `gateway` with one FIRING smoke alarm of `device` at `location`."""
    now = datetime.now(UTC)
    valid_until = None if valid_s is None else now + timedelta(seconds=valid_s)
    event = AlarmEvent(
        fingerprint=f"{location}/{device}/smoke",
        seq=seq,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=now,
        at=now,
        rule_id="smoke",
        device_id=device,
        location=location,
        description="smoke in the stairwell",
        valid_until=valid_until,
    )
    envelope = Envelope(gateway, uuid4(), now, alarm_events=(event,))
    return Incoming(f"steward/v1/{gateway}/up", dumps(envelope), now)


async def write(
    engine: AsyncEngine,
    n: int,
    *,
    key: str = "wo",
    company: str = "acme",
    size: int = 0,
    per_transaction: int = 1,
) -> list[int]:
    """`n` work-order events, `per_transaction` in each transaction; their ids."""
    ids: list[int] = []
    while len(ids) < n:
        async with engine.begin() as conn:
            for _ in range(min(per_transaction, n - len(ids))):
                k = len(ids)
                data = {"n": k, "pad": "x" * size}
                ids.append(
                    await record(
                        conn,
                        kind="work_order",
                        key=f"{key}-{k}",
                        company=company,
                        location="d1/c1",
                        data=data,
                    )
                )
    return ids


def sqlite_url(tmp_path: Path) -> str:
    """The server's SQLite database under `tmp_path`."""
    return f"sqlite+aiosqlite:///{tmp_path}/var/steward.db"


# --- tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on a SQLite database for the tests below (each uses its own users and keys).

    Its client queues hold 64 events (the slow-client test fills one).
    """
    workdir = tmp_path_factory.mktemp("stream")

    async def migrate() -> None:
        await (await migrated(sqlite_url(workdir))).dispose()

    asyncio.run(migrate())
    server = Server(workdir, sqlite_url(workdir), {"STEWARD_STREAM_QUEUE_SIZE": "64"})
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.stop())


async def test_an_ingested_alarm_is_streamed_to_its_company_only(shared: Server) -> None:
    engine = create_engine(shared.db_url)
    try:
        await add_gateway(engine, "gw-a", "acme")
        await add_gateway(engine, "gw-b", "other")
        acme = await add_user(engine, "op-a", role="operator", company="acme")
        other = await add_user(engine, "op-b", role="operator", company="other")
        elsewhere = await add_user(engine, "tech-a", role="technician", company="acme", area="d2")
        clients = [await connect(shared.url, t) for t in (acme, other, elsewhere)]
        a, b, tech = clients
        ingest = IngestService(engine)
        await ingest.settle([alarm_up("gw-a", "smoke-1", "d1/c1/b1")])
        await ingest.settle([alarm_up("gw-b", "smoke-9", "d1/c1/b2")])
        await ingest.settle([alarm_up("gw-a", "smoke-2", "d2/c1/b1")])
        await a.wait_for(2)
        await b.wait_for(1)
        await tech.wait_for(1)

        first = a.events[0]
        assert first["event"] == "alarm"
        assert first["payload"]["key"] == "d1/c1/b1/smoke-1/smoke"
        assert first["payload"]["company"] == "acme"
        assert first["payload"]["data"]["state"] == "firing"
        assert first["payload"]["data"]["severity"] == "critical"
        assert first["payload"]["data"]["description"] == "smoke in the stairwell"
        # ids are delivered in order, so a later event proves the earlier ones were filtered
        assert [e["payload"]["key"] for e in b.events] == ["d1/c1/b2/smoke-9/smoke"]
        assert [e["payload"]["key"] for e in tech.events] == ["d2/c1/b1/smoke-2/smoke"]
        assert [e["payload"]["key"] for e in a.events] == [
            "d1/c1/b1/smoke-1/smoke",
            "d2/c1/b1/smoke-2/smoke",
        ]
        for client in clients:
            await client.close()

        async with httpx.AsyncClient() as http:
            anonymous = await http.get(f"{shared.url}/api/v1/stream")
            bad = await http.get(
                f"{shared.url}/api/v1/stream",
                headers={"Authorization": f"Bearer {acme}", "Last-Event-ID": "x1"},
            )
        assert anonymous.status_code == 401
        assert bad.status_code == 400
    finally:
        await engine.dispose()


async def test_resume_after_a_drop_gets_exactly_the_missed_events(shared: Server) -> None:
    engine = create_engine(shared.db_url)
    try:
        token = await add_user(engine, "op-resume", role="operator", company="resume")
        client = await connect(shared.url, token)
        first = await write(engine, 2, key="first", company="resume")
        await client.wait_for(2)
        assert client.ids == first
        await client.close()  # the network drops

        missed = await write(engine, 3, key="missed", company="resume")
        await write(engine, 2, key="not-ours", company="other")
        resumed = await connect(shared.url, token, last_event_id=client.last_id)
        await resumed.wait_for(3)
        live = await write(engine, 1, key="live", company="resume")
        await resumed.wait_for(4)
        assert resumed.ids == [*missed, *live]
        await resumed.close()
    finally:
        await engine.dispose()


async def test_a_server_restart_in_the_middle_loses_nothing(shared: Server) -> None:
    engine = create_engine(shared.db_url)
    try:
        token = await add_user(engine, "op-restart", role="operator", company="restart")
        client = await connect(shared.url, token)
        before = await write(engine, 2, key="before", company="restart")
        await client.wait_for(2)

        await shared.stop()  # its clients' streams end
        async with asyncio.timeout(GUARD_S):
            await client.ended.wait()
        while_down = await write(engine, 3, key="down", company="restart")
        await shared.start()
        # EventSource style: the token and the resume point in the query
        again = await connect(shared.url, token, last_event_id=client.last_id, in_query=True)
        await again.wait_for(3)
        after = await write(engine, 2, key="after", company="restart")
        await again.wait_for(5)
        assert client.ids == before
        assert again.ids == [*while_down, *after]
        await again.close()
    finally:
        await engine.dispose()


async def test_a_slow_client_is_cut_off_and_others_get_everything(shared: Server) -> None:
    engine = create_engine(shared.db_url)
    try:
        token = await add_user(engine, "op-slow", role="operator", company="slow")
        fast = await connect(shared.url, token)
        slow = await connect(shared.url, token, slow=True)
        # 12 MB: far more than the socket buffers (at most 4 MB) and the slow client's queue hold
        ids = await write(engine, 400, company="slow", size=32 * 1024, per_transaction=50)
        await fast.wait_for(len(ids))
        assert fast.ids == ids

        slow.go.set()  # reads again: what was sent before the cut, then the end
        async with asyncio.timeout(GUARD_S):
            await slow.ended.wait()
        assert slow.ids == ids[: len(slow.ids)]
        assert len(slow.ids) < len(ids)

        resumed = await connect(shared.url, token, last_event_id=slow.last_id or "0")
        await resumed.wait_for(len(ids) - len(slow.ids))
        assert slow.ids + resumed.ids == ids
        assert not fast.ended.is_set()
        for client in (fast, resumed):
            await client.close()
    finally:
        await engine.dispose()


async def test_two_processes_on_postgresql_deliver_every_event_in_order(
    tmp_path: Path, postgres_url: str
) -> None:
    engine = await migrated(postgres_url)
    servers = [Server(tmp_path, postgres_url, {"STEWARD_STREAM_GAP_GRACE_S": "1"}) for _ in "12"]
    try:
        await add_gateway(engine, "gw-a", "acme")
        token = await add_user(engine, "op", role="operator", company="acme")
        await asyncio.gather(*(server.start() for server in servers))
        clients = [await connect(server.url, token) for server in servers]

        # a transaction holding a lower id commits after others (out of order), one rolls back
        slow_conn = await engine.connect()
        slow_tx = await slow_conn.begin()
        held = await record(
            slow_conn, kind="work_order", key="held", company="acme", location="d1", data={}
        )
        async with engine.connect() as conn:
            tx = await conn.begin()
            await record(
                conn, kind="work_order", key="gone", company="acme", location="d1", data={}
            )
            await tx.rollback()
        ingest = IngestService(engine)
        writers = [write(engine, 10, key=f"w{w}") for w in range(4)]
        ingested = [ingest.settle([alarm_up("gw-a", f"dev-{k}", "d1/c1")]) for k in range(5)]
        written, _ = await asyncio.gather(asyncio.gather(*writers), asyncio.gather(*ingested))
        await slow_tx.commit()
        await slow_conn.close()

        async with engine.connect() as conn:
            query = select(stream_events.c.id).order_by(stream_events.c.id)
            expected = list((await conn.execute(query)).scalars())
        assert len(expected) == 1 + 40 + 5
        assert held in expected
        assert sum(len(w) for w in written) == 40
        for client in clients:
            await client.wait_for(len(expected))
            # every event once; those with an SSE id in id order. The held one comes in order,
            # or late (without an SSE id) if it took longer than the grace to commit.
            received = [e["payload"]["id"] for e in client.events]
            assert sorted(received) == expected
            assert client.ids == sorted(client.ids)
            assert set(client.ids) >= set(expected) - {held}
            await client.close()
    finally:
        await asyncio.gather(*(server.stop() for server in servers))
        await engine.dispose()


async def test_the_python_scope_predicate_agrees_with_the_sql_filter(tmp_path: Path) -> None:
    engine = await migrated(sqlite_url(tmp_path))
    places = ["", "d1", "d1/c1", "d1/c1/b1", "d1/c10", "d1_c1", "d1/c1%", "d2/c1", "D1/c1"]
    companies = ["acme", "other", ""]
    people = ["", "acme-d1/c1", "other-d1", "someone"]
    users = [
        User("admin", Role.ADMIN, "", ""),
        *(
            User(f"{c}-{a}", role, c, a)
            for c in ("acme", "other", "")
            for a in ("", "d1", "d1/c1", "/d1/c1/", "d1/c", "d1_c1")
            for role in (Role.OPERATOR, Role.RESIDENT, Role.TECHNICIAN)
        ),
    ]
    try:
        async with engine.begin() as conn:
            for company in companies:
                for place in places:
                    await record(
                        conn, kind="alarm", key="k", company=company, location=place, data={}
                    )
                    for person in people:
                        data = {"requester": person or None, "assignee": person or None}
                        await record(
                            conn,
                            kind="work_order",
                            key="1",
                            company=company,
                            location=place,
                            data=data,
                        )
        t = stream_events.c
        async with engine.connect() as conn:
            rows = (await conn.execute(select(t.id, t.kind, t.company, t.location, t.data))).all()
            for user in users:
                query = select(t.id).where(event_scope(user))
                by_sql = set((await conn.execute(query)).scalars())
                by_python = {
                    r.id for r in rows if sees_event(user, r.kind, r.company, r.location, r.data)
                }
                assert by_python == by_sql, user
                if user.role is Role.RESIDENT:
                    mine = {r.id for r in rows if r.kind == "work_order" and r.id in by_sql}
                    assert {r.data["requester"] for r in rows if r.id in mine} <= {user.name}
    finally:
        await engine.dispose()


async def test_the_hub_holds_an_id_until_it_commits_and_gives_up_a_rolled_back_one(
    postgres_url: str,
) -> None:
    engine = await migrated(postgres_url)
    now = [0.0]
    hub = Hub(engine, HubSettings(gap_grace=5.0, late_horizon=60.0), clock=lambda: now[0])
    admin = User("admin", Role.ADMIN, "", "")
    sub = hub.subscribe(admin)

    def received() -> list[tuple[int, bool]]:
        got = []
        while not sub.queue.empty():
            event = sub.queue.get_nowait()
            assert event is not None
            got.append((event.id, event.late))
        return got

    async def event(conn: Any, key: str) -> int:
        return await record(conn, kind="alarm", key=key, company="", location="", data={})

    try:
        first = await engine.connect()
        tx1 = await first.begin()
        one = await event(first, "one")
        async with engine.begin() as conn:
            two = await event(conn, "two")
        assert await hub.poll_once() == 0  # two is visible, one is not: hold two
        assert received() == []
        await tx1.commit()
        assert await hub.poll_once() == 2
        assert received() == [(one, False), (two, False)]

        async with engine.connect() as conn:
            tx = await conn.begin()
            await event(conn, "rolled back")
            await tx.rollback()
        late_conn = await engine.connect()
        late_tx = await late_conn.begin()
        late = await event(late_conn, "late")
        async with engine.begin() as conn:
            after = await event(conn, "after")
        assert await hub.poll_once() == 0
        now[0] += 5.1  # the grace passes: both missing ids are given up
        assert await hub.poll_once() == 1
        assert received() == [(after, False)]
        await late_tx.commit()  # committed after all: delivered late, without moving the watermark
        assert await hub.poll_once() == 1
        assert received() == [(late, True)]
        assert hub.watermark == after
        assert hub.stats.gaps_given_up == 2
        assert hub.stats.late == 1
        await first.close()
        await late_conn.close()
    finally:
        await hub.stop()
        await engine.dispose()


async def test_prune_deletes_only_old_rows(tmp_path: Path) -> None:
    engine = await migrated(sqlite_url(tmp_path))
    hub = Hub(engine, HubSettings())
    try:
        old = await write(engine, 2)
        kept = await write(engine, 1)
        async with engine.begin() as conn:
            await conn.execute(
                update(stream_events)
                .where(stream_events.c.id.in_(old))
                .values(at=datetime(2020, 1, 1, tzinfo=UTC))
            )
        assert await hub.prune() == 2
        assert await hub.prune() == 0  # idempotent: any process may run it
        async with engine.begin() as conn:
            await conn.execute(delete(stream_events))
        later = await write(engine, 1)
        assert later[0] > kept[0]  # ids are never reused, even after the table was emptied
    finally:
        await engine.dispose()


async def test_record_takes_json_and_times_and_refuses_the_rest(tmp_path: Path) -> None:
    engine = await migrated(sqlite_url(tmp_path))
    at = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            with pytest.raises(ValueError, match="unknown stream event kind"):
                await record(conn, kind="nonsense", key="k", company="", location="", data={})
            with pytest.raises(ValueError, match="JSON-serialisable"):
                await record(conn, kind="alarm", key="k", company="", location="", data={"x": {1}})
            nan = float("nan")
            with pytest.raises(ValueError, match="JSON-serialisable"):
                await record(conn, kind="alarm", key="k", company="", location="", data={"x": nan})
            got = await record(
                conn, kind="alarm", key="k", company="", location="", data={"at": at, "n": [1]}
            )
            row = (await conn.execute(select(stream_events).where(stream_events.c.id == got))).one()
        assert row.data == {"at": "2026-12-07T08:30:00+00:00", "n": [1]}
    finally:
        await engine.dispose()


async def test_the_alarm_sweep_streams_an_alarm_that_went_stale(tmp_path: Path) -> None:
    engine = await migrated(sqlite_url(tmp_path))
    try:
        await add_gateway(engine, "gw-s", "acme")
        await IngestService(engine).settle([alarm_up("gw-s", "smoke-1", "d1/c1", valid_s=60)])
        sweep = AlarmSweep(engine, NoWorkOrders(), SweepSettings(silent_after=None))
        await sweep.run_once(datetime.now(UTC) + timedelta(hours=1))
        t = stream_events.c
        async with engine.connect() as conn:
            rows = (await conn.execute(select(t.kind, t.company, t.data).order_by(t.id))).all()
        assert [(r.kind, r.company, r.data["stale"]) for r in rows] == [
            ("alarm", "acme", False),
            ("alarm", "acme", True),
        ]
    finally:
        await engine.dispose()
