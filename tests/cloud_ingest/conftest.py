"""Shared helpers of the cloud ingest tests: envelopes as a gateway sends them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest import migrations
from cloud_ingest.infra.db import create_engine
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity

EnvelopeFactory = Callable[..., bytes]
"""`factory(gateway="gw-1", readings=3, alarm_events=1) -> bytes`: a fresh, valid envelope."""


def _envelope(gateway: str = "gw-1", readings: int = 3, alarm_events: int = 1) -> bytes:
    now = datetime.now(UTC)
    return dumps(
        Envelope(
            gateway_id=gateway,
            batch_id=uuid4(),
            sent_at=now,
            readings=tuple(
                Reading(
                    f"smoke-{n % 2}",
                    Metric.TEMPERATURE_C,
                    20.0 + n,
                    now - timedelta(seconds=60 - n),
                )
                for n in range(readings)
            ),
            alarm_events=tuple(
                AlarmEvent(
                    fingerprint=f"site-1/smoke-0/smoke/{n}",
                    seq=1,
                    state=AlarmState.FIRING,
                    severity=Severity.CRITICAL,
                    starts_at=now - timedelta(seconds=5),
                    at=now - timedelta(seconds=5),
                    rule_id="smoke",
                    device_id="smoke-0",
                )
                for n in range(alarm_events)
            ),
        )
    )


@pytest.fixture
def make_envelope() -> EnvelopeFactory:
    """Build envelope bytes timed now (so the ingest's time bounds accept them)."""
    return _envelope


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a SQLite file, then a fresh PostgreSQL database (the
    DB tests of this folder run on both)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/steward.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on `db_url`, migrated to the newest revision (a test module may define its own)."""
    engine = create_engine(db_url)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()
