"""The `users` rows: add a user (or rotate their token) and find the user a bearer token names.

A token is made here and returned once; only its SHA-256 is stored (`token_hash`), so a token is
looked up by its hash and then compared in constant time. Gateway tokens live in `gateways` and
are never found here.

**The token cache.** Every API request names its user by a token, so `user_for_token` keeps the
user it found for a token for `TOKEN_CACHE_TTL_S` (2 s) per engine and reads `users` again after
that. A token rotated or a user changed by this process (`add_user`) takes effect at once (the
cache is emptied); by another process (another server, the `cloud-ingest users` command, SQL by
hand) within `TOKEN_CACHE_TTL_S`: a revoked token keeps working for at most that long. Unknown
tokens are never cached (each costs a read, as without the cache), and the cache holds at most
`TOKEN_CACHE_MAX` tokens per engine.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.auth.models import AREA_OFFICER_ROLES, Role, User
from cloud_ingest.gateways.ids import EDGE_IDENTIFIER, check_company
from cloud_ingest.gateways.secrets import new_secret, token_hash, token_matches
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import users
from core.site import SitePath

NAME_MAX_LENGTH: Final = 128
TOKEN_MAX_LENGTH: Final = 512
"""A longer bearer token is refused before it is hashed."""
TOKEN_CACHE_TTL_S: Final = 2.0
"""Seconds a token's user is reused without reading `users` (the most a revocation made by
another process waits to take effect)."""
TOKEN_CACHE_MAX: Final = 4_096
"""Tokens cached per engine at most (when full, expired entries go, else all)."""


class TokenCache:
    """Users found by token hash, per engine, for `ttl` seconds of `clock` (see the module text)."""

    def __init__(
        self, ttl: float = TOKEN_CACHE_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Keep each user `ttl` seconds; `clock` is monotonic seconds."""
        self.ttl = ttl
        self.clock = clock
        self._engines: weakref.WeakKeyDictionary[AsyncEngine, dict[str, tuple[float, User]]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, engine: AsyncEngine, digest: str) -> User | None:
        """The user cached for the token hash `digest`, if still fresh."""
        entry = self._engines.get(engine, {}).get(digest)
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]

    def put(self, engine: AsyncEngine, digest: str, user: User) -> None:
        """Remember `user` for `digest` for `ttl` seconds."""
        if self.ttl <= 0:
            return
        entries = self._engines.setdefault(engine, {})
        now = self.clock()
        if len(entries) >= TOKEN_CACHE_MAX:
            for key in [k for k, (until, _) in entries.items() if until <= now]:
                del entries[key]
            if len(entries) >= TOKEN_CACHE_MAX:
                entries.clear()
        entries[digest] = (now + self.ttl, user)

    def clear(self) -> None:
        """Forget every cached user (a token or a user changed)."""
        self._engines.clear()


token_cache: Final = TokenCache()
"""The process's token cache (`user_for_token`)."""


class UserError(ValueError):
    """A user cannot be added or changed as asked; the message says why in one line."""


class UserConflictError(UserError):
    """The request is valid but does not fit the stored users (a duplicate, an unknown name)."""


def check_name(value: str) -> str:
    """Return `value` if it may be a user name (a letter or digit, then letters, digits, `_.:-`)."""
    if not value or len(value) > NAME_MAX_LENGTH:
        raise UserError(f"user name must have 1 to {NAME_MAX_LENGTH} characters: {value!r}")
    if EDGE_IDENTIFIER.fullmatch(value) is None:
        raise UserError(
            f"invalid user name {value!r}: a letter or digit, then letters, digits, _ . : -"
        )
    return value


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise UserError(f"unknown role {value!r}; one of {allowed}") from None


def _checked_fields(
    name: str, *, role: str | None, company: str | None, area: str | None, rotate: bool
) -> dict[str, object]:
    """The columns to write for these options; `UserError` for a bad or missing one."""
    check_name(name)
    values: dict[str, object] = {}
    if role is not None:
        values["role"] = _role(role)
    try:
        if company is not None:
            values["company"] = check_company(company)
        if area is not None:
            values["area"] = str(SitePath.parse(area))
    except ValueError as err:
        raise UserError(str(err)) from None
    if not rotate:
        if role is None:
            raise UserError("--role is required to add a user")
        check_scope(_role(role), str(values.get("company", "")), str(values.get("area", "")))
    return values


def check_scope(role: Role | str, company: str, area: str) -> None:
    """`UserError` unless a user of `role`, `company` and `area` has a scope.

    A user other than an admin needs a company, except an area officer: an operator or a
    supervisor without a company, with an area (a grid member, a street or community officer).
    """
    if role == Role.ADMIN or company:
        return
    officers = " or ".join(sorted(r.value for r in AREA_OFFICER_ROLES))
    if role not in AREA_OFFICER_ROLES:
        raise UserError(
            f"a {role} needs --company; only an {officers} may be an area officer without one"
        )
    if not area:
        raise UserError(
            "--company is required to add a user (except an admin, or an area officer: "
            f"an {officers} with --area)"
        )


async def add_user(
    engine: AsyncEngine,
    name: str,
    *,
    role: str | None,
    company: str | None,
    area: str | None = None,
    rotate: bool = False,
    now: datetime | None = None,
) -> str:
    """Create a user (or, with `rotate`, give an existing one a new token); return the token.

    Without `rotate`, `role` is required, and `company` too unless the role is admin or the user
    is an area officer (an operator or supervisor with an `area` and no company: they see every
    company's rows within the area). With `rotate`, the user must exist; `role`, `company` and
    `area` change only when given, and the result must still have a scope (`check_scope`).

    Raises:
        UserConflictError: the name is taken (without `rotate`) or unknown (with `rotate`).
        UserError: a bad name, role, company or area, or a user without a scope.
    """
    values = _checked_fields(name, role=role, company=company, area=area, rotate=rotate)
    token = new_secret()
    values["token_hash"] = token_hash(token)
    try:
        async with engine.connect() as connection:
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                found = await conn.execute(select(users.c.id).where(users.c.name == name))
                exists = found.one_or_none() is not None
                if rotate and not exists:
                    raise UserConflictError(f"no user {name!r} to rotate; add it first")
                if exists and not rotate:
                    raise UserConflictError(
                        f"user {name!r} already exists; use --rotate to issue a new token"
                    )
                if exists:
                    await _check_rotated(conn, name, values)
                    await conn.execute(update(users).where(users.c.name == name).values(**values))
                else:
                    created = now or datetime.now(UTC)
                    await conn.execute(
                        insert(users).values(name=name, created_at=created, **values)
                    )
    except IntegrityError:
        raise UserConflictError(
            f"user {name!r} already exists; use --rotate to issue a new token"
        ) from None
    finally:
        token_cache.clear()
    return token


async def _check_rotated(conn: AsyncConnection, name: str, values: dict[str, object]) -> None:
    """`UserError` if changing the stored user `name` by `values` would leave them no scope."""
    query = select(users.c.role, users.c.company, users.c.area).where(users.c.name == name)
    stored = (await conn.execute(query)).one()
    given = values.get("role")
    role = given if isinstance(given, Role) else str(stored.role)
    company = str(values.get("company", stored.company))
    check_scope(role, company, str(values.get("area", stored.area)))


async def user_for_token(engine: AsyncEngine, token: str) -> User | None:
    """The user whose token `token` is, or `None` (unknown, or not a user's token).

    A user found is cached for `TOKEN_CACHE_TTL_S` (see the module text).
    """
    if not token or len(token) > TOKEN_MAX_LENGTH:
        return None
    digest = token_hash(token)
    cached = token_cache.get(engine, digest)
    if cached is not None:
        return cached
    query = select(users).where(users.c.token_hash == digest)
    async with engine.connect() as conn:
        row = (await conn.execute(query)).one_or_none()
    if row is None or not token_matches(token, row.token_hash):
        return None
    try:
        role = Role(row.role)
    except ValueError:
        return None
    user = User(name=row.name, role=role, company=row.company, area=row.area)
    token_cache.put(engine, digest, user)
    return user
