"""The `cloud-ingest users ...` command: add a user (or rotate their token), print the token once.

Runs on the settings' database (migrated first where the server would migrate it at start: the
embedded SQLite default) and raises `CommandError` with a one-line reason and an exit status for
anything it refuses.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.service import UserConflictError, UserError, add_user
from cloud_ingest.gateways.cli import EXIT_BAD_INPUT, EXIT_REFUSED, CommandError
from cloud_ingest.infra.config import Settings


def add(
    settings: Settings,
    name: str,
    *,
    role: str | None,
    company: str | None,
    area: str | None,
    rotate: bool,
) -> None:
    """Add a user (or rotate their token) and print the token once."""
    from cloud_ingest import migrations  # noqa: PLC0415 - Alembic only where it is needed
    from cloud_ingest.infra.db import create_engine  # noqa: PLC0415

    async def run() -> str:
        engine: AsyncEngine = create_engine(settings.database_url)
        try:
            if settings.runs_migrations:
                await migrations.upgrade(engine)
            return await add_user(
                engine, name, role=role, company=company, area=area, rotate=rotate
            )
        finally:
            await engine.dispose()

    try:
        token = asyncio.run(run())
    except UserConflictError as err:
        raise CommandError(str(err), EXIT_REFUSED) from None
    except UserError as err:
        raise CommandError(str(err), EXIT_BAD_INPUT) from None
    done = "new token issued" if rotate else "added"
    print(f"user {name}: {done}")
    print(f"api token: {token}")
    print(
        "The token is shown only now; the database keeps its hash. Send it as the header "
        "'Authorization: Bearer <token>'."
    )
