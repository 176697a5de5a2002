"""The stream hub reads new events when a change commits (PostgreSQL `NOTIFY`), not at its next poll,
and each event's SSE frame is encoded once for every client."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest import migrations
from cloud_ingest.auth.models import Role, User
from cloud_ingest.infra.db import create_engine
from cloud_ingest.stream.hub import Hub, HubSettings
from cloud_ingest.stream.outbox import record

ADMIN = User("admin", Role.ADMIN, "", "")
HOUR = 3600.0
"""A poll interval no test waits for: what arrives came by a wake-up."""
GUARD_S = 20.0
"""A hang guard only: each wait ends as soon as its event arrives."""


async def migrated(url: str) -> AsyncEngine:
    engine = create_engine(url)
    await migrations.upgrade(engine)
    return engine


async def test_a_commit_wakes_the_hub_and_a_rollback_does_not(postgres_url: str) -> None:
    engine = await migrated(postgres_url)
    hub = Hub(
        engine, HubSettings(poll_interval=HOUR, gap_grace=0.0)
    )  # no wait for the rollback's id
    try:
        await hub.start()
        async with asyncio.timeout(GUARD_S):
            await hub.ready.wait()
            await hub.listening.wait()
        await asyncio.sleep(0.2)  # the catch-up poll after listening began
        sub = hub.subscribe(ADMIN)
        woken = hub.stats.wakeups
        async with engine.connect() as conn:
            tx = await conn.begin()
            await record(conn, kind="alarm", key="undone", company="", location="", data={})
            await tx.rollback()
        await asyncio.sleep(0.5)
        assert hub.stats.wakeups == woken
        async with engine.begin() as conn:
            done = await record(conn, kind="alarm", key="done", company="", location="", data={})
        async with asyncio.timeout(GUARD_S):
            event = await sub.next()
        assert event is not None
        assert (event.id, event.key) == (done, "done")
        assert hub.stats.wakeups == woken + 1
        assert sub.queue.empty()
    finally:
        await hub.stop()
        await engine.dispose()


async def test_without_listening_the_hub_waits_for_its_poll(postgres_url: str) -> None:
    engine = await migrated(postgres_url)
    hub = Hub(engine, HubSettings(poll_interval=HOUR, listen=False))
    try:
        await hub.start()
        async with asyncio.timeout(GUARD_S):
            await hub.ready.wait()
        sub = hub.subscribe(ADMIN)
        async with engine.begin() as conn:
            await record(conn, kind="alarm", key="k", company="", location="", data={})
        await asyncio.sleep(1.0)
        assert sub.queue.empty()
        assert not hub.listening.is_set()
        hub.wake()
        async with asyncio.timeout(GUARD_S):
            assert await sub.next() is not None
    finally:
        await hub.stop()
        await engine.dispose()


async def test_every_client_gets_the_same_encoded_frame(postgres_url: str) -> None:
    engine = await migrated(postgres_url)
    hub = Hub(engine, HubSettings(poll_interval=HOUR))
    try:
        await hub.start()
        async with asyncio.timeout(GUARD_S):
            await hub.ready.wait()
        subs = [hub.subscribe(ADMIN) for _ in range(3)]
        async with engine.begin() as conn:
            event_id = await record(
                conn, kind="alarm", key="k", company="", location="", data={"n": 1}
            )
        hub.wake()
        async with asyncio.timeout(GUARD_S):
            events = [await sub.next() for sub in subs]
        frames = {id(e.frame) for e in events if e is not None}
        assert len(frames) == 1
        first = events[0]
        assert first is not None
        text = first.frame.decode()
        assert text.endswith("\r\n\r\n")
        assert sorted(text.removesuffix("\r\n\r\n").split("\r\n")) == [
            f"data: {first.payload}",
            "event: alarm",
            f"id: {event_id}",
        ]
    finally:
        await hub.stop()
        await engine.dispose()
