"""`cloud-ingest serve` as a real process, a paced QoS 1 publisher and PostgreSQL look-ups, for tests.

The server process and the publisher live in `simulators.cloud_server` (the benchmarks use them
too); they are imported here under their old names.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from cloud_ingest import migrations
from cloud_ingest.infra.db import create_engine
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity
from simulators.cloud_server import (
    REPO,
    IngestServer,
    Publisher,
    cloud_ingest_env,
    until,
)

__all__ = [
    "REPO",
    "IngestServer",
    "Publisher",
    "cloud_ingest_env",
    "cloud_ingest_run",
    "envelope",
    "envelope_doc",
    "query",
    "scalar",
    "stored_batches",
    "until",
    "up_message",
    "upgrade_database",
]


def cloud_ingest_run(args: Sequence[str], cwd: Path) -> str:
    """Run a `cloud-ingest` command to its end; return its stdout (fail on a non-zero status)."""
    result = subprocess.run(
        [sys.executable, "-m", "cloud_ingest.cli", *args],
        cwd=cwd,
        env=cloud_ingest_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def upgrade_database(url: str) -> None:
    """Migrate `url` to the newest revision (what `cloud-ingest db upgrade` does)."""

    async def upgrade() -> None:
        engine = create_engine(url)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(upgrade())


def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """Rows of `sql` on the PostgreSQL database of the SQLAlchemy `url`."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
            return rows
        finally:
            await connection.close()

    return asyncio.run(fetch())


def scalar(url: str, sql: str, *args: object) -> Any:
    """The first column of the first row of `sql`."""
    return query(url, sql, *args)[0][0]


def stored_batches(url: str) -> set[UUID]:
    """The batch ids in `ingested_batches`."""
    return {row[0] for row in query(url, "SELECT batch_id FROM ingested_batches")}


def envelope(
    gateway: str, n: int, *, readings: int = 2, shift: timedelta = timedelta()
) -> Envelope:
    """Envelope number `n` of `gateway`: its own readings and one alarm event of its own."""
    now = datetime.now(UTC) + shift
    return Envelope(
        gateway_id=gateway,
        batch_id=uuid4(),
        sent_at=now,
        readings=tuple(
            Reading(f"{gateway}-dev-{k % 3}", Metric.TEMPERATURE_C, n + k / 10, now)
            for k in range(readings)
        ),
        alarm_events=(
            AlarmEvent(
                fingerprint=f"{gateway}/site/{gateway}-dev-0/smoke/{n}",
                seq=1,
                state=AlarmState.FIRING,
                severity=Severity.CRITICAL,
                starts_at=now,
                at=now,
                rule_id="smoke",
                device_id=f"{gateway}-dev-0",
            ),
        ),
    )


def up_message(env: Envelope, topic_gateway: str | None = None) -> tuple[str, bytes]:
    """`(topic, payload)` of `env` on its gateway's (or `topic_gateway`'s) `/up` topic."""
    return f"steward/v1/{topic_gateway or env.gateway_id}/up", dumps(env)


def envelope_doc(env: Envelope) -> dict[str, Any]:
    """`env` as a JSON document, to be spoiled by a test."""
    doc: dict[str, Any] = json.loads(dumps(env))
    return doc
