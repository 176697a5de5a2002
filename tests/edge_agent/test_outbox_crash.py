"""`kill -9` of a process writing to a SqliteOutbox loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path

from core.metrics import Metric
from core.types import AlarmEvent, Reading
from edge_agent.outbox import OutboxLimits
from edge_agent.outbox.sqlite import SqliteOutbox

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime, timedelta
    from core.metrics import Metric
    from core.types import AlarmEvent, AlarmState, Reading, Severity
    from edge_agent.outbox.sqlite import SqliteOutbox

    T0 = datetime(2026, 11, 22, tzinfo=UTC)

    def reading(n):
        return Reading(f"dev-{n % 3}", Metric.DISTANCE_MM, float(n), T0 + timedelta(milliseconds=n // 2))

    def alarm(n):
        return AlarmEvent(f"site/dev/{n}", n, AlarmState.FIRING, Severity.CRITICAL, T0, T0, "r", "dev")

    async def main(path):
        outbox = await SqliteOutbox.create(path)
        await outbox.put([reading(n) for n in range(10)])
        batch = await outbox.begin(5)
        print("batch", batch.batch_id, *batch.ids, flush=True)
        n = 10
        while True:
            await outbox.put([reading(n + i) for i in range(40)], [alarm(n)] if n % 400 == 10 else [])
            n += 40
            print("ack", n, flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


def run_writer_until_killed(path: Path) -> tuple[uuid.UUID, list[int], int]:
    """Run the writer, SIGKILL it mid-stream; return its open batch and the last acknowledged count."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first[0] == "batch", proc.stderr.read() if proc.stderr else ""
    batch_id, batch_ids = uuid.UUID(first[1]), [int(x) for x in first[2:]]
    acked = 0
    for line in proc.stdout:
        acked = int(line.split()[1])
        if acked >= 4000:
            os.kill(proc.pid, signal.SIGKILL)
            break
    # Lines already written before the kill are acknowledgements too.
    rest = proc.stdout.read().split()
    acked = max([acked, *(int(x) for x in rest if x.isdigit())])
    assert proc.wait(10) == -signal.SIGKILL
    return batch_id, batch_ids, acked


async def test_kill_9_mid_stream_loses_no_acknowledged_put(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    batch_id, batch_ids, acked = await asyncio.to_thread(run_writer_until_killed, path)
    outbox = await SqliteOutbox.create(path)
    try:
        batch = await outbox.begin(1000)
        assert batch is not None
        assert batch.batch_id == batch_id
        assert list(batch.ids) == batch_ids
        assert [r.value for r in batch.readings] == [0.0, 1.0, 2.0, 3.0, 4.0]
        readings: list[Reading] = []
        events: list[AlarmEvent] = []
        while batch is not None:
            readings += batch.readings
            events += batch.alarm_events
            await outbox.end(batch, accepted=batch.ids)
            batch = await outbox.begin(1000)
        values = [int(r.value) for r in readings]
        # Everything acknowledged is there, in order; a put in progress at the kill is all or nothing.
        assert values == list(range(len(values)))
        assert len(values) >= acked
        assert (len(values) - 10) % 40 == 0
        assert [e.seq for e in events] == list(range(10, len(values), 400))
        assert (await outbox.stats()).depth == 0
    finally:
        await outbox.close()


async def test_restart_restores_counters_and_open_batch(tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 22, tzinfo=UTC)
    readings = [Reading("bin-1", Metric.FILL_PCT, float(n), t0) for n in range(8)]
    limits = OutboxLimits(max_records=5, max_bytes=None)
    outbox = await SqliteOutbox.create(tmp_path / "o.db", limits)
    await outbox.put(readings)
    batch = await outbox.begin(2)
    assert batch is not None
    before = await outbox.stats()
    await outbox.close()

    reopened = await SqliteOutbox.create(tmp_path / "o.db", limits)
    try:
        assert await reopened.stats() == before
        assert before.dropped_telemetry == 3
        assert await reopened.begin(10) == batch
        await reopened.end(batch, accepted=batch.ids[:1])
        rest = await reopened.begin(10)
        assert rest is not None
        assert list(rest.readings) == readings[4:]
    finally:
        await reopened.close()


async def test_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    outbox = await SqliteOutbox.create(tmp_path / "o.db")
    await outbox.close()
    conn = sqlite3.connect(tmp_path / "o.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
