"""The durable outbox: one SQLite file in WAL mode with `synchronous=FULL`.

Every call runs in one dedicated worker thread that owns the connection, so the event loop never waits
on a disk flush and no two transactions interleave. A `put` is one transaction (a batch insert with
`executemany`); when it returns, the records are on disk and survive `kill -9` and power loss.

Records are stored as their envelope JSON text, encoded once when put; a batch hands those texts to
the uplink, which joins them into the envelope. The open batch is one row of `open_batch`: its id and,
per kind, the highest record id it holds. A batch always holds the oldest records of each kind, so
those two ids describe it; after a restart `begin` returns it again with the same id and records.
Records found in the file at start-up are decoded and encoded again when they are first sent, so a
damaged one is set aside (`damaged_records`) instead of breaking an envelope.
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
from edge_agent.outbox.records import (
    decode_event,
    decode_reading,
    encode_event,
    encode_reading,
    utf8_size,
)

_T = TypeVar("_T")

_ALARM: Final = 0
_READING: Final = 1
_KINDS: Final = {_ALARM: RecordKind.ALARM, _READING: RecordKind.READING}

SCHEMA_VERSION: Final = 2
"""`PRAGMA user_version` of the file. Version 1 marked the open batch on every record."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,         -- assigned in insertion order by the single writer
    kind INTEGER NOT NULL,          -- 0 alarm event, 1 reading
    body TEXT NOT NULL,             -- envelope JSON text from core.envelope_json
    size INTEGER NOT NULL           -- UTF-8 bytes of body
);
CREATE INDEX IF NOT EXISTS records_alarms ON records (id) WHERE kind = 0;
CREATE TABLE IF NOT EXISTS open_batch (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    batch TEXT NOT NULL,            -- the batch id the cloud de-duplicates on
    last_alarm INTEGER NOT NULL,    -- the batch holds the alarms with id <= last_alarm (0: none)
    last_reading INTEGER NOT NULL   -- and the readings with id <= last_reading (0: none)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS saved_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS damaged_records (
    seq INTEGER PRIMARY KEY,
    record_id INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""

# The oldest queued records of one kind; `kind = 0` is literal so the partial index serves alarms.
_OLDEST: Final = {
    _ALARM: "SELECT id, size, body FROM records WHERE kind = 0 ORDER BY id LIMIT ?",
    _READING: "SELECT id, size, body FROM records WHERE kind = 1 ORDER BY id LIMIT ?",
}
_DELETE_UP_TO: Final = {
    _ALARM: "DELETE FROM records WHERE kind = 0 AND id <= ?",
    _READING: "DELETE FROM records WHERE kind = 1 AND id <= ?",
}


def _create_schema(conn: sqlite3.Connection) -> None:
    """Create every table and index that is missing (inside the caller's transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Rewrite a version 1 file (open batch as a `batch` column on records) to version 2."""
    conn.execute("ALTER TABLE records RENAME TO records_v1")
    conn.execute("DROP INDEX IF EXISTS records_queue")
    conn.execute("DROP INDEX IF EXISTS records_open")
    conn.execute("ALTER TABLE damaged_records RENAME TO damaged_records_v1")
    _create_schema(conn)
    conn.execute(
        "INSERT INTO records (id, kind, body, size) "
        "SELECT id, kind, body, size FROM records_v1 ORDER BY id"
    )
    open_rows = conn.execute(
        "SELECT batch, kind, max(id) FROM records_v1 WHERE batch IS NOT NULL "
        "GROUP BY batch, kind ORDER BY min(id)"
    ).fetchall()
    if open_rows:
        batch = open_rows[0][0]
        last = {kind: top for b, kind, top in open_rows if b == batch}
        conn.execute(
            "INSERT INTO open_batch VALUES (1, ?, ?, ?)",
            (batch, last.get(_ALARM, 0), last.get(_READING, 0)),
        )
    conn.execute(
        "INSERT INTO damaged_records (record_id, kind, body, reason) "
        "SELECT id, kind, body, reason FROM damaged_records_v1 ORDER BY id"
    )
    conn.execute("DROP TABLE records_v1")
    conn.execute("DROP TABLE damaged_records_v1")


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
        self._open_last = [0, 0]  # per kind: the highest id in the open batch (0: none)
        self._closed = False
        # Counters mirrored from the file; only the worker thread writes them.
        self._depth = [0, 0]  # per kind
        self._bytes = [0, 0]
        self._dropped = 0
        self._rejected = 0
        self._damaged = 0
        self._stats = OutboxStats(0, 0, 0, 0)
        self._next_id = 1
        self._checked_from = 1
        """Records with a lower id were in the file at start-up: they are checked when sent."""

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
        try:
            self._prepare_schema(conn)
        except BaseException:
            conn.close()
            raise
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
        self._next_id = self._checked_from = (
            conn.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0] + 1
        )
        row = conn.execute("SELECT batch, last_alarm, last_reading FROM open_batch").fetchone()
        if row is not None:
            with self._transaction(conn):
                self._load_batch(conn, uuid.UUID(row[0]), [row[1], row[2]])
        self._publish_stats()

    def _prepare_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"{self.path} has outbox schema version {version}; this Steward reads "
                f"up to {SCHEMA_VERSION} (a newer release wrote it)"
            )
        columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
        with self._transaction(conn):
            if version < SCHEMA_VERSION and "batch" in columns:
                _migrate_v1(conn)
            _create_schema(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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
    def _encode(readings: Sequence[Reading], events: Sequence[AlarmEvent]) -> list[str]:
        return [*map(encode_event, events), *map(encode_reading, readings)]

    def _put_sync(self, n_events: int, bodies: list[str], state: str | None) -> None:
        first = self._next_id
        rows = [
            (first + i, _ALARM if i < n_events else _READING, body, utf8_size(body))
            for i, body in enumerate(bodies)
        ]
        conn = self._db()
        with self._restored_on_failure(), self._transaction(conn):
            conn.executemany("INSERT INTO records (id, kind, body, size) VALUES (?, ?, ?, ?)", rows)
            if state is not None:
                conn.execute(
                    "INSERT INTO saved_state VALUES ('rules', ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (state,),
                )
            depth, size_of = self._depth, self._bytes
            for _, kind, _, size in rows:
                depth[kind] += 1
                size_of[kind] += size
            if self._over():
                self._drop_oldest_telemetry(conn)
        self._next_id = first + len(rows)
        self._publish_stats()

    def _drop_oldest_telemetry(self, conn: sqlite3.Connection) -> None:
        count = size_total = 0
        last = None
        after = self._open_last[_READING]  # the open batch is never dropped
        cursor = conn.execute(
            "SELECT id, size FROM records WHERE kind = 1 AND id > ? ORDER BY id", (after,)
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
        conn.execute("DELETE FROM records WHERE kind = 1 AND id > ? AND id <= ?", (after, last))
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
        taken = size_total = 0
        rows: list[tuple[int, int, int, str]] = []
        last = [0, 0]
        for kind in (_ALARM, _READING):
            if taken >= max_items or (max_bytes is not None and size_total >= max_bytes):
                break
            for rid, size, body in conn.execute(_OLDEST[kind], (max_items - taken,)):
                if max_bytes is not None and taken and size_total + size > max_bytes:
                    break
                taken += 1
                size_total += size
                rows.append((rid, kind, size, body))
                last[kind] = rid
        batch_id = uuid.uuid4()
        batch = self._hold(conn, batch_id, last, rows) if rows else None
        if batch is not None:
            conn.execute(
                "INSERT INTO open_batch VALUES (1, ?, ?, ?)",
                (str(batch_id), last[_ALARM], last[_READING]),
            )
        return batch

    def _load_batch(self, conn: sqlite3.Connection, batch_id: uuid.UUID, last: list[int]) -> None:
        """Hold the open batch found in the file at start-up (inside a transaction)."""
        rows: list[tuple[int, int, int, str]] = conn.execute(
            "SELECT id, kind, size, body FROM records "
            "WHERE (kind = 0 AND id <= ?) OR (kind = 1 AND id <= ?) ORDER BY kind, id",
            (last[_ALARM], last[_READING]),
        ).fetchall()
        if self._hold(conn, batch_id, last, rows) is None:
            conn.execute("DELETE FROM open_batch")

    def _hold(
        self,
        conn: sqlite3.Connection,
        batch_id: uuid.UUID,
        last: list[int],
        rows: list[tuple[int, int, int, str]],
    ) -> Batch | None:
        """Make `rows` (id, kind, size, body) the open batch; set damaged records aside."""
        records: list[OutboxRecord] = []
        sizes: dict[int, tuple[int, int]] = {}
        checked_from = self._checked_from
        for rid, kind, size, stored in rows:
            body = stored
            if rid < checked_from:
                # Written before this start (maybe by another release): check it, send it as now.
                try:
                    body = (
                        encode_event(decode_event(stored))
                        if kind == _ALARM
                        else encode_reading(decode_reading(stored))
                    )
                except (EnvelopeError, ValueError, KeyError, TypeError) as err:
                    self._set_aside(conn, (rid, kind, size, stored), f"{type(err).__name__}: {err}")
                    continue
            records.append(OutboxRecord(rid, _KINDS[kind], body))
            sizes[rid] = (kind, size)
        if not records:
            return None
        self._open_batch = Batch(batch_id, tuple(records))
        self._open_sizes = sizes
        self._open_last = last
        return self._open_batch

    def _set_aside(
        self, conn: sqlite3.Connection, row: tuple[int, int, int, str], reason: str
    ) -> None:
        rid, kind, size, body = row
        # A record that no longer decodes is kept aside, never retried forever, never lost.
        conn.execute(
            "INSERT INTO damaged_records (record_id, kind, body, reason) VALUES (?, ?, ?, ?)",
            (rid, kind, body, reason),
        )
        conn.execute("DELETE FROM records WHERE id = ?", (rid,))
        self._depth[kind] -= 1
        self._bytes[kind] -= size
        self._damaged += 1

    def _end_sync(self, batch: Batch, accepted: Sequence[int], rejected: Sequence[int]) -> None:
        if not self._check_end(batch, accepted, rejected):
            return
        conn = self._db()
        with self._restored_on_failure(), self._transaction(conn):
            self._end_in_transaction(conn, accepted, rejected)
        self._after_end(conn)

    def _end_and_begin_sync(
        self, batch: Batch, accepted: Sequence[int], max_items: int, max_bytes: int | None
    ) -> Batch | None:
        if not self._check_end(batch, accepted, ()):
            return self._open_batch
        conn = self._db()
        with self._restored_on_failure(), self._transaction(conn):
            self._end_in_transaction(conn, accepted, ())
            following = self._begin_in_transaction(conn, max_items, max_bytes)
        self._after_end(conn)
        return following

    @contextlib.contextmanager
    def _restored_on_failure(self) -> Iterator[None]:
        """Put the in-memory mirror back if the transaction it follows is rolled back."""
        saved = (
            list(self._depth),
            list(self._bytes),
            self._dropped,
            self._rejected,
            self._damaged,
            self._open_batch,
            self._open_sizes,
            self._open_last,
        )
        try:
            yield
        except BaseException:
            depth, size, self._dropped, self._rejected, self._damaged = saved[:5]
            self._open_batch, self._open_sizes, self._open_last = saved[5:]
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
        self, conn: sqlite3.Connection, accepted: Sequence[int], rejected: Sequence[int]
    ) -> None:
        done = {*accepted, *rejected}
        rejected_only = set(rejected) - set(accepted)
        if len(done) == len(self._open_sizes):
            for kind in (_ALARM, _READING):
                if self._open_last[kind]:
                    conn.execute(_DELETE_UP_TO[kind], (self._open_last[kind],))
        else:
            conn.executemany("DELETE FROM records WHERE id = ?", [(rid,) for rid in done])
        conn.execute("DELETE FROM open_batch")
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
        self._open_last = [0, 0]

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
        """Open the file, create or upgrade the schema, and restore counters and the open batch."""
        await self._run(self._open_sync)

    async def put(
        self,
        readings: Sequence[Reading] = (),
        events: Sequence[AlarmEvent] = (),
        *,
        state: str | None = None,
    ) -> None:
        """Queue readings and alarm events (and the state text) in one durable transaction."""
        if not readings and not events and state is None:
            return
        if self._closed:
            raise OutboxError("outbox is closed")
        bodies: list[str] = []
        if readings or events:
            loop = asyncio.get_running_loop()
            bodies = await loop.run_in_executor(self._encoder, self._encode, readings, events)
        n_events = len(events)
        await self._run(lambda: self._put_sync(n_events, bodies, state))
        if bodies:
            self._signal.notify(self._stats)

    async def saved_state(self) -> str | None:
        """The state text of the last `put` that carried one."""

        def read() -> str | None:
            row = (
                self._db().execute("SELECT value FROM saved_state WHERE name = 'rules'").fetchone()
            )
            return None if row is None else str(row[0])

        return await self._run(read)

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

    def set_limits(self, limits: OutboxLimits) -> None:
        """Bound the telemetry anew; the next write keeps to it."""
        self._limits = limits

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
