"""The Alembic migrations: upgrade an empty database to the schema, and back down, on both databases."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from cloud_ingest import migrations
from cloud_ingest.infra.db import create_engine
from cloud_ingest.infra.schema import metadata

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/var/steward.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_upgrade_creates_the_schema_and_downgrade_removes_it(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrations.upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == {*metadata.tables, "alembic_version"}
            assert await conn.run_sync(_differences) == []

        await migrations.downgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == {"alembic_version"}

        await migrations.upgrade(engine)  # and up again
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await engine.dispose()


def test_one_linear_history() -> None:
    script = ScriptDirectory.from_config(migrations.config())
    assert len(script.get_heads()) == 1
    assert [rev.revision for rev in script.walk_revisions()][-1] == "0001"


def test_migrations_ship_with_the_package() -> None:
    files = resources.files("cloud_ingest.migrations")
    assert files.joinpath("env.py").is_file()
    assert files.joinpath("script.py.mako").is_file()
    assert files.joinpath("versions", "__init__.py").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.mako" in data["package-data"]["*"]
