"""Console sign-in without a browser: passwords, sessions, the cookie at the API, texts, order.

The session cookie is taken wherever a bearer token is (same `require`), a change made with the
cookie needs the CSRF header, an expired or closed session is refused, `users passwd` sets a
password from stdin, both catalogs have the same keys and hold every key a template uses, and the
page order pins fire on top.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cloud_ingest.auth.passwords import PasswordError, hash_password, verify_password
from cloud_ingest.auth.service import add_user
from cloud_ingest.auth.sessions import (
    close_session,
    csrf_token,
    open_session,
    set_password,
    user_for_session,
)
from cloud_ingest.cli import main
from cloud_ingest.console.i18n import catalog, language_of
from cloud_ingest.console.live import AlarmRow, is_fire, sort_key
from cloud_ingest.infra.config import load_settings
from cloud_ingest.main import create_app

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
TEMPLATES = Path(__file__).resolve().parents[2] / "cloud_ingest" / "console" / "templates"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_a_password_hash_verifies_only_its_password() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$")
    assert "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert hash_password("correct horse") != stored  # a fresh salt each time
    assert not verify_password("correct horse", None)
    assert not verify_password("correct horse", "scrypt$garbage")
    with pytest.raises(PasswordError):
        hash_password("short")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    flags = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/steward.db"}
    application = create_app(load_settings(environ={}, flags=flags))
    lifespan: AbstractAsyncContextManager[None] = application.router.lifespan_context(application)  # type: ignore[assignment]
    async with lifespan:
        await add_user(application.state.engine, "op", role="operator", company="A")
        await set_password(application.state.engine, "op", "correct horse")
        yield application


async def test_a_session_lasts_until_it_expires_or_is_closed(app: FastAPI) -> None:
    engine = app.state.engine
    ttl = timedelta(hours=1)
    assert await open_session(engine, "op", "wrong horse", now=NOW, ttl=ttl) is None
    assert await open_session(engine, "nobody", "correct horse", now=NOW, ttl=ttl) is None
    opened = await open_session(engine, "op", "correct horse", now=NOW, ttl=ttl)
    assert opened is not None
    session_id, user, _ = opened
    assert user.name == "op"
    assert await user_for_session(engine, session_id, now=NOW + ttl / 2) == user
    assert await user_for_session(engine, session_id, now=NOW + ttl) is None
    assert await user_for_session(engine, "forged", now=NOW) is None
    await close_session(engine, session_id)
    assert await user_for_session(engine, session_id, now=NOW) is None


async def test_the_cookie_is_taken_where_a_token_is_and_a_change_needs_the_csrf_header(
    app: FastAPI,
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        assert (await client.get("/api/v1/alarms")).status_code == 401
        signed = await client.post(
            "/console/login", content="name=op&password=correct+horse", headers=FORM
        )
        assert signed.status_code == 303
        session_id = client.cookies["steward_session"]
        assert (await client.get("/api/v1/alarms")).status_code == 200
        assert (await client.get("/console/alarms")).status_code == 200
        refused = await client.post("/console/language", content="lang=en", headers=FORM)
        assert refused.status_code == 403
        csrf = {**FORM, "X-CSRF-Token": csrf_token(session_id)}
        switched = await client.post("/console/language", content="lang=en", headers=csrf)
        assert switched.status_code == 200
        assert client.cookies["steward_lang"] == "en"
        page = await client.get("/console/alarms")
        assert "Live alarms" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        out = await client.post("/console/logout", headers=csrf)
        assert out.headers["hx-redirect"] == "/console/login"
        client.cookies.set("steward_session", session_id)
        assert (await client.get("/api/v1/alarms")).status_code == 401
        wrong = await client.post(
            "/console/login", content="name=op&password=nope&next=//evil", headers=FORM
        )
        assert wrong.status_code == 200
        assert "login-error" in wrong.text


def test_users_passwd_reads_the_password_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", f"sqlite+aiosqlite:///{tmp_path}/steward.db"]
    assert main(["users", "add", "op", "--role", "operator", "--company", "A", *db]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough password\n"))
    assert main(["users", "passwd", "op", *db]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "passwd", "op", *db]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough password\n"))
    assert main(["users", "passwd", "nobody", *db]) == 1
    err = capsys.readouterr().err
    assert "8 to 1024 characters" in err
    assert "no user 'nobody'" in err


def test_both_catalogs_hold_every_key_the_templates_use() -> None:
    zh, en = catalog("zh"), catalog("en")
    assert set(zh) == set(en)
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(["']([a-z_.]+)["']\)""", template.read_text()))
    assert used
    assert used <= set(zh), used - set(zh)
    assert language_of(None) == "zh"
    assert language_of("en") == "en"
    assert language_of("xx") == "zh"


def _row(fingerprint: str, rule: str, severity: str, minutes_ago: int) -> AlarmRow:
    at = NOW - timedelta(minutes=minutes_ago)
    return AlarmRow(
        fingerprint=fingerprint,
        severity=severity,
        state="firing",
        stale=False,
        description="",
        rule_id=rule,
        location="d1",
        device_id="dev",
        gateway_id="gw",
        starts_at=at,
        last_event_at=at,
    )


def test_the_page_order_is_fire_then_severity_then_newest() -> None:
    rows = [
        _row("warning-new", "bin_full", "warning", 1),
        _row("critical-old", "manhole_open", "critical", 30),
        _row("fire-old", "smoke", "critical", 60),
        _row("critical-new", "perimeter_intrusion", "critical", 2),
        _row("info", "battery_low", "info", 0),
    ]
    ordered = [r.fingerprint for r in sorted(rows, key=sort_key)]
    assert ordered == ["fire-old", "critical-new", "critical-old", "warning-new", "info"]
    assert is_fire("fire_panel.alarm")
    assert is_fire("x", "fire")
    assert not is_fire("firmware")
