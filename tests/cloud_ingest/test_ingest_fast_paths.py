"""The ingest's fast paths give what the plain ones gave: SQLite time text, GC, gateways' last seen.

- the SQLite time text of the telemetry sink is SQLAlchemy's `DATETIME` text of the UTC time;
- a started consumer has frozen the objects of start-up and raised the young GC threshold;
- the service moves the `last_seen` of every gateway of a batch (one statement for all of them) to
  the latest reception of its envelopes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import gc
import random
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.infra.schema import gateways
from cloud_ingest.ingest.consumer import (
    GC_YOUNG_THRESHOLD,
    ConsumerSettings,
    MqttConsumer,
)
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.service import IngestService
from cloud_ingest.telemetry.sink import _sqlite_utc_text
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import Envelope, Reading


def test_sqlite_time_text_is_sqlalchemys_datetime_text_in_utc() -> None:
    as_sqlalchemy = sqlite.DATETIME().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert as_sqlalchemy is not None
    rng = random.Random(3)  # noqa: S311 - test data, not cryptography
    zones = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]
    start = datetime(1970, 1, 2, tzinfo=UTC)
    for n in range(5_000):
        when = start + timedelta(microseconds=rng.randrange(0, 3_000_000_000 * 10**6))
        if n % 7 == 0:
            when = when.replace(microsecond=0)
        when = when.astimezone(rng.choice(zones))
        expected = as_sqlalchemy(when.astimezone(UTC).replace(tzinfo=None))
        assert _sqlite_utc_text(when) == expected
    with pytest.raises(ValueError, match="naive"):
        _sqlite_utc_text(datetime(2026, 1, 1))  # noqa: DTZ001 - refused, as UtcDateTime refuses it


async def test_a_started_consumer_freezes_start_up_and_raises_the_young_threshold() -> None:
    async def handler(batch: Sequence[Incoming]) -> None:
        del batch

    # Nothing listens on the port: start() only begins connecting in the background.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    consumer = MqttConsumer(ConsumerSettings(port=port, stop_grace_s=0), handler)
    await consumer.start()
    try:
        assert gc.get_threshold()[0] >= GC_YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        await consumer.stop()


async def test_every_gateway_of_a_batch_is_seen_at_its_latest_envelope(engine: AsyncEngine) -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def up(gateway: str, seconds: int) -> Incoming:
        reading = Reading(f"{gateway}/t-1", Metric.TEMPERATURE_C, 21.0, now - timedelta(minutes=1))
        envelope = Envelope(gateway, uuid4(), now, (reading,), ())
        payload = dumps(envelope)
        return Incoming(f"steward/v1/{gateway}/up", payload, now + timedelta(seconds=seconds))

    service = IngestService(engine)
    await service([up("gw-c", 1), up("gw-a", 5), up("gw-b", 2), up("gw-a", 3), up("gw-c", 7)])
    await service([up("gw-b", 9)])
    async with engine.connect() as conn:
        rows = await conn.execute(select(gateways.c.id, gateways.c.last_seen).order_by("id"))
        seen = {row.id: row.last_seen for row in rows}
    assert seen == {
        "gw-a": now + timedelta(seconds=5),
        "gw-b": now + timedelta(seconds=9),
        "gw-c": now + timedelta(seconds=7),
    }
