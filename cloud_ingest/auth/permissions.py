"""The one permission dependency of the API: `require(*roles)` in a route decorator.

    @router.get("/things", dependencies=[require(Role.OPERATOR, Role.ADMIN)])
    async def things(user: CurrentUser) -> ...

`require` reads `Authorization: Bearer <token>`, finds the user by the token's hash and admits
the request if the user's role is one of `roles`. Without that header, a console session cookie
(`cloud_ingest.auth.sessions`) names the user instead, and a change made on the strength of the
cookie must carry the session's `X-CSRF-Token` (`403` otherwise). A missing, malformed or
unknown token (a gateway's token included: it is not a user's) is `401` with
`WWW-Authenticate: Bearer`; a known user whose role is not admitted is `403`. An area officer (a user without a company, see
`cloud_ingest.auth.models.User`) reads through any route admitting their role, and changes
something only where the route says `require(..., area_officers=True)` (`403` otherwise). The handler takes the same user as `CurrentUser`
(resolved once per request) and scopes its rows with `cloud_ingest.auth.scope`.

The dependency is a `RoleCheck` holding the admitted roles; `role_checks(route.dependant)` finds it
on a route, so a test can tell every route's roles and find a route without any.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import Depends, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.service import user_for_token
from cloud_ingest.auth.sessions import CSRF_HEADER, SESSION_COOKIE, csrf_matches, user_for_session

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
    request: Request,
    engine: Annotated[AsyncEngine, Depends(database)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user named by the request's bearer token (else its console session); `401` without."""
    if credentials is None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            user = await user_for_session(engine, session_id, now=datetime.now(UTC))
            if user is not None:
                if request.method not in SAFE_METHODS and not csrf_matches(
                    session_id, request.headers.get(CSRF_HEADER)
                ):
                    raise HTTPException(403, f"a console change needs its {CSRF_HEADER} header")
                return user
        raise unauthorized("a bearer token is required: 'Authorization: Bearer <token>'")
    user = await user_for_token(engine, credentials.credentials)
    if user is None:
        raise unauthorized("the bearer token is not a valid user token", "invalid_token")
    return user


CurrentUser = Annotated[User, Depends(authenticated_user)]
"""The authenticated user, as a handler parameter (after `require` admitted them)."""


SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that read; an area officer is refused any other unless the route admits them."""


class RoleCheck:
    """The dependency `require` puts on a route: the roles it admits, readable by tests and docs.

    Admits a user whose role is one of `roles` (`403` otherwise). An area officer (a user
    without a company) is admitted to read; a change (a method other than GET, HEAD, OPTIONS)
    needs `area_officers`.
    """

    __slots__ = ("area_officers", "roles")

    def __init__(self, roles: frozenset[Role], *, area_officers: bool) -> None:
        """Admit `roles`; `area_officers`: area officers may also change things here."""
        self.roles: Final = roles
        self.area_officers: Final = area_officers

    def __repr__(self) -> str:
        """`RoleCheck(admin, operator)`, as the route's dependency prints."""
        return f"RoleCheck({', '.join(sorted(self.roles))})"

    async def __call__(self, request: Request, user: CurrentUser) -> None:
        """`403` unless `user` is admitted to this request."""
        if user.role not in self.roles:
            names = ", ".join(sorted(r.value for r in self.roles))
            raise HTTPException(403, f"role {user.role.value!r} may not do this; allowed: {names}")
        if user.is_area_officer and not self.area_officers and request.method not in SAFE_METHODS:
            raise HTTPException(
                403, "an area officer (a user without a company) reads here but changes nothing"
            )


def require(*roles: Role, area_officers: bool = False) -> Any:  # noqa: ANN401 - `Depends` is `Any`
    """The dependency admitting users whose role is one of `roles` (for `dependencies=[...]`).

    `area_officers`: users without a company (of an admitted role) may also change things through
    this route; without it they may only read through it.
    """
    if not roles:
        raise ValueError("require() needs at least one role")
    return Depends(RoleCheck(frozenset(roles), area_officers=area_officers))


def role_checks(dependant: Dependant) -> list[RoleCheck]:
    """The `require` dependencies in `dependant` (a route's), nested ones included; none: unguarded."""
    found: list[RoleCheck] = []
    pending = [dependant]
    while pending:
        current = pending.pop()
        if isinstance(current.call, RoleCheck):
            found.append(current.call)
        pending.extend(current.dependencies)
    return found
