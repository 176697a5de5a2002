"""Alembic migrations of the cloud ingest's database, configured from this package (no alembic.ini).

`upgrade(engine)` and `downgrade(engine, revision)` run inside the caller's event loop on an
`AsyncEngine`; `config(url)` gives an Alembic `Config` for the command-line style API (which then
runs its own event loop in `env.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPT_LOCATION: Final = Path(__file__).resolve().parent
HEAD: Final = "head"


def config(url: str | None = None) -> Config:
    """An Alembic configuration for this package's migrations (and `url`, if given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _run(connection: Connection, revision: str, *, up: bool) -> None:
    cfg = config()
    cfg.attributes["connection"] = connection
    if up:
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def upgrade(engine: AsyncEngine, revision: str = HEAD) -> None:
    """Migrate the database of `engine` up to `revision` (the newest by default)."""
    async with engine.begin() as connection:
        await connection.run_sync(_run, revision, up=True)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Migrate the database of `engine` down to `revision` (an empty database by default)."""
    async with engine.begin() as connection:
        await connection.run_sync(_run, revision, up=False)
