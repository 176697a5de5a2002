"""Cloud ingest throughput, each figure against a baseline measured in the same run.

- readings: envelopes of 100 readings (and a few alarm events), in batches of 50 messages, stored
  by `IngestService` (parse, identity, idempotency, insert, commit: the full path) into a temporary
  SQLite file and into a throwaway PostgreSQL server, against the bare insert of the same rows
  (`sqlite3` `executemany` in one transaction; asyncpg `copy_records_to_table`), and against
  parsing alone (`core.envelope_json.loads`).
- alarms: envelopes carrying many alarm events, half of them replays (the same fingerprint and
  `seq` under another batch id), folded into instances with de-duplication.

Run: `.venv/bin/python bench/ingest.py [seconds]`; see bench/README.md.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import asyncpg

from cloud_ingest import migrations
from cloud_ingest.infra.db import create_engine
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.service import IngestService
from core.envelope_json import dumps, loads
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity
from simulators.services import Postgres

READINGS_PER_ENVELOPE: Final = 100
EVENTS_PER_ENVELOPE: Final = 2
MESSAGES_PER_BATCH: Final = 50
EVENTS_PER_ALARM_ENVELOPE: Final = 200
GATEWAYS: Final = 10
DEVICES_PER_GATEWAY: Final = 50
READING_COLUMNS: Final = (
    "gateway_id",
    "device_id",
    "metric",
    "ts",
    "value",
    "value_bool",
    "quality",
    "codec",
    "derived_from",
)


def _gateway(n: int) -> str:
    return f"gw-bench-{n % GATEWAYS}"


def _event(gateway: str, fingerprint: int, seq: int, at: datetime) -> AlarmEvent:
    device = f"{gateway}/smoke-{fingerprint % DEVICES_PER_GATEWAY}"
    firing = seq % 2 == 1
    return AlarmEvent(
        fingerprint=f"site-1/{device}/smoke/{fingerprint}",
        seq=seq,
        state=AlarmState.FIRING if firing else AlarmState.RESOLVED,
        severity=Severity.CRITICAL,
        starts_at=at - timedelta(seconds=30),
        at=at,
        rule_id="smoke",
        device_id=device,
        location="d1/s1/c1/g1/k1/b1/u1",
        valid_until=at + timedelta(minutes=2) if firing else None,
        value=firing,
        evidence={"smoke_pct": 12.5},
    )


def reading_envelope(n: int, now: datetime, alarm_events: int = EVENTS_PER_ENVELOPE) -> Envelope:
    """Envelope `n`: 100 readings of one gateway's devices and a couple of alarm events."""
    gateway = _gateway(n)
    start = now - timedelta(minutes=5) + timedelta(milliseconds=n)
    readings = tuple(
        Reading(
            f"{gateway}/dev-{i % DEVICES_PER_GATEWAY}",
            Metric.TEMPERATURE_C,
            20.0 + (n * READINGS_PER_ENVELOPE + i) % 1000 / 100,
            start + timedelta(milliseconds=i * 10),
            codec_id="serial.acme.temp",
        )
        for i in range(READINGS_PER_ENVELOPE)
    )
    events = tuple(
        _event(gateway, n * EVENTS_PER_ENVELOPE + k, 1, start) for k in range(alarm_events)
    )
    return Envelope(
        gateway_id=gateway,
        batch_id=uuid.uuid4(),
        sent_at=start + timedelta(seconds=1),
        readings=readings,
        alarm_events=events,
    )


def alarm_envelopes(count: int, now: datetime) -> list[Envelope]:
    """`count` envelopes of alarm events only; every second envelope replays the one before it
    under a new batch id, and the fingerprints repeat with rising `seq`."""
    out: list[Envelope] = []
    fingerprints = 500
    seq = 0
    for n in range(count):
        gateway = _gateway(0)
        at = now - timedelta(minutes=5) + timedelta(milliseconds=n)
        if n % 2 == 1:
            events = out[-1].alarm_events
        else:
            seq += 1
            events = tuple(
                _event(gateway, (n * EVENTS_PER_ALARM_ENVELOPE + k) % fingerprints, seq, at)
                for k in range(EVENTS_PER_ALARM_ENVELOPE)
            )
        out.append(Envelope(gateway, uuid.uuid4(), at + timedelta(seconds=1), (), events))
    return out


def messages(envelopes: Sequence[Envelope], received_at: datetime) -> list[Incoming]:
    """The MQTT messages a consumer would hand to the service."""
    return [Incoming(f"steward/v1/{e.gateway_id}/up", dumps(e), received_at) for e in envelopes]


def batches(items: Sequence[Incoming], size: int = MESSAGES_PER_BATCH) -> Iterator[list[Incoming]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def reading_rows(envelopes: Sequence[Envelope]) -> list[tuple[Any, ...]]:
    """The readings of `envelopes` as `READING_COLUMNS` tuples, aware times (for asyncpg)."""
    return [
        (
            e.gateway_id,
            r.device_id,
            r.metric.value,
            r.ts,
            float(r.value),
            None,
            r.quality.value,
            r.codec_id,
            None,
        )
        for e in envelopes
        for r in e.readings
    ]


def sqlite_rows(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The same rows with times as SQLite text (naive UTC), as the schema stores them."""
    return [
        (
            *row[:3],
            row[3].astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds"),
            *row[4:],
        )
        for row in rows
    ]


async def migrated(url: str) -> None:
    """Create the schema in the empty database at `url`."""
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


async def ingest(url: str, items: Sequence[Incoming], seconds: float) -> tuple[float, float, int]:
    """Feed `items` to a fresh `IngestService` in batches until done or `seconds` pass.

    Returns (readings/s, alarm events offered/s, messages fed).
    """
    await migrated(url)
    engine = create_engine(url)
    try:
        service = IngestService(engine)
        fed = 0
        start = time.perf_counter()
        for batch in batches(items):
            await service(batch)
            fed += len(batch)
            if time.perf_counter() - start >= seconds:
                break
        elapsed = time.perf_counter() - start
        counters = service.counters
        if counters.rejections or counters.duplicates:
            raise RuntimeError(f"bench messages refused: {dict(counters.rejections)}")
        events = counters.alarm_events + counters.alarm_events_replayed
        return counters.readings / elapsed, events / elapsed, fed
    finally:
        await engine.dispose()


def baseline_sqlite(path: Path, rows: Sequence[tuple[Any, ...]], seconds: float) -> float:
    """Raw `sqlite3` executemany of the same rows, one transaction per batch, same pragmas."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        sql = (
            "INSERT INTO readings (gateway_id, device_id, metric, ts, value, value_bool, quality, "
            "codec, derived_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        per_batch = READINGS_PER_ENVELOPE * MESSAGES_PER_BATCH
        done = 0
        start = time.perf_counter()
        while done < len(rows) and time.perf_counter() - start < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows[done : done + per_batch])
            conn.execute("COMMIT")
            done += per_batch
        return min(done, len(rows)) / (time.perf_counter() - start)
    finally:
        conn.close()


async def baseline_copy(dsn: str, rows: Sequence[tuple[Any, ...]], seconds: float) -> float:
    """asyncpg `copy_records_to_table` of the same rows, one transaction per batch."""
    conn = await asyncpg.connect(dsn)
    try:
        per_batch = READINGS_PER_ENVELOPE * MESSAGES_PER_BATCH
        done = 0
        start = time.perf_counter()
        while done < len(rows) and time.perf_counter() - start < seconds:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "readings", records=rows[done : done + per_batch], columns=READING_COLUMNS
                )
            done += per_batch
        return min(done, len(rows)) / (time.perf_counter() - start)
    finally:
        await conn.close()


def parse_only(items: Sequence[Incoming], seconds: float) -> float:
    """Readings/s through `loads` alone."""
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for message in items[:MESSAGES_PER_BATCH]:
            done += len(loads(message.payload).readings)
    return done / (time.perf_counter() - start)


async def run_async(seconds: float) -> dict[str, float]:
    """All figures; `seconds` is shared between the phases (setup not included)."""
    share = max(seconds, 0.1) / 7
    now = datetime.now(UTC)
    # Enough envelopes that no phase runs out on a fast machine (capped for memory).
    count = max(MESSAGES_PER_BATCH, min(3000, int(share * 1000) // MESSAGES_PER_BATCH * 50))
    envelopes = [reading_envelope(n, now) for n in range(count)]
    items = messages(envelopes, now)
    rows = reading_rows(envelopes)
    alarm_items = messages(alarm_envelopes(max(4, count // 10), now), now)
    out: dict[str, float] = {}
    out["parse_only_per_s"] = parse_only(items, share)
    # Each baseline writes the rows the service stored, into its own freshly migrated database,
    # so both start from the same empty tables and indexes.
    with tempfile.TemporaryDirectory(prefix="steward-bench-ingest-") as tmp:
        rate, _, fed = await ingest(f"sqlite+aiosqlite:///{tmp}/ingest.db", items, share)
        out["sqlite_readings_per_s"] = rate
        await migrated(f"sqlite+aiosqlite:///{tmp}/baseline.db")
        out["sqlite_baseline_executemany_per_s"] = baseline_sqlite(
            Path(tmp) / "baseline.db", sqlite_rows(rows[: fed * READINGS_PER_ENVELOPE]), share
        )
        _, events, _ = await ingest(f"sqlite+aiosqlite:///{tmp}/alarms.db", alarm_items, share)
        out["sqlite_alarm_events_per_s"] = events
    with Postgres() as server:
        for name in ("ingest", "baseline", "alarms"):
            server.create_database(name)
        url = server.url("ingest", driver="postgresql+asyncpg")
        rate, _, fed = await ingest(url, items, share)
        out["postgres_readings_per_s"] = rate
        await migrated(server.url("baseline", driver="postgresql+asyncpg"))
        out["postgres_baseline_copy_per_s"] = await baseline_copy(
            server.url("baseline"), rows[: fed * READINGS_PER_ENVELOPE], share
        )
        alarms_url = server.url("alarms", driver="postgresql+asyncpg")
        _, events, _ = await ingest(alarms_url, alarm_items, share)
        out["postgres_alarm_events_per_s"] = events
    out["sqlite_ratio_executemany"] = (
        out["sqlite_readings_per_s"] / out["sqlite_baseline_executemany_per_s"]
    )
    out["postgres_ratio_copy"] = (
        out["postgres_readings_per_s"] / out["postgres_baseline_copy_per_s"]
    )
    out["sqlite_ratio_parse_only"] = out["sqlite_readings_per_s"] / out["parse_only_per_s"]
    out["postgres_ratio_parse_only"] = out["postgres_readings_per_s"] / out["parse_only_per_s"]
    return out


def run(seconds: float = 7.0) -> dict[str, float]:
    """Run every phase (about `seconds` plus PostgreSQL start-up) and return the figures."""
    return asyncio.run(run_async(seconds))


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 7.0
    for name, value in run(seconds).items():
        print(f"{name:40} {value:14,.2f}")


if __name__ == "__main__":
    main()
