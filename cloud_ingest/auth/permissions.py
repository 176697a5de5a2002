"""The one permission dependency of the API: `require(*roles)` in a route decorator.

    @router.get("/things", dependencies=[require(Role.OPERATOR, Role.ADMIN)])
    async def things(user: CurrentUser) -> ...

`require` reads `Authorization: Bearer <token>`, finds the user by the token's hash and admits
the request if the user's role is one of `roles`. A missing, malformed or unknown token (a
gateway's token included: it is not a user's) is `401` with `WWW-Authenticate: Bearer`; a
known user whose role is not admitted is `403`. The handler takes the same user as `CurrentUser`
(resolved once per request) and scopes its rows with `cloud_ingest.auth.scope`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.service import user_for_token

_bearer = HTTPBearer(
    auto_error=False,
    description="A user's API token from `cloud-ingest users add` (not a gateway's token).",
)


def unauthorized(detail: str, error: str | None = None) -> HTTPException:
    """A `401` that asks for a bearer token (`error`: why the one given was refused)."""
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def database(request: Request) -> AsyncEngine:
    """The application's database engine (set by the lifespan)."""
    engine: AsyncEngine | None = request.app.state.engine
    if engine is None:
        raise HTTPException(503, "the database is not open")
    return engine


async def authenticated_user(
    engine: Annotated[AsyncEngine, Depends(database)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user named by the request's bearer token; `401` without a valid user token."""
    if credentials is None:
        raise unauthorized("a bearer token is required: 'Authorization: Bearer <token>'")
    user = await user_for_token(engine, credentials.credentials)
    if user is None:
        raise unauthorized("the bearer token is not a valid user token", "invalid_token")
    return user


CurrentUser = Annotated[User, Depends(authenticated_user)]
"""The authenticated user, as a handler parameter (after `require` admitted them)."""


def require(*roles: Role) -> Any:  # noqa: ANN401 - FastAPI's `Depends` marker is typed `Any`
    """The dependency admitting users whose role is one of `roles` (for `dependencies=[...]`)."""
    if not roles:
        raise ValueError("require() needs at least one role")
    admitted = frozenset(roles)
    names = ", ".join(sorted(r.value for r in admitted))

    async def check(user: CurrentUser) -> None:
        if user.role not in admitted:
            raise HTTPException(403, f"role {user.role.value!r} may not do this; allowed: {names}")

    return Depends(check)
