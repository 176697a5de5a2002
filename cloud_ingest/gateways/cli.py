"""The `cloud-ingest gateways ...` commands: add (or rotate), list, and the broker's files.

Each command runs on the settings' database (migrated first where the server would migrate it at
start: the embedded SQLite default), prints its result to stdout and raises `CommandError` with a
one-line reason and an exit status for anything it refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.gateways.ids import check_user_name
from cloud_ingest.gateways.mosquitto_files import (
    acl_text,
    password_text,
    write_private,
)
from cloud_ingest.gateways.secrets import mosquitto_hash, new_secret
from cloud_ingest.gateways.service import (
    GatewayConflictError,
    GatewayError,
    add_gateway,
    credentialed_ids,
    list_gateways,
    password_hashes,
)
from cloud_ingest.infra.config import Settings

T = TypeVar("T")
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


class CommandError(Exception):
    """A command refused or failed: `message` in one line, `code` the exit status."""

    def __init__(self, message: str, code: int) -> None:
        """Keep the reason and the exit status."""
        super().__init__(message)
        self.code = code


def _on_database(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    from cloud_ingest import migrations  # noqa: PLC0415 - Alembic only where it is needed
    from cloud_ingest.infra.db import create_engine  # noqa: PLC0415

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            if settings.runs_migrations:
                await migrations.upgrade(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def add(
    settings: Settings, gateway_id: str, *, company: str | None, site: str | None, rotate: bool
) -> None:
    """Add a gateway (or rotate its credentials) and print the credentials once."""

    async def work(engine: AsyncEngine) -> None:
        creds = await add_gateway(engine, gateway_id, company=company, site=site, rotate=rotate)
        done = "new credentials issued" if rotate else "added"
        print(f"gateway {creds.gateway_id}: {done}")
        print(f"mqtt username: {creds.mqtt_username}")
        print(f"mqtt password: {creds.mqtt_password}")
        print(f"http token:    {creds.http_token}")
        print(
            "These are shown only now; the database keeps their hashes. On the gateway, put the "
            "password alone in a file readable only by the agent and name it in the config "
            "(uplink: {password_file: mqtt.pw}; the user name defaults to the gateway id; HTTP "
            "intake: header 'Authorization: Bearer <token>'), then rewrite the broker's files "
            "(cloud-ingest gateways passwd FILE; cloud-ingest gateways acl FILE) and reload "
            "Mosquitto (SIGHUP)."
        )

    try:
        _on_database(settings, work)
    except GatewayConflictError as err:
        raise CommandError(str(err), EXIT_REFUSED) from None
    except GatewayError as err:
        raise CommandError(str(err), EXIT_BAD_INPUT) from None


def list_all(settings: Settings) -> None:
    """Print one line per gateway: id, company, status, last seen, credentials."""
    rows = _on_database(settings, list_gateways)
    table = [("ID", "COMPANY", "STATUS", "LAST SEEN", "CREDENTIALS")]
    table += [
        (
            row.gateway_id,
            row.company or "-",
            row.status,
            row.last_seen.isoformat(timespec="seconds") if row.last_seen else "never",
            "yes" if row.has_credentials else "no",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _ingest_password(path: str | None) -> tuple[str, bool]:
    """The ingest user's password from `path` (its first line), or a new one; and whether new."""
    if path is None:
        return new_secret(), True
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CommandError(
            f"cannot read --ingest-password-file {path}: {err}", EXIT_BAD_INPUT
        ) from None
    lines = text.splitlines()
    password = lines[0] if lines else ""
    if not password:
        raise CommandError(
            f"--ingest-password-file {path}: the first line is empty", EXIT_BAD_INPUT
        )
    return password, False


def passwd(
    settings: Settings, file: str, *, ingest_user: str | None, ingest_password_file: str | None
) -> None:
    """Write Mosquitto's password file: every gateway with credentials, and the ingest user."""
    if ingest_password_file is not None and ingest_user is None:
        raise CommandError("--ingest-password-file needs --ingest-user", EXIT_BAD_INPUT)
    user = _user(ingest_user)
    entries = _on_database(settings, password_hashes)
    generated = None
    if user is not None:
        if user in credentialed_ids(entries):
            raise CommandError(f"--ingest-user {user} is also a gateway id", EXIT_BAD_INPUT)
        password, new = _ingest_password(ingest_password_file)
        generated = password if new else None
        entries.append((user, mosquitto_hash(password)))
    _write(file, password_text(entries))
    extra = f" and ingest user {user}" if user else ""
    print(f"{file}: {len(entries) - bool(user)} gateways{extra}")
    if generated is not None:
        print(f"ingest user {user} password (shown only now): {generated}")


def acl(settings: Settings, file: str, *, ingest_user: str | None) -> None:
    """Write Mosquitto's ACL file: each gateway's own topics, the ingest user's reads."""
    user = _user(ingest_user)
    ids = credentialed_ids(_on_database(settings, password_hashes))
    try:
        text = acl_text(ids, user)
    except ValueError as err:
        raise CommandError(str(err), EXIT_BAD_INPUT) from None
    _write(file, text)
    extra = f" and ingest user {user}" if user else ""
    print(f"{file}: {len(ids)} gateways{extra}")


def _user(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return check_user_name(name)
    except ValueError as err:
        raise CommandError(f"--ingest-user: {err}", EXIT_BAD_INPUT) from None


def _write(file: str, text: str) -> None:
    try:
        write_private(Path(file), text)
    except OSError as err:
        raise CommandError(f"cannot write {file}: {err.strerror or err}", EXIT_REFUSED) from None
