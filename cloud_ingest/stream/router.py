"""`GET /api/v1/stream`: alarm and work-order changes as Server-Sent Events, resumable.

Each event is `event: <kind>` (`alarm`, `work_order`, `gateway`), `id: <n>` and one line of JSON
`data:` (`id`, `kind`, `key`, `company`, `location`, `at`, `data`). The stream opens with a
`retry: 1000` comment, so a browser's `EventSource` reconnects after a second, and sends a ping
comment every `stream_ping_s`. A client reconnecting with `Last-Event-ID` (the header
`EventSource` sends by itself, or `?last_event_id=`) first gets every event after that id it may
see, then the live ones: nothing is lost across a network drop or a server restart, as long as
the id is within the retention (`stream_retention_s`; older events are pruned). Without it, the
stream starts with the next change. A client that falls `stream_queue_size` events behind is
cut off and resumes the same way. An event of a transaction that committed long after its id
was given up comes without an `id:` (see `cloud_ingest.stream.hub`).

Every role may connect; a user sees the events of their company and area (administrators all),
by the rules of `cloud_ingest.auth.scope`.

**Token in the URL.** `EventSource` cannot set headers, so this route also takes the user token
as `?access_token=` (only when no `Authorization` header is sent). A token in a URL ends up in
access logs (of this server and of any proxy in front of it) and in browser history; prefer
the header (a fetch-based event-source client can send it), keep such logs private, and give
the console its own user token of the least role needed so a leaked one is easy to revoke.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sse_starlette import EventSourceResponse, ServerSentEvent

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.stream.hub import Hub, StreamEvent

RECONNECT_MS: Final = 1_000
"""How soon a browser reconnects after the stream ends (the SSE `retry:` field)."""
_READY_WAIT_S: Final = 2.0


class QueryTokenRoute(APIRoute):
    """A route that also takes the bearer token from `?access_token=` (for `EventSource`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The usual handler, with `access_token` turned into an `Authorization` header first."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            token = request.query_params.get("access_token")
            headers: list[tuple[bytes, bytes]] = request.scope["headers"]
            if token and not any(name == b"authorization" for name, _ in headers):
                value = f"Bearer {token}".encode("latin-1", errors="replace")
                request.scope["headers"] = [*headers, (b"authorization", value)]
            return await handler(request)

        return route


router: Final = APIRouter(prefix="/stream", tags=["stream"], route_class=QueryTokenRoute)


def _resume_point(header: str | None, query: str | None) -> int | None:
    """The id to resume after: the `Last-Event-ID` header, else `?last_event_id=`."""
    raw = header if header not in {None, ""} else query
    if raw in {None, ""}:
        return None
    text = str(raw).strip()
    if not text.isdigit() or len(text) > 19:  # noqa: PLR2004 - a 64-bit id has at most 19 digits
        raise HTTPException(400, f"Last-Event-ID must be an event id (a whole number), not {raw!r}")
    return int(text)


def _sse(event: StreamEvent) -> bytes:
    return event.frame  # encoded once by the hub for every client


async def _events(
    hub: Hub, user: User, after: int | None
) -> AsyncIterator[ServerSentEvent | bytes]:
    sub = hub.subscribe(user, after)
    try:
        yield ServerSentEvent(comment="connected", retry=RECONNECT_MS)
        if after is not None and after < sub.start:
            async for past in hub.backlog(user, after, sub.start):
                yield _sse(past)
        while True:
            event = await sub.next()
            if event is None:
                return
            yield _sse(event)
    finally:
        hub.unsubscribe(sub)


@router.get(
    "",
    dependencies=[require(*Role)],
    summary="Live alarm and work-order changes (Server-Sent Events), resumable with Last-Event-ID",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "An event stream"},
        400: {"description": "`Last-Event-ID` is not an event id"},
        503: {"description": "The live stream is not running yet"},
    },
)
async def stream(
    request: Request,
    user: CurrentUser,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="resume after this event id"),
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            max_length=32,
            description="as the header, for clients that cannot set it",
        ),
    ] = None,
    access_token: Annotated[  # noqa: ARG001 - read by `QueryTokenRoute` before the handler
        str | None,
        Query(description="the user token, for `EventSource` (see the risk in the docs)"),
    ] = None,
) -> EventSourceResponse:
    """Open the stream for `user`; see the module docstring."""
    after = _resume_point(last_event_id, last_event_id_query)
    hub: Hub | None = getattr(request.app.state, "stream_hub", None)
    if hub is None:
        raise HTTPException(503, "the live stream is not running")
    if not hub.ready.is_set():
        try:
            async with asyncio.timeout(_READY_WAIT_S):
                await hub.ready.wait()
        except TimeoutError:
            raise HTTPException(503, "the live stream is starting; retry shortly") from None
    settings = request.app.state.settings
    return EventSourceResponse(
        _events(hub, user, after),
        ping=settings.stream_ping_s,
        send_timeout=settings.stream_send_timeout_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
