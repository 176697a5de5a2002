"""The alarm intake in batches decides exactly as its changes applied one by one.

`WorkOrders.alarm_instances_changed` reads a batch's state in a few set queries, decides change by
change in memory and writes in bulk. These tests run random mixes of new groups, joins within and
outside the window, redeliveries, stale and out-of-order changes, resolutions (with a category
that verifies itself) and alarms that open nothing, once in batches and once through the
per-change path (`bench.work_orders.PerChangeWorkOrders`: its own queries, locks and writes for
each change, one change per call), on two databases of the same kind, and compare everything the
intake wrote: orders, events, attached alarms, numbers, stream events and notifications.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench.work_orders import PerChangeWorkOrders
from cloud_ingest import migrations
from cloud_ingest.auth.models import Role, User
from cloud_ingest.clock import ManualClock
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.db import create_engine
from cloud_ingest.infra.schema import (
    notification_channels,
    notification_deliveries,
    notification_subscriptions,
    stream_events,
    work_order_alarms,
    work_order_events,
    work_order_numbers,
    work_orders,
)
from cloud_ingest.ingest.work_orders import AlarmInstanceChange
from cloud_ingest.work_orders import service as service_module
from cloud_ingest.work_orders import store
from cloud_ingest.work_orders.service import WorkOrders
from simulators.services import Postgres

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
FIRE = {"category": "fire", "priority": "urgent"}
BIN = {"category": "sanitation", "priority": "normal"}
WATER = {"category": "water"}


def change(
    fingerprint: str,
    seq: int,
    state: str = "firing",
    *,
    at: datetime = T0,
    location: str = "d1/s1/c1/g1",
    hint: Mapping[str, object] | None = FIRE,
    severity: str = "critical",
    stale: bool = False,
) -> AlarmInstanceChange:
    gateway, device, rule = fingerprint.split("/")
    return AlarmInstanceChange(
        fingerprint=fingerprint,
        gateway_id=gateway,
        device_id=device,
        rule_id=rule,
        location=location,
        state=state,
        severity=severity,
        last_seq=seq,
        last_event_at=at,
        valid_until=None,
        work_order=hint,
        stale=stale,
    )


# Each alarm: (fingerprint, location, hint, severity).
ALARMS = [
    ("gw-a/smoke-1/smoke_alarm", "d1/s1/c1/g1", FIRE, "critical"),
    ("gw-a/smoke-2/smoke_alarm", "d1/s1/c1/g1", FIRE, "critical"),
    ("gw-a/smoke-3/smoke_alarm", "d1/s1/c1/g2", FIRE, "critical"),
    ("gw-a/bin-1/bin_fill_high", "d1/s1/c1/g1", BIN, "warning"),
    ("gw-a/bin-2/bin_fill_high", "d1/s1/c1/g1", BIN, "warning"),
    ("gw-a/bin-3/bin_fill_high", "d1/s1/c1/g2", BIN, "warning"),
    ("gw-b/leak-1/water_leak", "d1/s1/c1/g1", WATER, "warning"),
    ("gw-b/leak-2/water_leak", "d1/s1/c1/g3", WATER, "warning"),
    ("gw-b/temp-1/temp_high", "d1/s1/c1/g1", None, "warning"),  # never opens an order
    ("gw-c/door-1/door_open", "d1/s1/c2", None, "critical"),  # an unregistered gateway
]
STATES = [
    "firing",
    "firing",
    "firing",
    "resolved",
    "resolved",
    "normal",
    "fault",
    "no_data",
    "pending",
]
ADMIN = User(name="admin", role=Role.ADMIN, company="", area="")


def random_changes(seed: int, count: int) -> list[AlarmInstanceChange]:
    """A stream of changes as handoffs deliver them: mostly new, some redelivered, stale, late."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    seqs = dict.fromkeys((a[0] for a in ALARMS), 0)
    at = T0
    made: list[AlarmInstanceChange] = []
    out: list[AlarmInstanceChange] = []
    while len(out) < count:
        roll = rng.random()
        if made and roll < 0.2:
            out.append(rng.choice(made))  # redelivered as it was
            continue
        if made and roll < 0.27:
            old = rng.choice(made)
            out.append(  # went stale (same seq) or arrives late
                change(
                    old.fingerprint,
                    old.last_seq,
                    old.state,
                    at=old.last_event_at,
                    location=old.location,
                    hint=old.work_order,
                    severity=old.severity,
                    stale=rng.random() < 0.7,
                )
            )
            continue
        fingerprint, location, hint, severity = rng.choice(ALARMS)
        seqs[fingerprint] += rng.choice([1, 1, 1, 2])
        at += timedelta(minutes=rng.choice([0, 0, 1, 2, 3, 5, 8, 31]))
        made.append(
            change(
                fingerprint,
                seqs[fingerprint],
                rng.choice(STATES),
                at=at,
                location=location,
                hint=hint,
                severity=severity,
            )
        )
        out.append(made[-1])
    for i in range(len(out) - 1):  # a few neighbours swapped: out-of-order seq
        if rng.random() < 0.1:
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def split(changes: list[AlarmInstanceChange], seed: int) -> list[list[AlarmInstanceChange]]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    batches, start = [], 0
    while start < len(changes):
        size = rng.choice([1, 2, 5, 12, 30, 60])
        batches.append(changes[start : start + size])
        start += size
    return batches


@pytest.fixture(params=["sqlite", "postgresql"])
async def two_engines(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two empty, migrated databases of one kind, with the same gateways and a subscription."""
    if request.param == "sqlite":
        urls = [f"sqlite+aiosqlite:///{tmp_path}/{name}.db" for name in ("batch", "single")]
    else:
        server: Postgres = request.getfixturevalue("postgres_server")
        urls = []
        for _ in range(2):
            name = f"batch_{uuid4().hex[:12]}"
            server.create_database(name)
            urls.append(server.url(name, driver="postgresql+asyncpg"))
    engines = [create_engine(url) for url in urls]
    for engine in engines:
        await migrations.upgrade(engine)
        await add_gateway(engine, "gw-a", company="A", site="d1")
        await add_gateway(engine, "gw-b", company="B", site="d1")
        await subscribe_everything(engine)
    try:
        yield engines[0], engines[1]
    finally:
        for engine in engines:
            await engine.dispose()


async def subscribe_everything(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        channel = await conn.execute(
            notification_channels.insert()
            .values(
                name="all", kind="webhook", target="http://127.0.0.1:9/", options={}, created_at=T0
            )
            .returning(notification_channels.c.id)
        )
        await conn.execute(
            notification_subscriptions.insert().values(
                channel_id=channel.scalar_one(), topic="work_order.*", created_at=T0
            )
        )


async def written(engine: AsyncEngine) -> dict[str, list[Any]]:
    """Everything the intake writes, in a comparable form (ids of orders included)."""
    async with engine.connect() as conn:
        orders = [
            dict(r)
            for r in (await conn.execute(select(work_orders).order_by(work_orders.c.id))).mappings()
        ]
        events = [
            {k: v for k, v in r.items() if k != "id"}
            for r in (
                await conn.execute(
                    select(work_order_events).order_by(
                        work_order_events.c.order_id, work_order_events.c.seq
                    )
                )
            ).mappings()
        ]
        links = [
            dict(r)
            for r in (
                await conn.execute(
                    select(work_order_alarms).order_by(
                        work_order_alarms.c.order_id, work_order_alarms.c.fingerprint
                    )
                )
            ).mappings()
        ]
        numbers = [tuple(r) for r in await conn.execute(select(work_order_numbers))]
        streamed = [
            (r.kind, r.key, r.company, r.location, r.data)
            for r in await conn.execute(
                select(stream_events)
                .where(stream_events.c.kind == "work_order")
                .order_by(stream_events.c.id)
            )
        ]
        notified = [
            (r.topic, r.severity, r.company, r.location, r.payload["title"], r.payload["body"])
            for r in await conn.execute(
                select(notification_deliveries).order_by(notification_deliveries.c.id)
            )
        ]
    return {
        "orders": orders,
        "events": events,
        "links": links,
        "numbers": numbers,
        "streamed": streamed,
        "notified": notified,
    }


class Batched(WorkOrders):
    """The service, counting its transactions (a batch retried change by change takes more)."""

    transactions = 0

    async def _apply_changes(self, changes: Sequence[AlarmInstanceChange]) -> None:
        self.transactions += 1
        await super()._apply_changes(changes)


async def run_both(
    engines: tuple[AsyncEngine, AsyncEngine], batches: list[list[AlarmInstanceChange]]
) -> tuple[Batched, WorkOrders]:
    """Apply `batches` as batches to the first database and through the per-change path, one
    change per call, to the second; the clock moves by a second per batch in both."""
    clock = ManualClock(T0)
    batched = Batched(engines[0], clock=clock)
    single = PerChangeWorkOrders(engines[1], clock=clock)
    for n, batch in enumerate(batches):
        clock.advance(timedelta(seconds=1))
        await batched.alarm_instances_changed(batch)
        for one in batch:
            await single.alarm_instances_changed([one])
        if n % 3 == 2:  # someone cancels the oldest open order: its alarms open new ones
            for service, engine in ((batched, engines[0]), (single, engines[1])):
                async with engine.connect() as conn:
                    oldest = await conn.scalar(
                        select(func.min(work_orders.c.id)).where(work_orders.c.state == "NEW")
                    )
                if oldest is not None:
                    await service.act(oldest, "cancel", ADMIN, {"reason": "duplicate"})
    return batched, single


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_decides_as_its_changes_one_by_one(
    two_engines: tuple[AsyncEngine, AsyncEngine], seed: int
) -> None:
    changes = random_changes(seed, 240)
    batches = split(changes, seed)
    batched, single = await run_both(two_engines, batches)

    got, expected = await written(two_engines[0]), await written(two_engines[1])
    assert len(expected["orders"]) >= 10  # the mix opens many orders
    assert {e["action"] for e in expected["events"]} >= {"open", "alarm", "auto_verify", "cancel"}
    attached = Counter(link["fingerprint"] for link in expected["links"])
    assert (
        max(attached.values()) >= 3
    )  # alarms whose orders closed and that opened or joined others
    for table in expected:
        assert got[table] == expected[table], table
    assert batched.stats == single.stats
    assert single.stats.duplicates > 0
    assert single.stats.ignored > 0
    assert batched.stats.failures == 0
    assert batched.transactions == len(batches)  # no batch fell back to change by change


async def test_one_batch_mixing_every_kind_of_change(
    two_engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    smoke1, smoke2, smoke3 = (a[0] for a in ALARMS[:3])
    bin1, bin2 = ALARMS[3][0], ALARMS[4][0]
    g1, g2 = "d1/s1/c1/g1", "d1/s1/c1/g2"
    later = T0 + timedelta(minutes=45)
    first = [
        change(smoke1, 1),
        change(bin1, 1, location=g1, hint=BIN, severity="warning"),
    ]
    mixed = [
        change(smoke1, 1),  # redelivered: nothing
        change(smoke2, 1, at=T0 + timedelta(minutes=5)),  # joins smoke-1's order
        change(smoke3, 1, location=g2),  # a new group
        change(smoke3, 1, location=g2),  # the same change again in the batch
        change(smoke1, 3, "resolved", at=T0 + timedelta(minutes=7)),
        change(smoke1, 2, "firing", at=T0 + timedelta(minutes=6)),  # late: never overwrites 3
        change(smoke2, 1, stale=True),  # stale is evidence, opens nothing
        change(bin1, 2, "resolved", location=g1, hint=BIN, severity="warning"),  # verifies itself
        change(bin2, 1, location=g1, hint=BIN, severity="warning", at=later),  # a new bin order
        change(smoke2, 2, "firing", at=later),  # joins: its order is open
        change(ALARMS[7][0], 1, hint=None, severity="warning"),  # nothing to do
    ]
    batched, single = await run_both(two_engines, [first, mixed])

    got, expected = await written(two_engines[0]), await written(two_engines[1])
    for table in expected:
        assert got[table] == expected[table], table
    assert batched.stats == single.stats
    orders = got["orders"]
    assert [(o["location"], o["category"], o["state"]) for o in orders] == [
        (g1, "fire", "NEW"),
        (g1, "sanitation", "CLOSED"),
        (g2, "fire", "NEW"),
        (g1, "sanitation", "NEW"),
    ]
    assert [o["number"] for o in orders] == [f"WO-20261207-000{n}" for n in (1, 2, 3, 4)]
    smoke1_link = next(
        link
        for link in got["links"]
        if link["fingerprint"] == smoke1 and link["order_id"] == orders[0]["id"]
    )
    assert (smoke1_link["last_seq"], smoke1_link["state"]) == (3, "resolved")
    fire_events = [e for e in got["events"] if e["order_id"] == orders[0]["id"]]
    assert [e["seq"] for e in fire_events] == list(range(1, 7))
    assert orders[0]["version"] == 6
    assert orders[0]["last_alarm_at"] == later
    assert batched.stats.duplicates == 2
    assert batched.transactions == 2
    assert batched.stats.ignored == 1


async def test_numbers_drawn_together_continue_the_day(
    two_engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    tz = ZoneInfo(WorkOrders(two_engines[0]).settings.timezone)
    async with two_engines[0].begin() as conn:
        one = await store.next_number(conn, T0, tz)
        three = await store.next_numbers(conn, T0, tz, 3)
        none = await store.next_numbers(conn, T0, tz, 0)
        four = await store.next_number(conn, T0, tz)
    assert [one, *three, four] == [f"WO-20261207-000{n}" for n in range(1, 6)]
    assert none == []


async def test_concurrent_batches_open_one_order_per_group(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    await migrations.upgrade(engine)
    await add_gateway(engine, "gw-a", company="A", site="d1")
    try:
        services = [WorkOrders(engine) for _ in range(4)]
        groups = [f"d1/s1/c1/g{n}" for n in range(5)]
        changes = [
            change(
                f"gw-a/smoke-{g}{i}/smoke_alarm",
                1,
                location=groups[g],
                at=T0 + timedelta(seconds=i),
            )
            for g in range(5)
            for i in range(8)
        ]
        rng = random.Random(7)  # noqa: S311 - a test order, not cryptography
        calls = []
        for service in services:
            mine = changes[:]
            rng.shuffle(mine)
            calls += [
                service.alarm_instances_changed(mine[:20]),
                service.alarm_instances_changed(mine[20:]),
            ]
        await asyncio.gather(*calls)
        got = await written(engine)
        assert sorted(o["location"] for o in got["orders"]) == groups
        assert len(got["events"]) == len(changes)  # each change applied once
        assert len({e["dedupe"] for e in got["events"]}) == len(changes)
        assert sum(s.stats.failures for s in services) == 0
    finally:
        await engine.dispose()


async def test_a_long_call_is_applied_as_consecutive_batches(
    two_engines: tuple[AsyncEngine, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "BATCH_MAX", 7)
    changes = random_changes(4, 20)
    batched, single = await run_both(two_engines, [changes])

    got, expected = await written(two_engines[0]), await written(two_engines[1])
    for table in expected:
        assert got[table] == expected[table], table
    assert batched.stats == single.stats
    assert batched.transactions == 3
