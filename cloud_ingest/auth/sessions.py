"""Console sign-in: name and password give a server-side session, named by a random cookie.

`open_session` checks the password (`cloud_ingest.auth.passwords`) and stores only the SHA-256
of a fresh random session id, with its user and expiry; the browser keeps the id in an HttpOnly,
`SameSite=Strict` cookie (`SESSION_COOKIE`). `user_for_session` finds the user again (an expired
or unknown id is `None`), `close_session` signs out. The permission dependency
(`cloud_ingest.auth.permissions`) takes such a session wherever it takes a bearer token, so the
console and the API admit the same roles through the same `require`.

A request that changes something on the strength of the cookie must also carry the session's
CSRF token in the `X-CSRF-Token` header (`csrf_token`, derived from the session id, which a page
of another site never learns); the `SameSite=Strict` cookie is the first guard, the header the
second.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.passwords import hash_password, verify_password
from cloud_ingest.auth.service import NAME_MAX_LENGTH, UserConflictError
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import console_sessions, users

SESSION_COOKIE: Final = "steward_session"
"""The cookie holding a console session id."""
CSRF_HEADER: Final = "X-CSRF-Token"
"""The header a cookie-authenticated change must carry (`csrf_token` of the session)."""
SESSION_ID_BYTES: Final = 32
SESSION_ID_MAX_LENGTH: Final = 128
"""A longer cookie value is refused before it is hashed."""
LANGUAGES: Final = ("zh", "en")
"""The console's languages; the first is the default."""


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def csrf_token(session_id: str) -> str:
    """The CSRF token of a session: derived from its id, so nothing more is stored."""
    return hashlib.sha256(b"steward-csrf\x00" + session_id.encode("utf-8")).hexdigest()


def csrf_matches(session_id: str, given: str | None) -> bool:
    """Whether `given` is the session's CSRF token (constant time)."""
    return given is not None and hmac.compare_digest(given, csrf_token(session_id))


def _user(row: object) -> User | None:
    try:
        role = Role(getattr(row, "role"))  # noqa: B009 - a result row
    except ValueError:
        return None
    return User(
        name=getattr(row, "name"),  # noqa: B009
        role=role,
        company=getattr(row, "company"),  # noqa: B009
        area=getattr(row, "area"),  # noqa: B009
    )


async def set_password(engine: AsyncEngine, name: str, password: str) -> None:
    """Give user `name` a console password (replacing any); `UserConflictError` if unknown.

    `PasswordError` for a password too short or too long (nothing is written then).
    """
    stored = hash_password(password)
    async with engine.connect() as connection:
        conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
        async with conn.begin():
            result = await conn.execute(
                update(users).where(users.c.name == name).values(password_hash=stored)
            )
            if result.rowcount != 1:
                raise UserConflictError(f"no user {name!r}; add it first")


async def open_session(
    engine: AsyncEngine, name: str, password: str, *, now: datetime, ttl: timedelta
) -> tuple[str, User, str | None] | None:
    """Sign `name` in: `(session id, user, chosen language)`, or `None` for a wrong name or password.

    The password is checked (and hashed) even for an unknown name, so both take the same time.
    Expired sessions of everyone are deleted on the way.
    """
    row = None
    if 0 < len(name) <= NAME_MAX_LENGTH:
        query = select(
            users.c.id,
            users.c.name,
            users.c.role,
            users.c.company,
            users.c.area,
            users.c.password_hash,
            users.c.language,
        ).where(users.c.name == name)
        async with engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
    if not verify_password(password, None if row is None else row.password_hash) or row is None:
        return None
    user = _user(row)
    if user is None:
        return None
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    async with engine.connect() as connection:
        conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
        async with conn.begin():
            await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
            await conn.execute(
                insert(console_sessions).values(
                    id_hash=_id_hash(session_id),
                    user_id=row.id,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
    return session_id, user, row.language


async def user_for_session(engine: AsyncEngine, session_id: str, *, now: datetime) -> User | None:
    """The user signed in as `session_id`, or `None` (unknown, expired, or not a session id)."""
    if not session_id or len(session_id) > SESSION_ID_MAX_LENGTH:
        return None
    s, u = console_sessions.c, users.c
    query = (
        select(u.name, u.role, u.company, u.area)
        .select_from(console_sessions.join(users, u.id == s.user_id))
        .where(s.id_hash == _id_hash(session_id), s.expires_at > now)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).one_or_none()
    return None if row is None else _user(row)


async def close_session(engine: AsyncEngine, session_id: str) -> None:
    """Sign out: forget `session_id` (nothing happens for an unknown one)."""
    if not session_id or len(session_id) > SESSION_ID_MAX_LENGTH:
        return
    async with engine.connect() as connection:
        conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
        async with conn.begin():
            await conn.execute(
                delete(console_sessions).where(console_sessions.c.id_hash == _id_hash(session_id))
            )


async def set_language(engine: AsyncEngine, name: str, language: str) -> None:
    """Remember the console language `name` chose (one of `LANGUAGES`)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; one of {', '.join(LANGUAGES)}")
    async with engine.connect() as connection:
        conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
        async with conn.begin():
            await conn.execute(update(users).where(users.c.name == name).values(language=language))
