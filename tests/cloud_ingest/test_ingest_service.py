"""The ingest service against SQLite and a real PostgreSQL: group commit, idempotency, folding."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest import migrations
from cloud_ingest.infra.db import create_engine
from cloud_ingest.infra.schema import (
    alarm_events,
    alarm_instances,
    dead_letters,
    devices,
    gateways,
    ingested_batches,
    readings,
)
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.service import LAST_SEEN_RESOLUTION, IngestService
from cloud_ingest.ingest.work_orders import AlarmInstanceChange
from core.envelope_json import dumps
from core.metrics import Metric, Quality
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class RecordingWorkOrders:
    def __init__(self) -> None:
        self.calls: list[list[AlarmInstanceChange]] = []

    async def alarm_instances_changed(self, changes: Sequence[AlarmInstanceChange]) -> None:
        self.calls.append(list(changes))


def reading(device: str = "smoke-1", value: float | bool = 21.5, minute: int = 0) -> Reading:
    metric = Metric.SMOKE if isinstance(value, bool) else Metric.TEMPERATURE_C
    ts = NOW - timedelta(minutes=10) + timedelta(minutes=minute)
    return Reading(device, metric, value, ts, codec_id="serial.acme.smoke")


def event(
    seq: int,
    state: AlarmState = AlarmState.FIRING,
    fingerprint: str = "site-1/smoke-1/smoke",
    device: str = "smoke-1",
    severity: Severity = Severity.CRITICAL,
) -> AlarmEvent:
    at = NOW - timedelta(minutes=5) + timedelta(seconds=seq)
    return AlarmEvent(
        fingerprint=fingerprint,
        seq=seq,
        state=state,
        severity=severity,
        starts_at=NOW - timedelta(minutes=5),
        at=at,
        rule_id="smoke",
        device_id=device,
        location="d1/s1/c1/g1/k1/b1/u1",
        valid_until=at + timedelta(minutes=2) if state is AlarmState.FIRING else None,
        value=True,
        evidence={"smoke_pct": 12.5},
    )


def envelope(
    readings_: Sequence[Reading] = (),
    events: Sequence[AlarmEvent] = (),
    gateway: str = "gw-a",
    batch_id: UUID | None = None,
) -> Envelope:
    return Envelope(
        gateway_id=gateway,
        batch_id=batch_id or uuid4(),
        sent_at=NOW - timedelta(seconds=1),
        readings=tuple(readings_),
        alarm_events=tuple(events),
    )


def up(env: Envelope | bytes, topic_gateway: str | None = None) -> Incoming:
    payload = env if isinstance(env, bytes) else dumps(env)
    gateway = topic_gateway or (env.gateway_id if isinstance(env, Envelope) else "gw-a")
    return Incoming(f"steward/v1/{gateway}/up", payload, NOW)


async def count(engine: AsyncEngine, table: object) -> int:
    async with engine.connect() as conn:
        result = await conn.execute(select(func.count()).select_from(table))  # type: ignore[arg-type]
        return int(result.scalar_one())


async def instance(engine: AsyncEngine, fingerprint: str) -> dict[str, object]:
    async with engine.connect() as conn:
        query = select(alarm_instances).where(alarm_instances.c.fingerprint == fingerprint)
        return dict((await conn.execute(query)).mappings().one())


async def reasons(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        result = await conn.execute(select(dead_letters.c.reason).order_by(dead_letters.c.id))
        return list(result.scalars())


async def test_every_reading_and_alarm_event_stored_once(engine: AsyncEngine) -> None:
    work_orders = RecordingWorkOrders()
    service = IngestService(engine, work_orders=work_orders)
    envs = [
        envelope([reading(value=20.0 + i, minute=i) for i in range(10)], [event(1)]),
        envelope([reading("smoke-2", value=True), reading("smoke-2", value=False)], gateway="gw-b"),
        envelope([], [event(2), event(1, fingerprint="other", device="smoke-3")]),
    ]
    await service([up(e) for e in envs])

    assert await count(engine, readings) == 12
    assert await count(engine, alarm_events) == 3
    assert await count(engine, ingested_batches) == 3
    assert await count(engine, dead_letters) == 0
    smoke = await instance(engine, "site-1/smoke-1/smoke")
    assert smoke["last_seq"] == 2
    assert smoke["state"] == "firing"
    assert smoke["gateway_id"] == "gw-a"
    assert smoke["first_event_at"] == event(1).at
    assert smoke["last_event_at"] == event(2).at
    async with engine.connect() as conn:
        owners = dict((await conn.execute(select(devices.c.id, devices.c.gateway_id))).all())
        values = (
            await conn.execute(
                select(readings.c.value, readings.c.value_bool).where(
                    readings.c.device_id == "smoke-2"
                )
            )
        ).all()
        known = set((await conn.execute(select(gateways.c.id))).scalars())
    assert owners == {"smoke-1": "gw-a", "smoke-2": "gw-b", "smoke-3": "gw-a"}
    assert sorted(values) == [(0.0, False), (1.0, True)]
    assert known == {"gw-a", "gw-b"}
    assert service.counters.readings == 12
    assert service.counters.alarm_events == 3
    assert service.counters.messages == 3
    assert [sorted(c.fingerprint for c in call) for call in work_orders.calls] == [
        ["other", "site-1/smoke-1/smoke"]
    ]


async def test_times_are_stored_as_the_same_instant_in_utc(engine: AsyncEngine) -> None:
    local = NOW.astimezone(timezone(timedelta(hours=8))) - timedelta(minutes=3)
    await IngestService(engine)([up(envelope([Reading("m-1", Metric.TILT_DEG, 3.0, local)]))])
    async with engine.connect() as conn:
        stored = (await conn.execute(select(readings.c.ts))).scalar_one()
    assert stored == local
    assert stored.utcoffset() == timedelta(0)


async def test_bulk_stored_times_match_times_bound_in_queries(engine: AsyncEngine) -> None:
    # Readings are written through the driver; a query binding the same instant through
    # SQLAlchemy (any offset, with or without microseconds) must find each one.
    plus8 = timezone(timedelta(hours=8))
    times = [
        NOW - timedelta(minutes=4),
        (NOW - timedelta(minutes=3, microseconds=250)).astimezone(plus8),
        (NOW - timedelta(minutes=2)).astimezone(timezone(timedelta(hours=-5, minutes=-30))),
    ]
    batch = [Reading("m-1", Metric.TILT_DEG, float(i), t) for i, t in enumerate(times)]
    await IngestService(engine)([up(envelope(batch))])
    async with engine.connect() as conn:
        for i, when in enumerate(times):
            for probe in (when, when.astimezone(UTC), when.astimezone(plus8)):
                query = select(readings.c.value).where(readings.c.ts == probe)
                assert list((await conn.execute(query)).scalars()) == [float(i)]
        later = select(func.count()).select_from(readings).where(readings.c.ts > times[1])
        assert (await conn.execute(later)).scalar_one() == 1


async def test_every_reading_column_is_stored(engine: AsyncEngine) -> None:
    stamp = NOW - timedelta(minutes=1)
    batch = [
        Reading("m-1", Metric.TILT_DEG, 2.5, stamp, Quality.SUSPECT, "lora.x", Metric.TILT_X_DEG),
        Reading("m-1", Metric.SMOKE, value=True, ts=stamp, codec_id="serial.acme.smoke"),
    ]
    await IngestService(engine)([up(envelope(batch, gateway="gw-z"))])
    columns = [c for c in readings.c if c.name != "id"]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(*columns).order_by(readings.c.id))).all()
    assert [tuple(row) for row in rows] == [
        ("gw-z", "m-1", "tilt_deg", stamp, 2.5, None, "suspect", "lora.x", "tilt_x_deg"),
        ("gw-z", "m-1", "smoke", stamp, 1.0, True, "good", "serial.acme.smoke", None),
    ]


async def test_redelivered_batch_stores_nothing_twice(engine: AsyncEngine) -> None:
    service = IngestService(engine)
    message = up(envelope([reading(minute=i) for i in range(5)], [event(1)]))
    await service([message, message])
    await service([message])

    assert await count(engine, readings) == 5
    assert await count(engine, alarm_events) == 1
    assert await count(engine, ingested_batches) == 1
    assert service.counters.duplicates == 2
    assert service.counters.messages == 3


async def test_events_replayed_under_a_new_batch_id_store_nothing_twice(
    engine: AsyncEngine,
) -> None:
    work_orders = RecordingWorkOrders()
    service = IngestService(engine, work_orders=work_orders)
    await service([up(envelope([], [event(1), event(2)]))])
    before = await instance(engine, "site-1/smoke-1/smoke")
    await service([up(envelope([], [event(1), event(2)]))])

    assert await count(engine, alarm_events) == 2
    assert await instance(engine, "site-1/smoke-1/smoke") == before
    assert service.counters.alarm_events == 2
    assert service.counters.alarm_events_replayed == 2
    assert len(work_orders.calls) == 1


async def test_an_older_event_does_not_overwrite_a_newer_state(engine: AsyncEngine) -> None:
    work_orders = RecordingWorkOrders()
    service = IngestService(engine, work_orders=work_orders)
    await service([up(envelope([], [event(5, AlarmState.RESOLVED, severity=Severity.WARNING)]))])
    await service([up(envelope([], [event(3, AlarmState.FIRING)]))])
    # Within one batch too: the newer event first, the older after it.
    await service(
        [
            up(envelope([], [event(7, AlarmState.FIRING)])),
            up(envelope([], [event(6, AlarmState.PENDING)])),
        ]
    )

    assert await count(engine, alarm_events) == 4
    stored = await instance(engine, "site-1/smoke-1/smoke")
    assert (stored["state"], stored["last_seq"]) == ("firing", 7)
    assert [[(c.state, c.last_seq) for c in call] for call in work_orders.calls] == [
        [("resolved", 5)],
        [("firing", 7)],
    ]
    await service([up(envelope([], [event(4, AlarmState.RESOLVED)]))])
    stored = await instance(engine, "site-1/smoke-1/smoke")
    assert (stored["state"], stored["last_seq"]) == ("firing", 7)


async def test_forged_gateway_id_is_rejected_and_not_stored(engine: AsyncEngine) -> None:
    service = IngestService(engine)
    forged = up(envelope([reading()], [event(1)], gateway="gw-a"), topic_gateway="gw-b")
    await service([forged])

    assert await count(engine, readings) == 0
    assert await count(engine, alarm_events) == 0
    assert await count(engine, gateways) == 0
    assert await reasons(engine) == ["identity"]
    assert service.counters.rejections == {"identity": 1}


def _nan_payload() -> bytes:
    text_ = dumps(envelope([reading(value=1.25)])).decode()
    assert '"value":1.25' in text_
    return text_.replace('"value":1.25', '"value":NaN').encode()


async def test_bad_messages_are_dead_lettered_with_their_reason(engine: AsyncEngine) -> None:
    service = IngestService(engine, max_bytes=4096)
    oversized = envelope([reading(minute=i % 5) for i in range(100)])
    wrong_version = dumps(envelope([reading()])).replace(
        b'"schema_version":1', b'"schema_version":99'
    )
    cases = [
        (b'{"schema_version": 1, "gateway_id": ', "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (_nan_payload(), "non_finite"),
        (dumps(oversized), "too_large"),
        (wrong_version, "unsupported_version"),
        (b'{"schema_version": 1}', "schema"),
    ]
    await service([up(payload) for payload, _ in cases])

    assert await reasons(engine) == [reason for _, reason in cases]
    assert await count(engine, readings) == 0
    assert await count(engine, ingested_batches) == 0
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(dead_letters).where(dead_letters.c.reason == "too_large"))
        ).one()
    assert row.payload_size == len(dumps(oversized))
    assert row.topic == "steward/v1/gw-a/up"
    assert service.counters.rejections["bad_json"] == 2


async def test_a_mixed_batch_stores_the_good_and_dead_letters_the_bad(
    engine: AsyncEngine,
) -> None:
    service = IngestService(engine, max_future=timedelta(minutes=5))
    future = Reading("smoke-1", Metric.TEMPERATURE_C, 1.0, NOW + timedelta(hours=2))
    batch = [
        up(envelope([reading(minute=1)], [event(1)])),
        up(b"not json"),
        up(envelope([reading(minute=2)], gateway="gw-a"), topic_gateway="gw-b"),
        up(envelope([future])),
        Incoming("steward/v1/gw-a/whatever", b"{}", NOW),
        up(envelope([reading(minute=3)])),
    ]
    await service(batch)

    assert await count(engine, readings) == 2
    assert await count(engine, alarm_events) == 1
    assert await reasons(engine) == ["bad_json", "identity", "time_out_of_bounds", "bad_topic"]
    assert service.counters.messages == 6
    assert service.counters.envelopes == 2


async def test_a_device_of_another_gateway_is_rejected(engine: AsyncEngine) -> None:
    service = IngestService(engine)
    await service([up(envelope([reading("meter-1")], gateway="gw-a"))])
    await service(
        [
            up(envelope([reading("meter-1", minute=1)], gateway="gw-b")),
            # Two gateways naming one new device in the same batch: the first claims it.
            up(envelope([reading("meter-2")], gateway="gw-a")),
            up(envelope([], [event(1, device="meter-2", fingerprint="f")], gateway="gw-b")),
        ]
    )

    assert await count(engine, readings) == 2
    assert await count(engine, alarm_events) == 0
    assert await reasons(engine) == ["foreign_device", "foreign_device"]


async def test_registration_required_refuses_unknown_gateways(engine: AsyncEngine) -> None:
    service = IngestService(engine, require_registration=True)
    status = Incoming("steward/v1/gw-a/status", b'{"state":"online"}', NOW)
    await service([up(envelope([reading()])), status])
    assert await count(engine, readings) == 0
    assert await reasons(engine) == ["unknown_gateway", "unknown_gateway"]

    async with engine.begin() as conn:
        await conn.execute(gateways.insert().values(id="gw-a", company="acme", created_at=NOW))
    await service([up(envelope([reading()]))])
    assert await count(engine, readings) == 1


async def test_status_updates_the_gateway(engine: AsyncEngine) -> None:
    service = IngestService(engine)
    online = (
        b'{"state":"online","gateway_id":"gw-a","version":"1.2.3","at":"2026-12-07T12:00:00+00:00"}'
    )
    await service(
        [
            Incoming("steward/v1/gw-a/status", online, NOW),
            Incoming("steward/v1/gw-b/status", online, NOW),
            Incoming("steward/v1/gw-a/status", b"", NOW),
        ]
    )
    async with engine.connect() as conn:
        row = (await conn.execute(select(gateways).where(gateways.c.id == "gw-a"))).one()
    assert (row.status, row.version, row.last_seen) == ("online", "1.2.3", NOW)
    assert await reasons(engine) == ["identity"]

    later = NOW + timedelta(minutes=1)
    await service([Incoming("steward/v1/gw-a/status", b'{"state":"offline"}', later)])
    async with engine.connect() as conn:
        row = (await conn.execute(select(gateways).where(gateways.c.id == "gw-a"))).one()
    assert (row.status, row.version, row.last_seen) == ("offline", "1.2.3", later)


async def test_a_device_last_seen_moves_in_steps_of_its_resolution(engine: AsyncEngine) -> None:
    service = IngestService(engine)

    async def seen_at(received: datetime) -> datetime:
        message = up(envelope([reading()]))
        await service([Incoming(message.topic, message.payload, received)])
        async with engine.connect() as conn:
            query = select(devices.c.last_seen).where(devices.c.id == "smoke-1")
            last_seen: datetime = (await conn.execute(query)).scalar_one()
        return last_seen

    assert await seen_at(NOW) == NOW
    assert await seen_at(NOW + timedelta(seconds=10)) == NOW  # within the resolution: no write
    later = NOW + LAST_SEEN_RESOLUTION + timedelta(seconds=1)
    assert await seen_at(later) == later


async def test_a_storage_failure_raises_and_stores_nothing(engine: AsyncEngine) -> None:
    service = IngestService(engine)
    batch = [up(envelope([reading(minute=i) for i in range(5)], [event(1)])), up(b"{")]
    # The last table the batch writes is gone: everything before it must be rolled back.
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE dead_letters"))

    with pytest.raises(Exception, match="dead_letters"):
        await service(batch)
    for table in (readings, alarm_events, alarm_instances, ingested_batches, devices, gateways):
        assert await count(engine, table) == 0, table.name
    assert service.counters.storage_failures == 1
    assert service.counters.messages == 0

    # Once the database is whole again, the same messages are stored, once.
    async with engine.begin() as conn:
        await conn.run_sync(dead_letters.create)
    await service(batch)
    assert await count(engine, readings) == 5
    assert await count(engine, alarm_events) == 1
    assert await reasons(engine) == ["bad_json"]


async def test_a_closed_database_raises(engine: AsyncEngine, db_url: str) -> None:
    service = IngestService(engine)
    await engine.dispose()
    if db_url.startswith("sqlite"):
        broken = create_engine("sqlite+aiosqlite:////nonexistent-dir/x/y.db")
    else:
        broken = create_engine(db_url.rsplit("/", 1)[0] + "/no_such_database")
    with pytest.raises(Exception):  # noqa: B017, PT011
        await IngestService(broken)([up(envelope([reading()]))])
    await broken.dispose()
    assert service.counters.messages == 0


async def test_a_connection_lost_during_the_readings_copy_is_not_reused(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(postgres_url)
    await migrations.upgrade(engine)
    service = IngestService(engine)
    first = [up(envelope([reading(minute=i) for i in range(3)], [event(1)]))]
    second = [up(envelope([reading("smoke-2", minute=i) for i in range(4)]))]
    await service(first)
    copy = asyncpg.Connection.copy_records_to_table

    async def copy_after_the_server_drops_us(
        self: asyncpg.Connection, *args: object, **kwargs: object
    ) -> object:
        pid = self.get_server_pid()
        admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            # With a timeout, pg_terminate_backend waits until the backend is gone.
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        finally:
            await admin.close()
        return await copy(self, *args, **kwargs)

    try:
        with monkeypatch.context() as patch:
            patch.setattr(
                asyncpg.Connection, "copy_records_to_table", copy_after_the_server_drops_us
            )
            with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises
                await service(second)
        assert await count(engine, readings) == 3
        for _ in range(3):  # every pooled connection is usable again
            await service(second)
        assert await count(engine, readings) == 7
        assert service.counters.duplicates == 2
    finally:
        await engine.dispose()
