"""`POST /api/v1/ingest`: the HTTP intake settles an envelope exactly as the MQTT path does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.service import add_user
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.schema import dead_letters, ingested_batches, readings
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.service import IngestService, Outcome, Settled
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import ENVELOPE_LIMITS, Envelope, Reading

PATH = "/api/v1/ingest"


def envelope(
    gateway: str, *, values: tuple[float, ...] = (21.5, 22.0), batch: UUID | None = None
) -> bytes:
    now = datetime.now(UTC)
    return dumps(
        Envelope(
            gateway_id=gateway,
            batch_id=batch or uuid4(),
            sent_at=now,
            readings=tuple(
                Reading(f"{gateway}-temp", Metric.TEMPERATURE_C, v, now - timedelta(seconds=10 - i))
                for i, v in enumerate(values)
            ),
            alarm_events=(),
        )
    )


@dataclass
class Intake:
    client: httpx.AsyncClient
    app: FastAPI
    token_a: str
    token_b: str
    user_token: str

    @property
    def engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.app.state.engine
        return engine

    @property
    def service(self) -> IngestService:
        service: IngestService = self.app.state.ingest
        return service

    async def post(self, body: bytes, token: str | None = None, **headers: str) -> httpx.Response:
        sent = {"Content-Type": "application/json", **headers}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return await self.client.post(PATH, content=body, headers=sent)

    async def count(self, table: Any) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Intake]:
    flags = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/steward.db", "migrate_on_start": True}
    app = create_app(load_settings(environ={}, flags=flags))
    async with serving(app) as client:
        engine = app.state.engine
        a = await add_gateway(engine, "gw-a", company="A")
        b = await add_gateway(engine, "gw-b", company="B")
        user = await add_user(engine, "ann", role="admin", company=None, area=None)
        yield Intake(client, app, a.http_token, b.http_token, user)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_an_envelope_is_stored_once_202_then_200(intake: Intake) -> None:
    body = envelope("gw-a")
    batch_id = json.loads(body)["batch_id"]
    first = await intake.post(body, intake.token_a)
    assert first.status_code == 202, first.text
    assert first.json() == {"batch_id": batch_id}
    again = await intake.post(body, intake.token_a)
    assert again.status_code == 200, again.text
    assert again.json() == {"batch_id": batch_id, "duplicate": True}
    assert await intake.count(readings) == 2
    assert await intake.count(ingested_batches) == 1
    assert intake.service.counters.duplicates == 1


async def test_an_envelope_of_another_gateway_is_refused_as_identity(intake: Intake) -> None:
    forged = envelope("gw-b")  # gateway A's token, gateway B's envelope
    response = await intake.post(forged, intake.token_a)
    problem = assert_problem(response, 422)
    assert problem["reason"] == "identity"
    assert "gw-b" in problem["detail"]
    assert await intake.count(readings) == 0
    assert await intake.count(ingested_batches) == 0
    async with intake.engine.connect() as conn:
        (row,) = (await conn.execute(select(dead_letters))).mappings().all()
    assert (row["topic"], row["reason"], row["payload"]) == (
        "steward/v1/gw-a/up",
        "identity",
        forged,
    )
    assert intake.service.counters.rejections["identity"] == 1


async def test_missing_bad_and_user_tokens_are_401(intake: Intake) -> None:
    body = envelope("gw-a")
    for headers in [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {intake.user_token}"},
        {"Authorization": f"Basic {intake.token_a}"},
        {"Authorization": "Bearer"},
    ]:
        response = await intake.post(body, **headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer"), headers
    assert await intake.count(ingested_batches) == 0
    assert await intake.count(dead_letters) == 0


async def test_a_gateway_token_reads_nothing(intake: Intake) -> None:
    response = await intake.client.get(
        "/api/v1/devices", headers={"Authorization": f"Bearer {intake.token_a}"}
    )
    assert_problem(response, 401)


async def test_a_body_over_the_limit_is_413_without_being_read_whole(intake: Intake) -> None:
    chunk = b" " * 65536
    total_chunks = 2 * ENVELOPE_LIMITS.max_bytes // len(chunk)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(total_chunks):
            sent += 1
            yield chunk

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {intake.token_a}"}
    response = await intake.client.post(PATH, content=body(), headers=headers)
    problem = assert_problem(response, 413)
    assert problem["reason"] == "too_large"
    assert "content-length" not in {k.lower() for k in response.request.headers}  # streamed
    assert sent <= ENVELOPE_LIMITS.max_bytes // len(chunk) + 2 < total_chunks
    assert await intake.count(ingested_batches) == 0


async def test_a_declared_length_over_the_limit_is_413_at_once(intake: Intake) -> None:
    big = str(ENVELOPE_LIMITS.max_bytes + 1)
    response = await intake.post(b"{}", intake.token_a, **{"Content-Length": big})
    assert_problem(response, 413)


async def test_a_body_just_under_the_limit_is_read_and_judged(intake: Intake) -> None:
    body = envelope("gw-a")
    padded = body[:-1] + b" " * (ENVELOPE_LIMITS.max_bytes - len(body)) + b"}"
    assert len(padded) == ENVELOPE_LIMITS.max_bytes
    response = await intake.post(padded, intake.token_a)
    assert response.status_code == 202, response.text[:300]


async def test_a_non_finite_number_is_422_non_finite(intake: Intake) -> None:
    body = envelope("gw-a", values=(1.0,)).replace(b"1.0", b"NaN")
    assert b"NaN" in body
    problem = assert_problem(await intake.post(body, intake.token_a), 422)
    assert problem["reason"] == "non_finite"
    assert await intake.count(readings) == 0
    assert await intake.count(dead_letters) == 1


async def test_malformed_json_is_422_bad_json_and_dead_lettered(intake: Intake) -> None:
    problem = assert_problem(await intake.post(b"{not json", intake.token_a), 422)
    assert problem["reason"] == "bad_json"
    assert await intake.count(dead_letters) == 1


async def test_another_content_type_is_415(intake: Intake) -> None:
    response = await intake.post(envelope("gw-a"), intake.token_a, **{"Content-Type": "text/plain"})
    assert_problem(response, 415)
    assert await intake.count(ingested_batches) == 0


async def test_a_storage_failure_is_503_with_retry_after_and_keeps_nothing(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_store(*_: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    body = envelope("gw-a")
    with monkeypatch.context() as patch:
        patch.setattr(IngestService, "_store", failing_store)
        response = await intake.post(body, intake.token_a)
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) > 0
    assert await intake.count(ingested_batches) == 0
    assert intake.service.counters.storage_failures == 1
    retried = await intake.post(body, intake.token_a)  # the gateway sends it again
    assert retried.status_code == 202, retried.text
    assert await intake.count(readings) == 2


async def test_the_openapi_schema_documents_the_intake(intake: Intake) -> None:
    schema = (await intake.client.get("/openapi.json")).json()
    post = schema["paths"][PATH]["post"]
    assert {"200", "202", "401", "413", "422", "503"} <= set(post["responses"])
    assert "application/json" in post["requestBody"]["content"]


# --- the service's per-message outcomes --------------------------------------------------------


async def test_settle_says_what_became_of_each_message(intake: Intake) -> None:
    now = datetime.now(UTC)
    first = envelope("gw-a")
    batch = [
        Incoming("steward/v1/gw-a/up", first, now),
        Incoming("steward/v1/gw-a/up", first, now),  # the same batch again in one transaction
        Incoming("steward/v1/gw-a/up", envelope("gw-b"), now),
        Incoming("steward/v1/gw-a/status", b"", now),
        Incoming("steward/v1/gw-a/status", b'{"state": "online"}', now),
        Incoming("bad/topic", b"{}", now),
    ]
    outcomes = await intake.service.settle(batch)
    first_id = UUID(json.loads(first)["batch_id"])
    assert [o.settled for o in outcomes] == [
        Settled.STORED,
        Settled.DUPLICATE,
        Settled.REJECTED,
        Settled.IGNORED,
        Settled.STORED,
        Settled.REJECTED,
    ]
    assert outcomes[0] == Outcome(Settled.STORED, first_id)
    assert outcomes[1] == Outcome(Settled.DUPLICATE, first_id)
    assert outcomes[2].reason == "identity"
    assert outcomes[2].batch_id is not None
    assert outcomes[5].reason == "bad_topic"
    assert outcomes[5].batch_id is None
    assert await intake.service.settle([]) == []
    assert await intake.count(readings) == 2


async def test_settle_reports_a_foreign_device_with_its_batch_id(intake: Intake) -> None:
    now = datetime.now(UTC)
    await intake.service.settle([Incoming("steward/v1/gw-a/up", envelope("gw-a"), now)])
    batch = uuid4()
    stolen = envelope("gw-a", batch=batch).replace(b'"gw-a"', b'"gw-b"')  # gw-a's device, on gw-b
    (outcome,) = await intake.service.settle([Incoming("steward/v1/gw-b/up", stolen, now)])
    assert outcome == Outcome(Settled.REJECTED, batch, "foreign_device", outcome.detail)
    assert outcome.detail
