"""The `cloud-ingest sites import` and `cloud-ingest devices import` commands.

Each reads one CSV file (`cloud_ingest.registry.csv_import`), checks every row against the file
and the database, and imports all of them in one transaction or none: a bad file raises
`CommandError` whose message has one `FILE:LINE: reason` line per problem. On success it prints
one line per site or device created or updated and a summary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.gateways.cli import EXIT_BAD_INPUT, CommandError
from cloud_ingest.infra.config import Settings
from cloud_ingest.registry.csv_import import (
    DeviceRow,
    Parsed,
    SiteRow,
    decode,
    parse_devices,
    parse_sites,
)
from cloud_ingest.registry.imports import (
    ImportRefusedError,
    ImportResult,
    import_devices,
    import_sites,
)

T = TypeVar("T")
MAX_FILE_BYTES = 64 * 1024 * 1024


def _text(file: str) -> str:
    """The file's text; `CommandError` if it cannot be read or is not UTF-8."""
    try:
        with Path(file).open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise CommandError(f"cannot read {file}: {err.strerror or err}", EXIT_BAD_INPUT) from None
    if len(data) > MAX_FILE_BYTES:
        raise CommandError(f"{file}: larger than {MAX_FILE_BYTES} bytes", EXIT_BAD_INPUT)
    try:
        return decode(data)
    except ValueError as err:
        raise CommandError(f"{file}: {err}", EXIT_BAD_INPUT) from None


def _run(
    settings: Settings,
    file: str,
    what: str,
    parse: Callable[[str], Parsed[T]],
    load: Callable[[AsyncEngine, Parsed[T]], Awaitable[ImportResult]],
    *,
    dry_run: bool,
) -> None:
    from cloud_ingest import migrations  # noqa: PLC0415 - Alembic only where it is needed
    from cloud_ingest.infra.db import create_engine  # noqa: PLC0415

    parsed = parse(_text(file))

    async def run() -> ImportResult:
        engine = create_engine(settings.database_url)
        try:
            if settings.runs_migrations:
                await migrations.upgrade(engine)
            return await load(engine, parsed)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except ImportRefusedError as err:
        lines = [e.render(file) for e in err.errors]
        lines.append(f"nothing imported: {len(err.errors)} problem(s) in {file}")
        raise CommandError("\n".join(lines), EXIT_BAD_INPUT) from None
    for key in result.created:
        print(f"created {what} {key}")
    for key in result.updated:
        print(f"updated {what} {key}")
    done = "checked (--dry-run, nothing written)" if dry_run else "imported"
    print(
        f"{file}: {done}: {len(result.created)} created, {len(result.updated)} updated, "
        f"{result.unchanged} unchanged"
    )


def sites_import(settings: Settings, file: str, *, dry_run: bool = False) -> None:
    """Import the site tree of a CSV file (all rows or none)."""

    async def load(engine: AsyncEngine, parsed: Parsed[SiteRow]) -> ImportResult:
        return await import_sites(engine, parsed, dry_run=dry_run)

    _run(settings, file, "site", parse_sites, load, dry_run=dry_run)


def devices_import(settings: Settings, file: str, *, dry_run: bool = False) -> None:
    """Import the devices of a CSV file (all rows or none)."""

    async def load(engine: AsyncEngine, parsed: Parsed[DeviceRow]) -> ImportResult:
        return await import_devices(engine, parsed, dry_run=dry_run)

    _run(settings, file, "device", parse_devices, load, dry_run=dry_run)
