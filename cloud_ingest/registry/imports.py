"""Sites and devices from checked CSV rows into the database: one transaction, all or nothing.

Each import reads what it needs to check the rows (parents, gateways, owners) inside its write
transaction, raises `ImportRefusedError` with every problem if any row is bad, and otherwise inserts
the new rows and updates the changed ones with the dialect's `INSERT ... ON CONFLICT DO UPDATE`
(SQLite and PostgreSQL). An unchanged row is not written, so importing a file again changes
nothing. An imported device that never reported has its first and last seen at the import time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import devices, gateways, sites
from cloud_ingest.registry.checks import parent_of
from cloud_ingest.registry.csv_import import (
    DeviceRow,
    Parsed,
    RowError,
    SiteRow,
    check_owners,
    check_parents,
)

_IN_CHUNK: Final = 500
_DEVICE_EDITED: Final = ("kind", "location", "labels", "plan_x", "plan_y")


class ImportRefusedError(ValueError):
    """Some rows are bad; nothing was imported. `errors` holds each, by line."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        """Keep the errors in line order."""
        self.errors = sorted(errors)
        super().__init__(f"{len(self.errors)} bad row(s)")


@dataclass(slots=True)
class ImportResult:
    """What an import did: the keys (site paths, device ids) created and updated, in file order."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


def _insert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's own INSERT, which has ON CONFLICT."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r}")


async def _stored(
    conn: AsyncConnection, table: Table, key: str, keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The rows of `table` whose `key` column is one of `keys`, by key."""
    column = table.c[key]
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(keys))):
        result = await conn.execute(select(table).where(column.in_(chunk)))
        found.update({row[key]: dict(row) for row in result.mappings()})
    return found


async def _write(
    engine: AsyncEngine,
    work: Any,  # noqa: ANN401 - an async callable on the open connection
    *,
    dry_run: bool,
) -> ImportResult:
    """Run `work(conn)` in one write transaction; roll back on `dry_run` or any error."""
    async with engine.connect() as connection:
        conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
        async with conn.begin() as transaction:
            result: ImportResult = await work(conn)
            if dry_run:
                await transaction.rollback()
    return result


async def import_sites(
    engine: AsyncEngine,
    parsed: Parsed[SiteRow],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ImportResult:
    """Upsert the sites of `parsed`; `ImportRefusedError` (nothing written) if any row is bad."""
    at = now or datetime.now(UTC)

    async def work(conn: AsyncConnection) -> ImportResult:
        wanted = [r.path for r in parsed.rows]
        wanted += [p for r in parsed.rows if (p := parent_of(r.path)) is not None]
        stored = await _stored(conn, sites, "path", wanted)
        companies, errors = check_parents(parsed, {p: row["company"] for p, row in stored.items()})
        if parsed.errors or errors:
            raise ImportRefusedError([*parsed.errors, *errors])
        result = ImportResult()
        writes: list[dict[str, Any]] = []
        for row in parsed.rows:
            old = stored.get(row.path)
            plan = row.plan if row.plan_given or old is None else old["plan"]
            values: dict[str, Any] = {"level": row.level, "name": row.name}
            values["company"] = companies[row.path]
            values |= {"parent": parent_of(row.path), "plan": plan}
            if old is None:
                result.created.append(row.path)
            elif any(old[k] != v for k, v in values.items()):
                result.updated.append(row.path)
            else:
                result.unchanged += 1
                continue
            writes.append({"path": row.path, **values, "updated_at": at})
        if writes:
            stmt = _insert(conn, sites)
            changed = {c: stmt.excluded[c] for c in writes[0] if c != "path"}
            await conn.execute(
                stmt.on_conflict_do_update(index_elements=[sites.c.path], set_=changed), writes
            )
        return result

    return await _write(engine, work, dry_run=dry_run)


async def import_devices(
    engine: AsyncEngine,
    parsed: Parsed[DeviceRow],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ImportResult:
    """Upsert the devices of `parsed`; `ImportRefusedError` (nothing written) if any row is bad."""
    at = now or datetime.now(UTC)

    async def work(conn: AsyncConnection) -> ImportResult:
        stored = await _stored(conn, devices, "id", [r.id for r in parsed.rows])
        known = await _stored(conn, gateways, "id", [r.gateway for r in parsed.rows])
        owners = {d: row["gateway_id"] for d, row in stored.items()}
        errors = check_owners(parsed.rows, set(known), owners)
        if parsed.errors or errors:
            raise ImportRefusedError([*parsed.errors, *errors])
        result = ImportResult()
        writes: list[dict[str, Any]] = []
        for row in parsed.rows:
            old = stored.get(row.id)
            values: dict[str, Any] = {"kind": row.kind, "location": row.location}
            if row.labels is not None:
                values["labels"] = row.labels
            if row.plan_given:
                values["plan_x"], values["plan_y"] = row.plan or (None, None)
            if old is None:
                result.created.append(row.id)
            elif any(old[k] != v for k, v in values.items()):
                result.updated.append(row.id)
            else:
                result.unchanged += 1
                continue
            full: dict[str, Any] = {"labels": {}, "plan_x": None, "plan_y": None}
            full |= {k: old[k] for k in _DEVICE_EDITED} if old else {}
            full |= values
            writes.append(
                {"id": row.id, "gateway_id": row.gateway, **full, "first_seen": at, "last_seen": at}
            )
        if writes:
            stmt = _insert(conn, devices)
            changed = {c: stmt.excluded[c] for c in _DEVICE_EDITED}
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[devices.c.id],
                    set_=changed,
                    where=devices.c.gateway_id == stmt.excluded.gateway_id,
                ),
                writes,
            )
        return result

    return await _write(engine, work, dry_run=dry_run)
