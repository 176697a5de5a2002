"""Notifications: the outbox, subscription matching, the channels and the delivery worker.

Channels are tested against real local servers on 127.0.0.1: an aiohttp webhook receiver that
checks the HMAC signature and the timestamp, a DingTalk-style robot receiver that checks the
`sign`, and an aiosmtpd SMTP server; the worker against SQLite and, with two workers at once,
PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from receivers import ROBOT_SECRET, SECRET, Inbox, Receiver, serve_inbox, serve_receiver
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest import migrations
from cloud_ingest.auth.service import add_user
from cloud_ingest.clock import ManualClock
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.db import WRITE_TRANSACTION, create_engine
from cloud_ingest.infra.schema import (
    notification_attempts,
    notification_channels,
    notification_deliveries,
    notification_subscriptions,
)
from cloud_ingest.main import create_app
from cloud_ingest.notify.outbox import enqueue
from cloud_ingest.notify.worker import DeliveryWorker, WorkerSettings, deliver_all

# --- real receivers -------------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as state:
        yield state


@pytest.fixture
async def smtp_server() -> AsyncIterator[Inbox]:
    async with serve_inbox() as inbox:
        yield inbox


# --- database helpers -----------------------------------------------------------------------------


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path}/steward.db")
    await migrations.upgrade(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


async def add_channel(
    engine: AsyncEngine,
    name: str,
    kind: str,
    target: str,
    *,
    secret: str | None = None,
    company: str = "A",
    options: dict[str, object] | None = None,
) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(notification_channels)
            .values(
                company=company,
                name=name,
                kind=kind,
                target=target,
                secret=secret,
                options=options or {},
                created_at=datetime.now(UTC),
            )
            .returning(notification_channels.c.id)
        )
        return int(result.scalar_one())


async def subscribe(
    engine: AsyncEngine,
    channel_id: int,
    topic: str = "*",
    *,
    company: str = "A",
    min_severity: str = "info",
    area: str = "",
    role: str | None = None,
    enabled: bool = True,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(notification_subscriptions).values(
                channel_id=channel_id,
                company=company,
                topic=topic,
                min_severity=min_severity,
                area=area,
                role=role,
                enabled=enabled,
                created_at=datetime.now(UTC),
            )
        )


async def notify(
    engine: AsyncEngine,
    topic: str = "work_order.opened",
    *,
    severity: str = "critical",
    company: str = "A",
    location: str = "d1/s1/c1/b1",
    data: dict[str, object] | None = None,
) -> int:
    async with engine.connect() as connection:
        # as callers do: a transaction that writes begins as a writer on SQLite
        conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
        async with conn.begin():
            return await enqueue(
                conn,
                topic=topic,
                severity=severity,
                company=company,
                location=location,
                title="Smoke at building 1",
                body="Work order WO-7 was opened for the smoke alarm.",
                data=data if data is not None else {"work_order": 7, "at": datetime.now(UTC)},
            )


async def deliveries(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(notification_deliveries).order_by("id"))
        return [dict(r) for r in rows.mappings()]


async def attempts(engine: AsyncEngine, delivery_id: int) -> list[dict[str, Any]]:
    a = notification_attempts.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(a.attempt, a.ok, a.error, a.at)
            .where(a.delivery_id == delivery_id)
            .order_by(a.id)
        )
        return [dict(r) for r in rows.mappings()]


def fast(**changes: Any) -> WorkerSettings:
    base: dict[str, Any] = {
        "backoff": timedelta(seconds=10),
        "backoff_max": timedelta(minutes=5),
        "jitter": 0.2,
    }
    return WorkerSettings(**(base | changes))


# --- the outbox and matching ---------------------------------------------------------------------


async def test_enqueue_records_only_with_the_callers_commit(
    engine: AsyncEngine, receiver: Receiver
) -> None:
    channel = await add_channel(engine, "ops", "webhook", f"{receiver.base}/hook", secret=SECRET)
    await subscribe(engine, channel, "work_order.*")

    class RollbackError(Exception):
        pass

    async def enqueue_then_fail() -> None:
        async with engine.begin() as conn:
            n = await enqueue(
                conn,
                topic="work_order.opened",
                severity="warning",
                company="A",
                location="d1",
                title="t",
                body="b",
                data={},
            )
            assert n == 1
            raise RollbackError

    with pytest.raises(RollbackError):
        await enqueue_then_fail()
    assert await deliveries(engine) == []
    assert receiver.hooks == []

    assert await notify(engine) == 1
    (row,) = await deliveries(engine)
    assert row["status"] == "pending"
    assert row["attempts"] == 0
    assert row["payload"]["title"] == "Smoke at building 1"
    assert row["payload"]["data"]["work_order"] == 7
    assert isinstance(row["payload"]["data"]["at"], str)  # times become ISO 8601 text
    assert receiver.hooks == []  # nothing is sent by enqueue

    with pytest.raises(ValueError, match="unknown severity"):
        await notify(engine, severity="apocalyptic")


async def test_subscriptions_match_by_topic_severity_company_area_and_role(
    engine: AsyncEngine,
) -> None:
    names = ["all-a", "wo-critical", "area-d1s1", "company-b", "every-company", "supervisors"]
    ids = {
        name: await add_channel(engine, name, "webhook", "http://127.0.0.1:9/x") for name in names
    }
    await subscribe(engine, ids["all-a"], "*")
    await subscribe(engine, ids["all-a"], "work_order.*")  # a second match: still one delivery
    await subscribe(engine, ids["wo-critical"], "work_order.*", min_severity="critical")
    await subscribe(engine, ids["area-d1s1"], "*", area="d1/s1")
    await subscribe(engine, ids["company-b"], "*", company="B")
    await subscribe(engine, ids["every-company"], "alarm.critical", company="")
    await subscribe(engine, ids["supervisors"], "*", role="supervisor")
    disabled = await add_channel(engine, "disabled-sub", "webhook", "http://127.0.0.1:9/x")
    await subscribe(engine, disabled, "*", enabled=False)
    by_id = {v: k for k, v in ids.items()}

    async def receivers(**event: Any) -> set[str]:
        before = len(await deliveries(engine))
        count = await notify(engine, **event)
        new = (await deliveries(engine))[before:]
        assert count == len(new)
        return {by_id[d["channel_id"]] for d in new}

    assert await receivers(topic="work_order.opened", severity="critical") == {
        "all-a",
        "wo-critical",
        "area-d1s1",
    }
    assert await receivers(topic="work_order.opened", severity="warning") == {
        "all-a",
        "area-d1s1",
    }
    assert await receivers(topic="work_order.closed", severity="info", location="d1/s10/c1") == {
        "all-a"
    }  # d1/s10 is not within d1/s1
    assert await receivers(topic="alarm.critical", company="B", location="d1/s1") == {
        "company-b",
        "every-company",
    }
    assert await receivers(
        topic="work_order.escalated",
        severity="warning",
        location="d1/s1",
        data={"roles": ["supervisor", "admin"]},
    ) == {"all-a", "area-d1s1", "supervisors"}
    assert await receivers(topic="work_order.opened", company="C") == set()


# --- channels against real servers ----------------------------------------------------------------


async def test_webhook_is_signed_and_the_attempt_logged(
    engine: AsyncEngine, receiver: Receiver
) -> None:
    channel = await add_channel(engine, "ops", "webhook", f"{receiver.base}/hook", secret=SECRET)
    await subscribe(engine, channel, "work_order.*")
    await notify(engine)

    worker = DeliveryWorker(engine, fast())
    try:
        assert await worker.run_once() == 1
        assert await worker.run_once() == 0
    finally:
        await worker.stop()

    (hook,) = receiver.hooks
    assert hook["valid"]
    assert hook["json"]["topic"] == "work_order.opened"
    assert hook["json"]["severity"] == "critical"
    assert hook["json"]["location"] == "d1/s1/c1/b1"
    (row,) = await deliveries(engine)
    assert hook["delivery"] == str(row["id"])
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 1, None)
    assert row["sent_at"] is not None
    assert [(a["attempt"], a["ok"]) for a in await attempts(engine, row["id"])] == [(1, True)]


async def test_a_wrong_secret_is_refused_by_the_receiver(
    engine: AsyncEngine, receiver: Receiver
) -> None:
    channel = await add_channel(engine, "ops", "webhook", f"{receiver.base}/hook", secret="wrong")  # noqa: S106
    await subscribe(engine, channel)
    await notify(engine)
    worker = DeliveryWorker(engine, fast())
    try:
        await worker.run_once()
    finally:
        await worker.stop()
    assert [h["valid"] for h in receiver.hooks] == [False]
    (row,) = await deliveries(engine)
    assert row["status"] == "failed"
    assert "HTTP 401" in row["last_error"]


async def test_robot_messages_carry_the_dingtalk_sign(
    engine: AsyncEngine, receiver: Receiver
) -> None:
    ding = await add_channel(
        engine, "ding", "robot", f"{receiver.base}/robot/send?access_token=t0k", secret=ROBOT_SECRET
    )
    wecom = await add_channel(
        engine, "wecom", "robot", f"{receiver.base}/wecom/send?key=k", options={"style": "wecom"}
    )
    unsigned = await add_channel(engine, "ding-nosign", "robot", f"{receiver.base}/robot/send")
    for channel in (ding, wecom, unsigned):
        await subscribe(engine, channel)
    await notify(engine, "work_order.sla_breach", severity="warning")

    worker = DeliveryWorker(engine, fast())
    try:
        assert await worker.run_once() == 3
    finally:
        await worker.stop()

    status = {d["channel_id"]: d for d in await deliveries(engine)}
    assert status[ding]["status"] == "sent"
    assert status[wecom]["status"] == "sent"
    assert status[unsigned]["status"] == "failed"  # the robot answers errcode 310000
    assert "310000" in status[unsigned]["last_error"]
    signed = next(
        r["json"] for r in receiver.robots if r["valid"] and "title" in r["json"]["markdown"]
    )
    assert signed["msgtype"] == "markdown"
    assert signed["markdown"]["title"] == "[warning] Smoke at building 1"
    assert "Work order WO-7" in signed["markdown"]["text"]
    wecom_doc = next(r["json"] for r in receiver.robots if "content" in r["json"]["markdown"])
    assert "d1/s1/c1/b1" in wecom_doc["markdown"]["content"]


async def test_email_reaches_the_smtp_server(engine: AsyncEngine, smtp_server: Inbox) -> None:
    channel = await add_channel(
        engine,
        "duty-mail",
        "email",
        "duty@example.test, boss@example.test",
        options={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
            "sender": "steward@a.test",
        },
    )
    await subscribe(engine, channel, "work_order.*")
    await notify(engine, "work_order.closed", severity="info")

    worker = DeliveryWorker(engine, fast())
    try:
        assert await worker.run_once() == 1
    finally:
        await worker.stop()

    ((recipients, mail),) = smtp_server.mails
    assert recipients == ["duty@example.test", "boss@example.test"]
    assert mail["Subject"] == "[info] Smoke at building 1"
    assert mail["From"] == "steward@a.test"
    text = mail.get_payload(decode=True)
    assert isinstance(text, bytes)
    assert "Work order WO-7 was opened" in text.decode()
    (row,) = await deliveries(engine)
    assert row["status"] == "sent"


async def test_email_to_a_closed_port_fails_with_the_reason(engine: AsyncEngine) -> None:
    channel = await add_channel(
        engine, "m", "email", "x@example.test", options={"smtp_host": "127.0.0.1", "smtp_port": 9}
    )
    await subscribe(engine, channel)
    await notify(engine)
    worker = DeliveryWorker(engine, fast())
    await worker.run_once()
    (row,) = await deliveries(engine)
    assert row["status"] == "failed"
    assert "Connection" in row["last_error"] or "refused" in row["last_error"].lower()


# --- retries ------------------------------------------------------------------------------------


async def test_retries_with_backoff_until_the_receiver_accepts(
    engine: AsyncEngine, receiver: Receiver
) -> None:
    channel = await add_channel(engine, "ops", "webhook", f"{receiver.base}/hook", secret=SECRET)
    await subscribe(engine, channel)
    await notify(engine)
    receiver.fail_next = 2
    clock = ManualClock(datetime.now(UTC))
    worker = DeliveryWorker(engine, fast(), now=clock.now)
    waits: list[timedelta] = []
    try:
        for _ in range(2):
            assert await worker.run_once() == 1
            (row,) = await deliveries(engine)
            assert row["status"] == "failed"
            assert "HTTP 500" in row["last_error"]
            waits.append(row["next_attempt_at"] - clock.now())
            assert await worker.run_once() == 0  # not due yet
            clock.set(row["next_attempt_at"])
        assert await worker.run_once() == 1
    finally:
        await worker.stop()

    # 10 s then 20 s, each within the 20 % jitter
    assert timedelta(seconds=8) <= waits[0] <= timedelta(seconds=12)
    assert timedelta(seconds=16) <= waits[1] <= timedelta(seconds=24)
    (row,) = await deliveries(engine)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 3, None)
    tries = await attempts(engine, row["id"])
    assert [(a["attempt"], a["ok"]) for a in tries] == [(1, False), (2, False), (3, True)]
    assert "HTTP 500: receiver busy" in tries[0]["error"]
    assert len(receiver.hooks) == 3


async def test_a_delivery_is_dead_after_the_last_attempt(
    engine: AsyncEngine, receiver: Receiver
) -> None:
    channel = await add_channel(engine, "ops", "webhook", f"{receiver.base}/hook", secret=SECRET)
    await subscribe(engine, channel)
    await notify(engine)
    receiver.fail_next = 100
    clock = ManualClock(datetime.now(UTC))
    worker = DeliveryWorker(engine, fast(max_attempts=4), now=clock.now)
    for _ in range(6):
        await worker.run_once()
        clock.advance(timedelta(hours=1))
    (row,) = await deliveries(engine)
    assert (row["status"], row["attempts"]) == ("dead", 4)
    assert "HTTP 500" in row["last_error"]
    assert [a["ok"] for a in await attempts(engine, row["id"])] == [False] * 4
    assert len(receiver.hooks) == 4
    assert worker.counters.dead == 1


# --- several workers ----------------------------------------------------------------------------


async def test_two_workers_on_postgresql_send_each_delivery_once(
    postgres_url: str, receiver: Receiver
) -> None:
    setup = create_engine(postgres_url)
    await migrations.upgrade(setup)
    engines = [create_engine(postgres_url), create_engine(postgres_url)]
    try:
        channel = await add_channel(setup, "ops", "webhook", f"{receiver.base}/hook", secret=SECRET)
        await subscribe(setup, channel)
        for n in range(40):
            await notify(setup, data={"n": n})
        workers = [DeliveryWorker(e, fast(batch=4)) for e in engines]
        tried = await asyncio.gather(*(deliver_all(w, rounds=40) for w in workers))
        assert sum(tried) == 40
        ids = [h["delivery"] for h in receiver.hooks]
        rows = await deliveries(setup)
        assert sorted(ids) == sorted(str(r["id"]) for r in rows)  # each once, none twice
        assert {r["status"] for r in rows} == {"sent"}
        for worker in workers:
            await worker.stop()
    finally:
        for e in [setup, *engines]:
            await e.dispose()


# --- the API and the worker in the application ----------------------------------------------------


Call = Callable[..., Awaitable[httpx.Response]]


async def _manage_channels_and_subscriptions(call: Call, receiver: Receiver) -> dict[str, Any]:
    hook = {
        "name": "ops",
        "kind": "webhook",
        "target": f"{receiver.base}/hook",
        "secret": SECRET,
    }
    created = await call("sup-a", "POST", "/channels", json=hook)
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["company"] == "A"
    assert channel["has_secret"] is True
    assert "secret" not in channel
    assert (await call("sup-a", "POST", "/channels", json=hook)).status_code == 409
    assert (await call("op-a", "POST", "/channels", json=hook)).status_code == 403
    bad = {**hook, "name": "bad", "target": "ftp://example.test/x"}
    assert (await call("sup-a", "POST", "/channels", json=bad)).status_code == 422
    assert (await call("sup-b", "GET", f"/channels/{channel['id']}")).status_code == 404
    assert (await call("sup-b", "GET", "/channels")).json()["items"] == []

    sub = {"channel_id": channel["id"], "topic": "work_order.*", "min_severity": "warning"}
    made = await call("sup-a", "POST", "/subscriptions", json=sub)
    assert made.status_code == 201, made.text
    assert made.json()["company"] == "A"
    assert made.json()["area"] == ""
    bad_topic = {**sub, "topic": "Work Order!"}
    assert (await call("sup-a", "POST", "/subscriptions", json=bad_topic)).status_code == 422
    outside = {**sub, "area": "d1"}
    assert (await call("sup-a-d2", "POST", "/subscriptions", json=outside)).status_code == 403
    assert (await call("sup-b", "POST", "/subscriptions", json=sub)).status_code == 404
    return dict(channel)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


async def test_api_manages_channels_and_subscriptions_and_shows_the_log(
    tmp_path: Path, receiver: Receiver
) -> None:
    flags = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/steward.db",
        "migrate_on_start": True,
        "notify_interval_s": 0.05,
    }
    app = create_app(load_settings(environ={}, flags=flags))
    async with serving(app) as client:
        engine: AsyncEngine = app.state.engine
        tokens = {
            "admin": await add_user(engine, "admin", role="admin", company=None),
            "sup-a": await add_user(engine, "sup-a", role="supervisor", company="A"),
            "sup-a-d2": await add_user(
                engine, "sup-a-d2", role="supervisor", company="A", area="d2"
            ),
            "op-a": await add_user(engine, "op-a", role="operator", company="A"),
            "sup-b": await add_user(engine, "sup-b", role="supervisor", company="B"),
            "officer": await add_user(
                engine, "officer", role="supervisor", company=None, area="d1/s1"
            ),
        }

        async def call(user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[user]}"}
            return await client.request(
                method, f"/api/v1/notifications{path}", headers=headers, **kwargs
            )

        channel = await _manage_channels_and_subscriptions(call, receiver)

        for n in range(3):
            await notify(engine, data={"n": n}, location=f"d1/s{n}")
        await notify(engine, severity="info")  # below the minimum: no delivery

        async def all_sent() -> list[dict[str, Any]]:
            for _ in range(400):
                page = (await call("sup-a", "GET", "/deliveries", params={"limit": 50})).json()
                if len(page["items"]) == 3 and {d["status"] for d in page["items"]} == {"sent"}:
                    return list(page["items"])
                await asyncio.sleep(0.025)
            raise AssertionError(f"not delivered: {page}")

        sent = await all_sent()  # by the worker the application started
        assert [d["id"] for d in sent] == sorted((d["id"] for d in sent), reverse=True)
        assert sent[0]["title"] == "Smoke at building 1"
        assert len(receiver.hooks) == 3
        assert all(h["valid"] for h in receiver.hooks)

        first = (await call("op-a", "GET", "/deliveries", params={"limit": 2})).json()
        assert len(first["items"]) == 2
        assert first["next"] is not None
        second = (
            await call("op-a", "GET", "/deliveries", params={"limit": 2, "after": first["next"]})
        ).json()
        assert [d["id"] for d in first["items"] + second["items"]] == [d["id"] for d in sent]
        assert second["next"] is None
        assert (await call("sup-b", "GET", "/deliveries")).json()["items"] == []
        assert (await call("sup-a-d2", "GET", "/deliveries")).json()["items"] == []
        officer_sees = (await call("officer", "GET", "/deliveries")).json()["items"]
        assert [d["location"] for d in officer_sees] == ["d1/s1"]  # every company, own area
        assert (await call("officer", "GET", "/channels")).json()["items"] == []
        assert (await call("officer", "POST", "/channels", json={})).status_code in {403, 422}

        detail = (await call("sup-a", "GET", f"/deliveries/{sent[0]['id']}")).json()
        assert detail["payload"]["body"].startswith("Work order WO-7")
        assert [(t["attempt"], t["ok"]) for t in detail["tries"]] == [(1, True)]
        assert (await call("sup-b", "GET", f"/deliveries/{sent[0]['id']}")).status_code == 404

        patched = await call("sup-a", "PATCH", f"/channels/{channel['id']}", json={"secret": None})
        assert patched.json()["has_secret"] is False
        deleted = await call("sup-a", "DELETE", f"/channels/{channel['id']}")
        assert deleted.status_code == 204
        assert (await call("admin", "GET", "/subscriptions")).json()["items"] == []
        assert len((await call("admin", "GET", "/deliveries")).json()["items"]) == 3
