"""The `cloud-ingest users ...` commands: add a user (or a new token), set a console password.

`add` prints the new token once; `passwd` sets the password a person signs in to the console with.

Runs on the settings' database (migrated first where the server would migrate it at start: the
embedded SQLite default) and raises `CommandError` with a one-line reason and an exit status for
anything it refuses.
"""

from __future__ import annotations

import asyncio
import getpass
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.passwords import PasswordError, check_password
from cloud_ingest.auth.service import UserConflictError, UserError, add_user
from cloud_ingest.auth.sessions import set_password
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


def _read_password() -> str:
    """The new password: asked twice on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("new console password: ")
        if getpass.getpass("again: ") != first:
            raise CommandError("the two passwords differ; nothing changed", EXIT_BAD_INPUT)
        return first
    return sys.stdin.readline().removesuffix("\n").removesuffix("\r")


def passwd(settings: Settings, name: str) -> None:
    """Set the console password of user `name` (read by `_read_password`)."""
    from cloud_ingest import migrations  # noqa: PLC0415 - Alembic only where it is needed
    from cloud_ingest.infra.db import create_engine  # noqa: PLC0415

    try:
        password = check_password(_read_password())
    except PasswordError as err:
        raise CommandError(str(err), EXIT_BAD_INPUT) from None

    async def run() -> None:
        engine: AsyncEngine = create_engine(settings.database_url)
        try:
            if settings.runs_migrations:
                await migrations.upgrade(engine)
            await set_password(engine, name, password)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except UserConflictError as err:
        raise CommandError(str(err), EXIT_REFUSED) from None
    print(f"user {name}: console password set")
