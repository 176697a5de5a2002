"""The durable outbox: one SQLite file in WAL mode with `synchronous=FULL`.

Every call runs in one dedicated worker thread that owns the connection, so the event loop never waits
on a disk flush and no two transactions interleave. A `put` is one transaction (a batch insert with
`executemany`); when it returns, the records are on disk and survive `kill -9` and power loss. The open
batch is stored as a column on its records, so after a restart `begin` returns it again with the same
batch id and the same records.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from core.errors import EnvelopeError
from core.types import AlarmEvent, Reading
from edge_agent.outbox.base import (
    Batch,
    OutboxError,
    OutboxLimits,
    OutboxRecord,
    OutboxStats,
    ReadySignal,
    RecordKind,
)
from edge_agent.outbox.records import decode_record, encode_event, encode_reading, utf8_size

_T = TypeVar("_T")

_ALARM: Final = 0
_READING: Final = 1
_KINDS: Final = {_ALARM: RecordKind.ALARM, _READING: RecordKind.READING}

_RECENT_MAX: Final = 10_000
"""Records kept decoded in memory after a put, so `begin` need not parse them back from JSON."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL,          -- 0 alarm event, 1 reading: ORDER BY kind, id puts alarms first
    body TEXT NOT NULL,             -- JSON from core.envelope_json
    size INTEGER NOT NULL,          -- UTF-8 bytes of body
    batch TEXT                      -- id of the open batch holding this record, else NULL
);
CREATE INDEX IF NOT EXISTS records_queue ON records (kind, batch, id);
CREATE INDEX IF NOT EXISTS records_open ON records (batch) WHERE batch IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS damaged_records (
    id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, body TEXT NOT NULL, reason TEXT NOT NULL
);
"""


class SqliteOutbox:
    """Outbox in a SQLite file; see the module docstring for the durability rules."""

    def __init__(self, path: Path | str, limits: OutboxLimits | None = None) -> None:
        """Prepare an outbox at `path`; call `open()` (or use `SqliteOutbox.create`) before use."""
        self.path = Path(path)
        self._limits = limits or OutboxLimits()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-sqlite")
        # Records are turned into JSON on a second thread, so a large put does not hold the SQLite
        # thread (and the uplink's begin/end queued behind it) while it encodes.
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-encode")
        self._conn: sqlite3.Connection | None = None
        self._signal = ReadySignal()
        self._open_batch: Batch | None = None
        self._open_sizes: dict[int, tuple[int, int]] = {}
        self._closed = False
        # Counters mirrored from the file; only the worker thread writes them.
        self._depth = [0, 0]  # per kind
        self._bytes = [0, 0]
        self._dropped = 0
        self._rejected = 0
        self._damaged = 0
        self._stats = OutboxStats(0, 0, 0, 0)
        # The oldest records put since the start (up to _RECENT_MAX), by id; worker thread only.
        self._recent: dict[int, Reading | AlarmEvent] | None = {}

    @classmethod
    async def create(cls, path: Path | str, limits: OutboxLimits | None = None) -> SqliteOutbox:
        """Open (creating if needed) the outbox file at `path`."""
        outbox = cls(path, limits)
        await outbox.open()
        return outbox

    async def _run(self, fn: Callable[[], _T]) -> _T:
        if self._closed:
            raise OutboxError("outbox is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @property
    def damaged(self) -> int:
        """Stored records that could not be decoded and were moved to `damaged_records`."""
        return self._damaged

    # --- worker-thread side ------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError("outbox is not open")
        return self._conn

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        # A queue touches only the head and the tail of its table: a small page cache is enough.
        conn.execute("PRAGMA cache_size=-512")
        conn.executescript(_SCHEMA)
        self._conn = conn
        for kind, count, size in conn.execute(
            "SELECT kind, count(*), coalesce(sum(size), 0) FROM records GROUP BY kind"
        ):
            self._depth[kind] = count
            self._bytes[kind] = size
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        self._dropped = counters.get("dropped_telemetry", 0)
        self._rejected = counters.get("rejected", 0)
        self._damaged = conn.execute("SELECT count(*) FROM damaged_records").fetchone()[0]
        rows = conn.execute(
            "SELECT batch FROM records WHERE batch IS NOT NULL GROUP BY batch ORDER BY min(id)"
        ).fetchall()
        if rows:
            with self._transaction(conn):
                # Only one batch is ever open; release any other (cannot happen, but stay safe).
                for (other,) in rows[1:]:
                    conn.execute("UPDATE records SET batch = NULL WHERE batch = ?", (other,))
                self._load_batch(conn, uuid.UUID(rows[0][0]))
        self._publish_stats()

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _publish_stats(self) -> None:
        self._stats = OutboxStats(
            depth=self._depth[_ALARM] + self._depth[_READING],
            alarm_depth=self._depth[_ALARM],
            dropped_telemetry=self._dropped,
            bytes=self._bytes[_ALARM] + self._bytes[_READING],
            rejected=self._rejected,
            in_flight=len(self._open_sizes),
        )

    def _over(self, extra_count: int = 0, extra_bytes: int = 0) -> bool:
        max_records, max_bytes = self._limits.max_records, self._limits.max_bytes
        return (max_records is not None and self._depth[_READING] - extra_count > max_records) or (
            max_bytes is not None and self._bytes[_READING] - extra_bytes > max_bytes
        )

    @staticmethod
    def _encode(
        readings: Sequence[Reading], events: Sequence[AlarmEvent]
    ) -> list[tuple[int, str, int]]:
        rows: list[tuple[int, str, int]] = []
        for event in events:
            text = encode_event(event)
            rows.append((_ALARM, text, utf8_size(text)))
        for reading in readings:
            text = encode_reading(reading)
            rows.append((_READING, text, utf8_size(text)))
        return rows

    def _put_sync(
        self,
        readings: Sequence[Reading],
        events: Sequence[AlarmEvent],
        rows: list[tuple[int, str, int]],
    ) -> None:
        items: list[Reading | AlarmEvent] = [*events, *readings]
        conn = self._db()
        with self._transaction(conn):
            conn.executemany("INSERT INTO records (kind, body, size) VALUES (?, ?, ?)", rows)
            last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            for kind, _, size in rows:
                self._depth[kind] += 1
                self._bytes[kind] += size
            if self._over():
                self._drop_oldest_telemetry(conn)
        recent = self._recent
        if recent is not None and len(recent) + len(items) <= _RECENT_MAX:
            # AUTOINCREMENT ids of one transaction with a single writer are consecutive.
            recent.update(zip(range(last - len(items) + 1, last + 1), items, strict=True))
        self._publish_stats()

    def _drop_oldest_telemetry(self, conn: sqlite3.Connection) -> None:
        count = size_total = 0
        last = None
        cursor = conn.execute(
            "SELECT id, size FROM records WHERE kind = 1 AND batch IS NULL ORDER BY id"
        )
        for rid, size in cursor:
            count += 1
            size_total += size
            last = rid
            if not self._over(count, size_total):
                break
        cursor.close()
        if last is None:
            return
        conn.execute("DELETE FROM records WHERE kind = 1 AND batch IS NULL AND id <= ?", (last,))
        # Dropping means a backlog the cache would not help with; stop caching until it drains.
        self._recent = None
        self._depth[_READING] -= count
        self._bytes[_READING] -= size_total
        self._dropped += count
        conn.execute(
            "INSERT INTO counters (name, value) VALUES ('dropped_telemetry', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (self._dropped,),
        )

    def _begin_sync(self, max_items: int, max_bytes: int | None) -> Batch | None:
        if self._open_batch is not None:
            return self._open_batch
        conn = self._db()
        with self._transaction(conn):
            batch = self._begin_in_transaction(conn, max_items, max_bytes)
        self._publish_stats()
        return batch

    def _begin_in_transaction(
        self, conn: sqlite3.Connection, max_items: int, max_bytes: int | None
    ) -> Batch | None:
        batch_id = uuid.uuid4()
        taken = size_total = 0
        for kind in (_ALARM, _READING):
            if taken >= max_items:
                break
            last = None
            for rid, size in conn.execute(
                "SELECT id, size FROM records WHERE kind = ? AND batch IS NULL ORDER BY id LIMIT ?",
                (kind, max_items - taken),
            ).fetchall():
                if max_bytes is not None and taken and size_total + size > max_bytes:
                    break
                taken += 1
                size_total += size
                last = rid
            if last is not None:
                conn.execute(
                    "UPDATE records SET batch = ? WHERE kind = ? AND batch IS NULL AND id <= ?",
                    (str(batch_id), kind, last),
                )
            if max_bytes is not None and size_total >= max_bytes:
                break
        if taken == 0:
            return None
        return self._load_batch(conn, batch_id)

    def _load_batch(self, conn: sqlite3.Connection, batch_id: uuid.UUID) -> Batch | None:
        records: list[OutboxRecord] = []
        sizes: dict[int, tuple[int, int]] = {}
        damaged: list[tuple[int, int, str, str]] = []
        recent = self._recent or {}
        for rid, kind, body, size in conn.execute(
            "SELECT id, kind, body, size FROM records WHERE batch = ? ORDER BY kind, id",
            (str(batch_id),),
        ).fetchall():
            item = recent.pop(rid, None)
            if item is None:
                try:
                    item = decode_record(_KINDS[kind], body)
                except (EnvelopeError, ValueError, KeyError) as err:
                    damaged.append((rid, kind, body, f"{type(err).__name__}: {err}"))
                    continue
            records.append(OutboxRecord(rid, _KINDS[kind], item))
            sizes[rid] = (kind, size)
        for rid, kind, body, reason in damaged:
            # A record that no longer decodes is kept aside, never retried forever, never lost.
            conn.execute(
                "INSERT OR REPLACE INTO damaged_records VALUES (?, ?, ?, ?)",
                (rid, kind, body, reason),
            )
            size = conn.execute("SELECT size FROM records WHERE id = ?", (rid,)).fetchone()[0]
            conn.execute("DELETE FROM records WHERE id = ?", (rid,))
            self._depth[kind] -= 1
            self._bytes[kind] -= size
            self._damaged += 1
        if not records:
            return None
        self._open_batch = Batch(batch_id, tuple(records))
        self._open_sizes = sizes
        return self._open_batch

    def _end_sync(self, batch: Batch, accepted: Sequence[int], rejected: Sequence[int]) -> None:
        if not self._check_end(batch, accepted, rejected):
            return
        conn = self._db()
        with self._restored_on_failure(), self._transaction(conn):
            self._end_in_transaction(conn, batch, accepted, rejected)
        self._after_end(conn)

    def _end_and_begin_sync(
        self, batch: Batch, accepted: Sequence[int], max_items: int, max_bytes: int | None
    ) -> Batch | None:
        if not self._check_end(batch, accepted, ()):
            return self._open_batch
        conn = self._db()
        with self._restored_on_failure(), self._transaction(conn):
            self._end_in_transaction(conn, batch, accepted, ())
            following = self._begin_in_transaction(conn, max_items, max_bytes)
        self._after_end(conn)
        return following

    @contextlib.contextmanager
    def _restored_on_failure(self) -> Iterator[None]:
        """Put the in-memory mirror back if the transaction it follows is rolled back."""
        saved = (
            list(self._depth),
            list(self._bytes),
            self._rejected,
            self._damaged,
            self._open_batch,
            self._open_sizes,
        )
        try:
            yield
        except BaseException:
            depth, size, self._rejected, self._damaged, self._open_batch, self._open_sizes = saved
            self._depth[:], self._bytes[:] = depth, size
            raise

    def _check_end(self, batch: Batch, accepted: Sequence[int], rejected: Sequence[int]) -> bool:
        """Check an `end` call; return False when there is nothing to do (the batch stays open)."""
        if self._open_batch is None or batch.batch_id != self._open_batch.batch_id:
            raise OutboxError(f"batch {batch.batch_id} is not the open batch")
        done = {*accepted, *rejected}
        unknown = done - self._open_sizes.keys()
        if unknown:
            raise OutboxError(f"record ids not in batch {batch.batch_id}: {sorted(unknown)}")
        return bool(done)

    def _end_in_transaction(
        self,
        conn: sqlite3.Connection,
        batch: Batch,
        accepted: Sequence[int],
        rejected: Sequence[int],
    ) -> None:
        done = {*accepted, *rejected}
        rejected_only = set(rejected) - set(accepted)
        batch_key = str(batch.batch_id)
        if len(done) == len(self._open_sizes):
            conn.execute("DELETE FROM records WHERE batch = ?", (batch_key,))
        else:
            conn.executemany("DELETE FROM records WHERE id = ?", [(rid,) for rid in done])
            conn.execute("UPDATE records SET batch = NULL WHERE batch = ?", (batch_key,))
        if rejected_only:
            conn.execute(
                "INSERT INTO counters (name, value) VALUES ('rejected', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (self._rejected + len(rejected_only),),
            )
        # Memory follows the file at once; `_restored_on_failure` undoes this on a rollback.
        for rid in done:
            kind, size = self._open_sizes[rid]
            self._depth[kind] -= 1
            self._bytes[kind] -= size
        self._rejected += len(rejected_only)
        self._open_batch = None
        self._open_sizes = {}
        if self._recent is None and self._depth[_ALARM] + self._depth[_READING] == 0:
            self._recent = {}

    def _after_end(self, conn: sqlite3.Connection) -> None:
        if self._over():
            with self._transaction(conn):
                self._drop_oldest_telemetry(conn)
        self._publish_stats()

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- event-loop side ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, create the schema, and restore counters and the open batch."""
        await self._run(self._open_sync)

    async def put(
        self, readings: Sequence[Reading] = (), events: Sequence[AlarmEvent] = ()
    ) -> None:
        """Queue readings and alarm events in one durable transaction."""
        if not readings and not events:
            return
        readings, events = tuple(readings), tuple(events)
        if self._closed:
            raise OutboxError("outbox is closed")
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._encoder, self._encode, readings, events)
        await self._run(lambda: self._put_sync(readings, events, rows))
        self._signal.notify()

    async def begin(self, max_items: int, max_bytes: int | None = None) -> Batch | None:
        """Return the open batch, or open a new one from the oldest alarms, then telemetry."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        return await self._run(lambda: self._begin_sync(max_items, max_bytes))

    async def end(
        self, batch: Batch, accepted: Sequence[int], rejected: Sequence[int] = ()
    ) -> None:
        """Delete accepted and rejected records; with neither, keep the batch open for a retry."""
        accepted, rejected = tuple(accepted), tuple(rejected)
        await self._run(lambda: self._end_sync(batch, accepted, rejected))

    async def end_and_begin(
        self, batch: Batch, accepted: Sequence[int], max_items: int, max_bytes: int | None = None
    ) -> Batch | None:
        """Commit `batch` with `accepted` and open the next batch, in one durable transaction."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        accepted = tuple(accepted)
        return await self._run(
            lambda: self._end_and_begin_sync(batch, accepted, max_items, max_bytes)
        )

    async def stats(self) -> OutboxStats:
        """Return depths (including the open batch), drops and bytes."""
        if self._closed:
            raise OutboxError("outbox is closed")
        return self._stats

    async def wait_ready(self, min_items: int, timeout: float | None) -> OutboxStats:  # noqa: ASYNC109 - the wait is the point
        """Wait until `min_items` records or any alarm are queued, or `timeout` s pass."""
        return await self._signal.wait(self.stats, min_items, timeout)

    async def close(self) -> None:
        """Close the database and stop the worker thread (idempotent)."""
        if self._closed:
            return
        await self._run(self._close_sync)
        self._closed = True
        self._executor.shutdown(wait=True)
        self._encoder.shutdown(wait=True)
