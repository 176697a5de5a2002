"""The async database engine and session factory, from one URL.

PostgreSQL (`postgresql+asyncpg://...`) in production; SQLite through aiosqlite
(`sqlite+aiosqlite:///var/steward.db`) as the embedded default. On SQLite every connection runs in
WAL mode with a busy timeout and foreign keys on, and transactions are begun explicitly by us (the
driver's own implicit `BEGIN` is turned off, so reads and writes of one transaction are isolated
together). A connection with the execution option `WRITE_TRANSACTION` set begins with
`BEGIN IMMEDIATE`, taking SQLite's write lock at once so that two writers queue on the busy
timeout instead of failing to upgrade a read lock.

Times are stored in UTC (`UtcDateTime`): `timestamptz` on PostgreSQL, and on SQLite a naive UTC
text that is read back as an aware UTC time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import DateTime, Dialect, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

DEFAULT_URL: Final = "sqlite+aiosqlite:///var/steward.db"
"""The embedded default: a SQLite file under `./var/`."""
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
"""How long a SQLite connection waits for another writer's lock before failing."""
WRITE_TRANSACTION: Final = "steward_write_transaction"
"""Execution option: on SQLite, begin the connection's transactions with `BEGIN IMMEDIATE`."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware time, stored in UTC on every dialect and read back as aware UTC.

    Refuses naive times on the way in, so a local time is never stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive UTC for SQLite, which has no time zone type)."""
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: times are stored in UTC")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        """Return an aware UTC time."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def is_sqlite(url: str | URL) -> bool:
    """Whether `url` names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str | URL = DEFAULT_URL, **kwargs: Any) -> AsyncEngine:  # noqa: ANN401
    """Create the async engine for `url` (SQLite: WAL, busy timeout, parent folder created).

    Extra keyword arguments go to `sqlalchemy.ext.asyncio.create_async_engine`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(parsed, **kwargs)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed, **kwargs)
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:  # noqa: ANN401
        # Turn off the driver's implicit BEGIN: `_on_begin` emits ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_TRANSACTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory bound to `engine` (objects stay readable after commit)."""
    return async_sessionmaker(engine, expire_on_commit=False)
