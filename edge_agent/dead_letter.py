"""Dead letters: frames no codec could decode, kept with raw hex and reason for a week (SQLite).

Also `FailureLog`, which logs a codec's unforeseen failure (a bug, reason `codec_error`) with its
traceback once per codec and exception type, so that a stream of bad frames does not flood the log.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    source_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    codec_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw_hex TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received_at ON dead_letters (received_at);
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One undecodable frame."""

    received_at: datetime
    source_id: str
    device_id: str
    codec_id: str
    reason: str
    detail: str
    raw_hex: str


class DeadLetterStore:
    """An SQLite table of undecodable frames with a time-to-live.

    Writes are small batched transactions; the store never raises on a full disk, it counts the
    failure instead (`write_failures`), because losing a dead letter must not stop the pipeline.
    """

    def __init__(self, path: Path | str, ttl: timedelta = timedelta(days=7)) -> None:
        """Open (or create) the table at `path` (`":memory:"` for tests)."""
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.ttl = ttl
        self.write_failures = 0

    def add_many(self, letters: Sequence[DeadLetter]) -> None:
        """Store letters in one transaction."""
        if not letters:
            return
        rows = [
            (
                d.received_at.isoformat(),
                d.source_id,
                d.device_id,
                d.codec_id,
                d.reason,
                d.detail[:500],
                d.raw_hex,
            )
            for d in letters
        ]
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO dead_letters (received_at, source_id, device_id, codec_id, reason,"
                    " detail, raw_hex) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.Error:
            self.write_failures += len(rows)

    def expire(self, now: datetime) -> int:
        """Delete letters older than the TTL; return how many went."""
        cutoff = (now - self.ttl).isoformat()
        with self._transaction():
            cursor = self._db.execute("DELETE FROM dead_letters WHERE received_at < ?", (cutoff,))
        return cursor.rowcount

    def recent(self, limit: int = 100) -> list[DeadLetter]:
        """Return the newest letters first."""
        rows = self._db.execute(
            "SELECT received_at, source_id, device_id, codec_id, reason, detail, raw_hex"
            " FROM dead_letters ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            DeadLetter(datetime.fromisoformat(r[0]), r[1], r[2], r[3], r[4], r[5], r[6])
            for r in rows
        ]

    def count(self) -> int:
        """Return how many letters are stored."""
        row = self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


class FailureLog:
    """Logs unforeseen exceptions with their traceback, once per (codec id, exception type).

    Later ones of the same kind go to debug level: they are still counted and dead-lettered by the
    caller, which is where an operator looks for them.
    """

    def __init__(self, logger: logging.Logger) -> None:
        """Log to `logger`."""
        self._logger = logger
        self._seen: set[tuple[str, str]] = set()

    def report(self, codec_id: str, where: str, err: BaseException) -> None:
        """Log `err` (raised by `codec_id` while `where`) with its traceback the first time."""
        cause = err.__cause__ if isinstance(err.__cause__, BaseException) else err
        kind = (codec_id, type(cause).__name__)
        if kind in self._seen:
            self._logger.debug("codec %s failed again %s: %r", codec_id, where, cause)
            return
        self._seen.add(kind)
        self._logger.error(
            "codec %s failed %s (logged once per exception type; counted and dead-lettered)",
            codec_id,
            where,
            exc_info=err,
        )
