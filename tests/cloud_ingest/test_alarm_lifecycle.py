"""Stale alarms and gateway outages, on SQLite and a real PostgreSQL.

A FIRING instance not re-sent goes stale (by the sweep, at a time it is given); a gateway that
goes offline raises one offline alarm, and the NO_DATA storm of its devices is inhibited (stored,
not handed to the work-order service) while fire still gets through; back online, the alarm
resolves and replayed NO_DATA is inhibited only inside the settle window.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.alarms.outages import offline_fingerprint
from cloud_ingest.alarms.stale import mark_stale
from cloud_ingest.alarms.sweep import AlarmSweep, SweepSettings
from cloud_ingest.auth.service import add_user
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.schema import alarm_events, alarm_instances, gateways
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.service import IngestService
from cloud_ingest.ingest.work_orders import AlarmInstanceChange
from cloud_ingest.main import create_app
from core.envelope_json import dumps
from core.types import AlarmEvent, AlarmState, Envelope, Severity

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
SETTLE = timedelta(seconds=120)
GRACE = timedelta(seconds=60)
OFFLINE = offline_fingerprint("gw-a")


class RecordingWorkOrders:
    """A `WorkOrderService` that keeps every change it is handed."""

    def __init__(self) -> None:
        self.changes: list[AlarmInstanceChange] = []

    async def alarm_instances_changed(self, changes: Sequence[AlarmInstanceChange]) -> None:
        self.changes.extend(changes)

    def take(self) -> list[AlarmInstanceChange]:
        taken, self.changes = self.changes, []
        return taken


def event(
    device: str,
    at: datetime,
    *,
    state: AlarmState = AlarmState.NO_DATA,
    rule: str = "no_data",
    seq: int = 1,
    valid_for: timedelta | None = None,
) -> AlarmEvent:
    return AlarmEvent(
        fingerprint=f"d1/{device}/{rule}",
        seq=seq,
        state=state,
        severity=Severity.CRITICAL if rule == "smoke" else Severity.WARNING,
        starts_at=at,
        at=at,
        rule_id=rule,
        device_id=device,
        location="d1/c1",
        valid_until=None if valid_for is None else at + valid_for,
    )


def up(received_at: datetime, *events: AlarmEvent, gateway: str = "gw-a") -> Incoming:
    envelope = Envelope(gateway, uuid4(), received_at, alarm_events=events)
    return Incoming(f"steward/v1/{gateway}/up", dumps(envelope), received_at)


def status(state: str, received_at: datetime, gateway: str = "gw-a") -> Incoming:
    doc = {"state": state, "gateway_id": gateway, "version": "1.4.0", "at": T0.isoformat()}
    return Incoming(f"steward/v1/{gateway}/status", json.dumps(doc).encode(), received_at)


async def instances(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(alarm_instances))).mappings().all()
    return {row["fingerprint"]: dict(row) for row in rows}


async def events_of(engine: AsyncEngine, fingerprint: str) -> list[dict[str, Any]]:
    query = (
        select(alarm_events)
        .where(alarm_events.c.fingerprint == fingerprint)
        .order_by(alarm_events.c.seq)
    )
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def gateway(engine: AsyncEngine, gateway_id: str = "gw-a") -> dict[str, Any]:
    async with engine.connect() as conn:
        query = select(gateways).where(gateways.c.id == gateway_id)
        return dict((await conn.execute(query)).mappings().one())


async def stale_at(engine: AsyncEngine, now: datetime) -> list[AlarmInstanceChange]:
    async with engine.begin() as conn:
        return await mark_stale(conn, now, GRACE)


async def test_stale_sweep_marks_clears_and_is_idempotent(engine: AsyncEngine) -> None:
    work_orders = RecordingWorkOrders()
    service = IngestService(engine, work_orders=work_orders)
    resend = timedelta(minutes=4)
    await service(
        [
            up(
                T0,
                event("smoke-1", T0, state=AlarmState.FIRING, rule="smoke", valid_for=resend),
                event("smoke-2", T0, state=AlarmState.FIRING, rule="smoke", valid_for=resend),
                event("smoke-3", T0, state=AlarmState.RESOLVED, rule="smoke", valid_for=resend),
            )
        ]
    )
    work_orders.take()

    assert await stale_at(engine, T0 + resend + GRACE) == []  # not past the grace yet
    marked = await stale_at(engine, T0 + resend + GRACE + timedelta(seconds=1))
    assert sorted(c.fingerprint for c in marked) == ["d1/smoke-1/smoke", "d1/smoke-2/smoke"]
    assert all(c.stale for c in marked)  # a RESOLVED instance never goes stale
    assert await stale_at(engine, T0 + timedelta(hours=1)) == []  # run again: nothing new

    # A re-send folded into the instance clears `stale`.
    later = T0 + timedelta(minutes=10)
    smoke_1 = event(
        "smoke-1", later, state=AlarmState.FIRING, rule="smoke", seq=2, valid_for=resend
    )
    await service([up(later, smoke_1)])
    rows = await instances(engine)
    assert rows["d1/smoke-1/smoke"]["stale"] is False
    assert rows["d1/smoke-2/smoke"]["stale"] is True
    assert [(c.fingerprint, c.stale) for c in work_orders.take()] == [("d1/smoke-1/smoke", False)]

    # Two processes sweeping at once mark it once and hand it on once.
    recorders = [RecordingWorkOrders(), RecordingWorkOrders()]
    settings = SweepSettings(stale_grace=GRACE, silent_after=None)
    sweeps = [AlarmSweep(engine, r, settings) for r in recorders]
    when = later + resend + GRACE + timedelta(seconds=1)
    await asyncio.gather(*(s.run_once(when) for s in sweeps))
    handed = [c for r in recorders for c in r.changes]
    assert [(c.fingerprint, c.stale, c.last_seq) for c in handed] == [("d1/smoke-1/smoke", True, 2)]
    assert (await instances(engine))["d1/smoke-1/smoke"]["stale"] is True


async def test_outage_one_alarm_no_data_inhibited_fire_through_settle_window(  # noqa: PLR0915
    engine: AsyncEngine,
) -> None:
    work_orders = RecordingWorkOrders()
    service = IngestService(engine, work_orders=work_orders, inhibit_settle=SETTLE)
    other_process = IngestService(engine, work_orders=work_orders, inhibit_settle=SETTLE)
    await service([status("online", T0)])
    # A device already silent before the outage: a real NO_DATA, handed on.
    await service([up(T0 + timedelta(minutes=1), event("old", T0 + timedelta(minutes=1)))])
    assert [c.fingerprint for c in work_orders.take()] == ["d1/old/no_data"]

    # Offline (the last will), delivered to every process: one outage, one alarm.
    went = T0 + timedelta(minutes=10)
    await service([status("offline", went)])
    await other_process([status("offline", went + timedelta(milliseconds=5))])
    await service([status("offline", went + timedelta(minutes=1))])  # retained, again
    handed = work_orders.take()
    assert [(c.fingerprint, c.state, c.rule_id, c.device_id) for c in handed] == [
        (OFFLINE, "firing", "gateway_offline", "gw-a")
    ]
    assert handed[0].inhibited_by is None
    assert [e["state"] for e in await events_of(engine, OFFLINE)] == ["firing"]
    row = await gateway(engine)
    assert (row["status"], row["offline_since"], row["online_since"]) == ("offline", went, None)
    assert (await instances(engine))["d1/old/no_data"]["inhibited_by"] == OFFLINE

    # The NO_DATA storm of 20 devices during the outage, with a fire among it.
    during = went + timedelta(minutes=5)
    storm = [event(f"dev-{n}", during) for n in range(20)]
    fire = event("smoke-9", during, state=AlarmState.FIRING, rule="smoke")
    await service([up(during, *storm[:10], fire), up(during, *storm[10:])])
    rows = await instances(engine)
    assert [rows[e.fingerprint]["inhibited_by"] for e in storm] == [OFFLINE] * 20
    assert [rows[e.fingerprint]["state"] for e in storm] == ["no_data"] * 20
    assert rows[fire.fingerprint]["inhibited_by"] is None
    assert [(c.fingerprint, c.state) for c in work_orders.take()] == [(fire.fingerprint, "firing")]

    # Back online: the alarm resolves; the outage is kept on the gateway.
    back = T0 + timedelta(minutes=30)
    await service([status("online", back)])
    await other_process([status("online", back + timedelta(milliseconds=5))])
    handed = work_orders.take()
    assert [(c.fingerprint, c.state) for c in handed] == [(OFFLINE, "resolved")]
    offline_events = await events_of(engine, OFFLINE)
    assert [e["state"] for e in offline_events] == ["firing", "resolved"]
    assert offline_events[0]["seq"] < offline_events[1]["seq"]
    row = await gateway(engine)
    assert (row["status"], row["offline_since"], row["online_since"]) == ("online", went, back)

    # The replay: NO_DATA inside the settle window is inhibited, after it not.
    inside = event("dev-late", back + SETTLE - timedelta(seconds=1))
    after = event("dev-after", back + SETTLE + timedelta(seconds=1))
    recovered = event("dev-0", back + timedelta(seconds=30), state=AlarmState.RESOLVED, seq=2)
    await service([up(back + timedelta(minutes=3), inside, after, recovered)])
    rows = await instances(engine)
    assert rows[inside.fingerprint]["inhibited_by"] == OFFLINE
    assert rows[after.fingerprint]["inhibited_by"] is None
    assert rows[recovered.fingerprint]["inhibited_by"] is None  # a later event clears it
    assert sorted(c.fingerprint for c in work_orders.take()) == sorted(
        [after.fingerprint, recovered.fingerprint]
    )

    # Once the window is over, what is still inhibited is a real silence and is handed on.
    sweep = AlarmSweep(engine, work_orders, SweepSettings(silent_after=None, inhibit_settle=SETTLE))
    assert await sweep.run_once(back + SETTLE - timedelta(seconds=1)) == []
    released = await sweep.run_once(back + SETTLE + timedelta(seconds=1))
    assert len(released) == 21  # 19 of the storm, the late one, the old one
    assert all(c.inhibited_by is None and c.state == "no_data" for c in released)
    assert await sweep.run_once(back + SETTLE + timedelta(seconds=2)) == []

    # A second outage: a new alarm event with a higher seq.
    again = back + timedelta(hours=1)
    await service([status("offline", again)])
    offline_events = await events_of(engine, OFFLINE)
    assert [e["state"] for e in offline_events] == ["firing", "resolved", "firing"]
    assert offline_events[1]["seq"] < offline_events[2]["seq"]


async def test_no_data_in_the_batch_of_the_offline_status_is_inhibited(
    engine: AsyncEngine,
) -> None:
    work_orders = RecordingWorkOrders()
    service = IngestService(engine, work_orders=work_orders)
    await service([status("online", T0)])
    at = T0 + timedelta(minutes=1)
    await service([up(at, event("dev-1", at)), status("offline", at + timedelta(seconds=1))])
    assert [c.fingerprint for c in work_orders.take()] == [OFFLINE]
    assert (await instances(engine))["d1/dev-1/no_data"]["inhibited_by"] == OFFLINE


async def test_a_silent_gateway_without_status_goes_offline_and_comes_back(
    engine: AsyncEngine,
) -> None:
    work_orders = RecordingWorkOrders()
    service = IngestService(engine, work_orders=work_orders)
    await service([up(T0, event("dev-1", T0), gateway="gw-http")])  # never sends a status
    await service([status("online", T0, "gw-mqtt"), up(T0, gateway="gw-mqtt")])  # has a last will
    work_orders.take()
    settings = SweepSettings(silent_after=timedelta(seconds=300))
    sweep = AlarmSweep(engine, work_orders, settings)

    assert await sweep.run_once(T0 + timedelta(seconds=299)) == []
    silent = T0 + timedelta(seconds=301)
    handed = await sweep.run_once(silent)
    assert [(c.fingerprint, c.state) for c in handed] == [
        (offline_fingerprint("gw-http"), "firing")
    ]
    assert work_orders.take() == handed
    assert await sweep.run_once(silent + timedelta(minutes=5)) == []  # once
    rows = await instances(engine)
    assert rows["d1/dev-1/no_data"]["inhibited_by"] == offline_fingerprint("gw-http")
    assert offline_fingerprint("gw-mqtt") not in rows
    assert (await gateway(engine, "gw-http"))["offline_since"] == silent

    heard = silent + timedelta(minutes=10)
    await service([up(heard, gateway="gw-http")])
    assert [(c.fingerprint, c.state) for c in work_orders.take()] == [
        (offline_fingerprint("gw-http"), "resolved")
    ]
    assert (await gateway(engine, "gw-http"))["online_since"] == heard


async def test_the_app_sweeps_and_the_api_filters_stale(tmp_path: Path) -> None:
    flags = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/steward.db",
        "migrate_on_start": True,
        "alarm_sweep_interval_s": 0.05,
        "stale_grace_s": 0,
    }
    app = create_app(load_settings(environ={}, flags=flags))
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    now = datetime.now(UTC)
    async with lifespan:
        token = await add_user(app.state.engine, "op", role="admin", company=None, area=None)
        expired = event(
            "smoke-1",
            now - timedelta(minutes=10),
            state=AlarmState.FIRING,
            rule="smoke",
            valid_for=timedelta(minutes=4),
        )
        await app.state.ingest([up(now, expired, event("dev-2", now))])
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            for _ in range(200):
                page = (await client.get("/api/v1/alarms?stale=true", headers=headers)).json()
                if page["items"]:
                    break
                await asyncio.sleep(0.05)
            assert [(a["fingerprint"], a["stale"]) for a in page["items"]] == [
                (expired.fingerprint, True)
            ]
            fresh = (await client.get("/api/v1/alarms?stale=false", headers=headers)).json()
    assert [(a["fingerprint"], a["inhibited_by"]) for a in fresh["items"]] == [
        ("d1/dev-2/no_data", None)
    ]


def session_status(
    state: str, session: datetime, received_at: datetime, gateway: str = "gw-a"
) -> Incoming:
    """A status as the edge agent sends it: `session` is when its connection began."""
    doc = {
        "state": state,
        "gateway_id": gateway,
        "version": "1.5.0",
        "at": session.isoformat(),
        "session": session.isoformat(),
    }
    return Incoming(f"steward/v1/{gateway}/status", json.dumps(doc).encode(), received_at)


async def test_a_returning_process_backlog_of_statuses_opens_no_false_outage(
    engine: AsyncEngine,
) -> None:
    work_orders = RecordingWorkOrders()
    live = IngestService(engine, work_orders=work_orders, inhibit_settle=SETTLE)
    returning = IngestService(engine, work_orders=work_orders, inhibit_settle=SETTLE)
    first, second = T0, T0 + timedelta(minutes=30)
    # The live process sees a whole outage: connection 1 online, its will, connection 2 online.
    await live([session_status("online", first, first)])
    await live([session_status("offline", first, first + timedelta(minutes=10))])
    await live([session_status("online", second, second)])
    assert [(c.fingerprint, c.state) for c in work_orders.take()] == [
        (OFFLINE, "firing"),
        (OFFLINE, "resolved"),
    ]
    # A process that was away gets the same statuses from its queue, an hour late.
    late = second + timedelta(hours=1)
    backlog = [
        session_status("online", first, late),
        session_status("offline", first, late),
        session_status("online", second, late),
    ]
    for message in backlog:
        await returning([message])
    assert work_orders.take() == []  # no second outage, no alarm
    assert returning.counters.outdated_statuses == 3
    async with engine.connect() as conn:
        row = (await conn.execute(select(gateways).where(gateways.c.id == "gw-a"))).one()
    assert (row.status, row.offline_since, row.online_since) == (
        "online",
        first + timedelta(minutes=10),
        second,
    )
    # The will of the connection that is current does apply (same session, offline after online).
    await returning([session_status("offline", second, late + timedelta(minutes=1))])
    assert [(c.fingerprint, c.state) for c in work_orders.take()] == [(OFFLINE, "firing")]


async def test_a_status_with_a_bad_session_is_dead_lettered(engine: AsyncEngine) -> None:
    service = IngestService(engine)
    doc = {"state": "online", "gateway_id": "gw-a", "session": "yesterday"}
    message = Incoming("steward/v1/gw-a/status", json.dumps(doc).encode(), T0)
    await service([message])
    assert dict(service.counters.rejections) == {"schema": 1}
