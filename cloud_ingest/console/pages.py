"""The console's routes under `/console`: sign-in, the live-alarms page and its fragments.

Pages (`PageRoute`) answer a visitor without a session with a redirect to the sign-in page; the
fragments and actions the page calls answer `401` like the API. Both guard with the API's own
`require(...)`, which takes the session cookie where the API takes a bearer token, and a change
made with the cookie needs the page's CSRF header. The routes:

| route | who | what |
| --- | --- | --- |
| `GET /console/login`, `POST /console/login` | anyone | the sign-in form; a right name and password set the session cookie |
| `POST /console/logout` | signed in | end the session |
| `POST /console/language` | signed in | switch Chinese / English (cookie, and remembered for the user) |
| `GET /console` | every role | the user's home (`home_of`: a technician's tasks, a resident's requests, else the live alarms) |
| `GET /console/alarms` | every role | the live-alarms page |
| `GET /console/alarms/row?fingerprint=` | every role | one row as HTML (`204`: no longer active or not visible) |
| `POST /console/alarms/ack` | as `POST /api/v1/alarms/{fingerprint}/actions` | acknowledge the alarm with a comment; the new row |
| `GET /console/static/...` | anyone | the console's CSS, scripts and vendored packages |

Every answer is marked `no-store` (but static files) and carries a strict Content-Security-Policy:
scripts and styles only from this server.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.alarms import acks
from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.permissions import CurrentUser, database, require
from cloud_ingest.auth.sessions import (
    CSRF_HEADER,
    LANGUAGES,
    SESSION_COOKIE,
    close_session,
    csrf_token,
    open_session,
    set_language,
)
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.console.i18n import LANGUAGE_COOKIE, browser_texts, language_of, translator
from cloud_ingest.console.live import AlarmRow, live_rows, may_acknowledge
from cloud_ingest.console.nav import nav_for
from cloud_ingest.infra.config import Settings
from cloud_ingest.stream.hub import Hub

PREFIX: Final = "/console"
LOGIN_PATH: Final = f"{PREFIX}/login"
HOME_PATH: Final = f"{PREFIX}/alarms"
ROLE_HOMES: Final = {Role.TECHNICIAN: f"{PREFIX}/tasks", Role.RESIDENT: f"{PREFIX}/requests"}
"""Where a role lands after signing in without a page asked for (else `HOME_PATH`)."""
STATIC_DIR: Final = Path(__file__).with_name("static")
TEMPLATES_DIR: Final = Path(__file__).with_name("templates")
READERS: Final = tuple(Role)
"""Every role watches the live alarms of its scope."""
FORM_MAX_BYTES: Final = 16 * 1024
LANGUAGE_COOKIE_AGE_S: Final = 365 * 86_400
COMMENT_MAX: Final = acks.COMMENT_MAX
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; media-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_BROWSER_TEXTS: Final = ("age.", "alert.", "stream.", "sound.", "error.", "alarms.", "ack.")

_templates: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class PageRoute(APIRoute):
    """A page: a visitor without a valid session is sent to the sign-in page instead of a `401`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The usual handler; its `401` becomes a `303` to `/console/login?next=<this page>`."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as err:
                if err.status_code != HTTPStatus.UNAUTHORIZED:
                    raise
                target = quote(request.url.path, safe="/")
                return RedirectResponse(f"{LOGIN_PATH}?next={target}", HTTPStatus.SEE_OTHER)

        return route


router: Final = APIRouter(prefix=PREFIX, include_in_schema=False)
pages: Final = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PageRoute)

Engine = Annotated[AsyncEngine, Depends(database)]


# --- rendering ---------------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _language(request: Request) -> str:
    return language_of(request.cookies.get(LANGUAGE_COOKIE))


def _local_time(settings: Settings) -> Callable[[datetime], str]:
    zone = ZoneInfo(settings.work_order_timezone)

    def shown(at: datetime) -> str:
        return at.astimezone(zone).strftime("%m-%d %H:%M:%S")

    return shown


def page_context(request: Request, user: User | None, **values: object) -> dict[str, object]:
    """What every template gets: texts, language, user, CSRF token, navigation, local time."""
    language = _language(request)
    session_id = request.cookies.get(SESSION_COOKIE, "")
    return {
        "t": translator(language),
        "lang": language,
        "other_lang": next(code for code in LANGUAGES if code != language),
        "user": user,
        "csrf": csrf_token(session_id) if user is not None and session_id else "",
        "csrf_header": CSRF_HEADER,
        "local_time": _local_time(_settings(request)),
        "nav": nav_for(user),
        "may_acknowledge": (lambda row: may_acknowledge(user, row)) if user else None,
        **values,
    }


def _html(
    body: str, status: int = HTTPStatus.OK, headers: Mapping[str, str] | None = None
) -> Response:
    response = HTMLResponse(body, status_code=status)
    response.headers.update({**_HEADERS, "Cache-Control": "no-store", **(headers or {})})
    return response


def render(name: str, context: Mapping[str, object], status: int = HTTPStatus.OK) -> Response:
    """The template `name` rendered with `context`, as an HTML answer."""
    return _html(_templates.get_template(name).render(context), status)


def _text(message: str, status: int) -> Response:
    response = Response(message, status_code=status, media_type="text/plain; charset=utf-8")
    response.headers.update({**_HEADERS, "Cache-Control": "no-store"})
    return response


async def _form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form body (the first value of each); `413` if too large."""
    body = await request.body()
    if len(body) > FORM_MAX_BYTES:
        raise HTTPException(413, "the form is too large")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form is not URL-encoded UTF-8") from None
    return {name: values[0] for name, values in fields.items()}


def _safe_next(target: str | None) -> str:
    """A console page to go to after signing in (anything else: empty, the user's home page)."""
    if target and target.startswith(PREFIX + "/") and "//" not in target and "\\" not in target:
        return target
    return ""


def home_of(user: User) -> str:
    """The page `user` lands on: their role's own view, else the live alarms."""
    return ROLE_HOMES.get(user.role, HOME_PATH)


def _cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_settings(request).console_secure_cookies,
    )


# --- sign-in -----------------------------------------------------------------------------------


@router.get("/login", summary="The sign-in form", response_class=HTMLResponse)
async def login_form(
    request: Request,
    next_page: Annotated[str | None, Query(alias="next", max_length=512)] = None,
    lang: Annotated[str | None, Query(max_length=8)] = None,
) -> Response:
    """The sign-in page (`?lang=en` switches its language and remembers it in the cookie)."""
    chosen = lang if lang in LANGUAGES else None
    if chosen is not None:
        request.cookies[LANGUAGE_COOKIE] = chosen
    response = render(
        "login.html", page_context(request, None, next=_safe_next(next_page), error=False, name="")
    )
    if chosen is not None:
        _cookie(response, request, LANGUAGE_COOKIE, chosen, LANGUAGE_COOKIE_AGE_S)
    return response


@router.post("/login", summary="Sign in with name and password", response_class=HTMLResponse)
async def login(request: Request, engine: Engine) -> Response:
    """A right name and password: the session cookie and a `303` to the page asked for."""
    form = await _form(request)
    name, password = form.get("name", "").strip(), form.get("password", "")
    target = _safe_next(form.get("next"))
    settings = _settings(request)
    opened = await open_session(
        engine,
        name,
        password,
        now=datetime.now(UTC),
        ttl=timedelta(seconds=settings.console_session_ttl_s),
    )
    if opened is None:
        context = page_context(request, None, next=target, error=True, name=name)
        return render("login.html", context)  # the form again, with the error on it
    session_id, user, language = opened
    response = RedirectResponse(target or home_of(user), HTTPStatus.SEE_OTHER)
    response.headers.update({**_HEADERS, "Cache-Control": "no-store"})
    _cookie(response, request, SESSION_COOKIE, session_id, int(settings.console_session_ttl_s))
    if language in LANGUAGES:
        _cookie(response, request, LANGUAGE_COOKIE, language, LANGUAGE_COOKIE_AGE_S)
    return response


@router.post("/logout", dependencies=[require(*Role, area_officers=True)], summary="Sign out")
async def logout(request: Request, engine: Engine) -> Response:
    """End the session; htmx goes to the sign-in page (`HX-Redirect`)."""
    await close_session(engine, request.cookies.get(SESSION_COOKIE, ""))
    response = _text("", HTTPStatus.OK)
    response.headers["HX-Redirect"] = LOGIN_PATH
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post(
    "/language",
    dependencies=[require(*Role, area_officers=True)],
    summary="Switch the console language",
)
async def switch_language(request: Request, engine: Engine, user: CurrentUser) -> Response:
    """Remember the language (`lang` field) for this browser and this user; htmx reloads."""
    language = (await _form(request)).get("lang", "")
    if language not in LANGUAGES:
        raise HTTPException(422, f"lang must be one of {', '.join(LANGUAGES)}")
    await set_language(engine, user.name, language)
    response = _text("", HTTPStatus.OK)
    response.headers["HX-Refresh"] = "true"
    _cookie(response, request, LANGUAGE_COOKIE, language, LANGUAGE_COOKIE_AGE_S)
    return response


# --- live alarms -------------------------------------------------------------------------------


@pages.get("", dependencies=[require(*READERS)], summary="The console's home page")
async def home(user: CurrentUser) -> Response:
    """The user's home page (`home_of`: the live alarms, a technician's tasks, ...)."""
    return RedirectResponse(home_of(user), HTTPStatus.SEE_OTHER)


@pages.get(
    "/alarms",
    dependencies=[require(*READERS)],
    summary="Live alarms",
    response_class=HTMLResponse,
)
async def alarms_page(request: Request, engine: Engine, user: CurrentUser) -> Response:
    """Active alarms, fire first then by severity and age, live through the stream."""
    hub: Hub | None = getattr(request.app.state, "stream_hub", None)
    resume = hub.watermark if hub is not None and hub.ready.is_set() else None
    rows = await live_rows(engine, user)  # after the watermark: nothing between is missed
    language = _language(request)
    context = page_context(
        request,
        user,
        rows=rows,
        counts=_counts(rows),
        resume=resume,
        time_zone=_settings(request).work_order_timezone,
        texts=json.dumps(browser_texts(language, _BROWSER_TEXTS), ensure_ascii=False).replace(
            "<", "\\u003c"
        ),
    )
    return render("alarms.html", context)


def _counts(rows: list[AlarmRow]) -> dict[str, int]:
    return {
        "total": len(rows),
        "critical": sum(1 for r in rows if r.severity == "critical"),
        "fire": sum(1 for r in rows if r.fire),
        "unacked": sum(1 for r in rows if not r.acknowledged),
    }


@router.get(
    "/alarms/row",
    dependencies=[require(*READERS)],
    summary="One live-alarm row (HTML); 204 when it is no longer listed",
    response_class=HTMLResponse,
)
async def alarm_row(
    request: Request,
    engine: Engine,
    user: CurrentUser,
    fingerprint: Annotated[str, Query(min_length=1, max_length=1024)],
) -> Response:
    """The row of `fingerprint` as the page shows it; `204` if not active or not visible."""
    rows = await live_rows(engine, user, fingerprint)
    if not rows:
        return _text("", HTTPStatus.NO_CONTENT)
    return render("alarm_row.html", page_context(request, user, row=rows[0]))


_REFUSALS: Final = (
    (acks.AlarmNotFoundError, HTTPStatus.NOT_FOUND, "error.failed"),
    (acks.AlreadyAcknowledgedError, HTTPStatus.CONFLICT, "error.conflict"),
    (acks.InvalidNoteError, HTTPStatus.UNPROCESSABLE_ENTITY, "error.comment"),
)
"""How an acknowledgement the alarm API refuses is answered: status and text."""
_REFUSED: Final = tuple(kind for kind, _, _ in _REFUSALS)


@router.post(
    "/alarms/ack",
    dependencies=[require(*sorted(acks.ACK_ROLES), area_officers=True)],
    summary="Acknowledge an alarm with a comment",
    response_class=HTMLResponse,
)
async def acknowledge(request: Request, engine: Engine, user: CurrentUser) -> Response:
    """Acknowledge alarm `fingerprint` with `comment`; the new row.

    As `POST /api/v1/alarms/{fingerprint}/actions` with `ack`; a refusal is a short text in the
    user's language with the API's status (404, 409, 422).
    """
    form = await _form(request)
    t = translator(_language(request))
    comment = form.get("comment", "").strip()[:COMMENT_MAX]
    if not comment:
        return _text(t("error.comment"), HTTPStatus.UNPROCESSABLE_ENTITY)
    fingerprint = form.get("fingerprint", "")
    clock: Clock = getattr(request.app.state, "clock", None) or SystemClock()
    try:
        await acks.act(engine, user, fingerprint, acks.AlarmAction.ACK, comment, clock.now())
    except _REFUSED as err:
        status, key = next((s, k) for kind, s, k in _REFUSALS if isinstance(err, kind))
        return _text(t(key), status)
    rows = await live_rows(engine, user, fingerprint)
    if not rows:
        return _text("", HTTPStatus.NO_CONTENT)
    return render("alarm_row.html", page_context(request, user, row=rows[0]))


# --- static files --------------------------------------------------------------------------------


@router.get("/static/{path:path}", summary="The console's static files")
async def static(path: str) -> Response:
    """A file under `static/` (vendored packages under `static/vendor/`); `404` for anything else."""
    root = STATIC_DIR.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file() or target.name.startswith("."):
        raise HTTPException(404, "no such file")
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if target.suffix == ".js":
        media_type = "text/javascript"
    return FileResponse(
        target,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def console_router() -> APIRouter:
    """Every console route, to include in the application."""
    console = APIRouter()
    console.include_router(pages)
    console.include_router(router)
    from cloud_ingest.console.overview import overview_router  # noqa: PLC0415 - it imports this module

    console.include_router(overview_router())
    from cloud_ingest.console.orders import router as orders_router  # noqa: PLC0415 - it imports this module

    console.include_router(orders_router)
    from cloud_ingest.console import devices, kpis  # noqa: PLC0415 - they import this module

    console.include_router(devices.router)
    console.include_router(kpis.router)
    from cloud_ingest.console import resident, tasks  # noqa: PLC0415 - they import this module

    console.include_router(tasks.router)
    console.include_router(resident.router)
    return console
