"""The SQLite outbox file: schema upgrades, damaged records, and envelopes joined from stored text."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.envelope_json import alarm_event_to_json, dumps, loads, reading_to_json
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity
from edge_agent.outbox import OutboxError
from edge_agent.outbox.sqlite import SCHEMA_VERSION, SqliteOutbox

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

V1_SCHEMA = """
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL, body TEXT NOT NULL,
    size INTEGER NOT NULL, batch TEXT
);
CREATE INDEX records_queue ON records (kind, batch, id);
CREATE INDEX records_open ON records (batch) WHERE batch IS NOT NULL;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE damaged_records (
    id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, body TEXT NOT NULL, reason TEXT NOT NULL
);
"""


def reading(n: int) -> Reading:
    return Reading(f"bin-{n % 3}", Metric.FILL_PCT, float(n), T0 + timedelta(seconds=n))


def alarm(seq: int) -> AlarmEvent:
    return AlarmEvent(
        "site/smoke-1/smoke", seq, AlarmState.FIRING, Severity.CRITICAL, T0, T0, "smoke", "smoke-1"
    )


def _compact(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def write_v1_file(path: Path, open_batch: uuid.UUID) -> None:
    """A file as the first release wrote it: 2 alarms, 6 readings, an open batch of 1 + 3."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(V1_SCHEMA)
    rows = [(0, _compact(alarm_event_to_json(alarm(s)))) for s in (1, 2)]
    rows += [(1, _compact(reading_to_json(reading(n)))) for n in range(6)]
    conn.executemany(
        "INSERT INTO records (kind, body, size) VALUES (?, ?, ?)",
        [(kind, body, len(body.encode())) for kind, body in rows],
    )
    # ids: alarms 1-2, readings 3-8; the open batch held alarm 1 and readings 3-5.
    conn.execute("UPDATE records SET batch = ? WHERE id IN (1, 3, 4, 5)", (str(open_batch),))
    conn.execute("INSERT INTO counters VALUES ('dropped_telemetry', 7), ('rejected', 2)")
    conn.execute("INSERT INTO damaged_records VALUES (42, 1, '{', 'JSONDecodeError')")
    conn.close()


async def test_a_first_release_file_is_upgraded_with_its_queue_and_open_batch(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite3"
    open_id = uuid.uuid4()
    write_v1_file(path, open_id)
    outbox = await SqliteOutbox.create(path)
    try:
        stats = await outbox.stats()
        assert (stats.depth, stats.alarm_depth, stats.in_flight) == (8, 2, 4)
        assert (stats.dropped_telemetry, stats.rejected, outbox.damaged) == (7, 2, 1)
        batch = await outbox.begin(100)
        assert batch is not None
        assert batch.batch_id == open_id
        assert batch.ids == (1, 3, 4, 5)
        assert batch.alarm_events == (alarm(1),)
        assert batch.readings == tuple(reading(n) for n in range(3))
        await outbox.end(batch, accepted=batch.ids)
        rest = await outbox.begin(100)
        assert rest is not None
        assert rest.alarm_events == (alarm(2),)
        assert rest.readings == tuple(reading(n) for n in range(3, 6))
        await outbox.put([reading(6)])
        await outbox.end(rest, accepted=rest.ids)
        last = await outbox.begin(100)
        assert last is not None
        assert last.readings == (reading(6),)
    finally:
        await outbox.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "records_v1" not in tables
        assert conn.execute("SELECT record_id, reason FROM damaged_records").fetchall() == [
            (42, "JSONDecodeError")
        ]
    finally:
        conn.close()


async def test_a_file_from_a_newer_release_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    outbox = SqliteOutbox(path)
    with pytest.raises(OutboxError, match=f"schema version {SCHEMA_VERSION + 1}"):
        await outbox.open()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    finally:
        conn.close()


async def test_a_damaged_record_is_set_aside_and_the_rest_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = await SqliteOutbox.create(path)
    await outbox.put([reading(n) for n in range(5)], [alarm(1)])
    await outbox.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE records SET body = '{\"device\": 3' WHERE id = 3")  # not JSON
    conn.execute('UPDATE records SET body = \'{"device": "x"}\' WHERE id = 5')  # fields missing
    conn.close()

    reopened = await SqliteOutbox.create(path)
    try:
        batch = await reopened.begin(100)
        assert batch is not None
        assert batch.alarm_events == (alarm(1),)
        assert batch.readings == (reading(0), reading(2), reading(4))
        assert reopened.damaged == 2
        assert (await reopened.stats()).depth == 4
        await reopened.end(batch, accepted=batch.ids)
        assert await reopened.begin(100) is None
    finally:
        await reopened.close()
    conn = sqlite3.connect(path)
    try:
        reasons = conn.execute("SELECT record_id, reason FROM damaged_records ORDER BY seq")
        assert [(rid, reason.split(":")[0]) for rid, reason in reasons] == [
            (3, "JSONDecodeError"),
            (5, "EnvelopeError"),
        ]
    finally:
        conn.close()


async def test_the_envelope_of_a_batch_is_the_envelope_of_its_records(tmp_path: Path) -> None:
    outbox = await SqliteOutbox.create(tmp_path / "outbox.sqlite3")
    try:
        readings = [reading(n) for n in range(4)]
        await outbox.put(readings, [alarm(1), alarm(2)])
        batch = await outbox.begin(100)
        assert batch is not None
        sent_at = T0 + timedelta(minutes=1)
        payload = batch.envelope("gw-1", sent_at)
        expected = Envelope("gw-1", batch.batch_id, sent_at, tuple(readings), (alarm(1), alarm(2)))
        assert payload == dumps(expected)
        assert loads(payload) == expected
    finally:
        await outbox.close()


async def test_ids_keep_growing_after_a_restart_with_records_queued(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = await SqliteOutbox.create(path)
    await outbox.put([reading(n) for n in range(3)])
    await outbox.close()
    reopened = await SqliteOutbox.create(path)
    try:
        await reopened.put([reading(3)])
        batch = await reopened.begin(100)
        assert batch is not None
        assert batch.ids == (1, 2, 3, 4)
        assert batch.readings == tuple(reading(n) for n in range(4))
    finally:
        await reopened.close()
