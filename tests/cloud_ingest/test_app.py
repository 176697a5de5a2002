"""Settings precedence and errors; the app's health, readiness, metrics and problem documents."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import inspect

from cloud_ingest.infra.config import Settings, SettingsError, load_settings
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON

EnvelopeFactory = Callable[..., bytes]

# --- settings ---------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_configuration() -> None:
    settings = load_settings(environ={})
    assert settings.database_url == "sqlite+aiosqlite:///var/steward.db"
    assert (settings.host, settings.port, settings.mqtt_url) == ("127.0.0.1", 8000, None)
    assert settings.runs_migrations


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    config = write(
        tmp_path / "ingest.yaml",
        "port: 9001\nhost: 0.0.0.0\nmqtt_client_id: from-file\nbatch_wait_s: 250ms\n",
    )
    env = {"STEWARD_PORT": "9002", "steward_host": "10.0.0.1", "OTHER_PORT": "1"}
    only_file = load_settings(config_file=config, environ={})
    assert (only_file.port, only_file.host, only_file.mqtt_client_id) == (
        9001,
        "0.0.0.0",  # noqa: S104 - a value under test, nothing listens
        "from-file",
    )
    assert only_file.batch_wait_s == pytest.approx(0.25)
    with_env = load_settings(config_file=config, environ=env)
    assert (with_env.port, with_env.host, with_env.mqtt_client_id) == (
        9002,
        "10.0.0.1",
        "from-file",
    )
    with_flag = load_settings(config_file=config, environ=env, flags={"port": 9003, "host": None})
    assert (with_flag.port, with_flag.host) == (9003, "10.0.0.1")
    assert with_flag.max_past_s == Settings().max_past_s


def test_database_urls_get_their_async_driver() -> None:
    pg = load_settings(environ={}, flags={"database_url": "postgresql://u:pw@db/steward"})
    assert pg.database_url == "postgresql+asyncpg://u:pw@db/steward"
    assert not pg.runs_migrations  # PostgreSQL is migrated by `cloud-ingest db upgrade`
    lite = load_settings(environ={"STEWARD_DATABASE_URL": "sqlite:///x.db"})
    assert lite.database_url == "sqlite+aiosqlite:///x.db"
    assert lite.runs_migrations
    assert not load_settings(environ={"STEWARD_MIGRATE_ON_START": "false"}).runs_migrations


def test_file_errors_name_file_and_line(tmp_path: Path) -> None:
    config = write(
        tmp_path / "bad.yaml", "host: 127.0.0.1\n\nport: 70000\nmqtt_url: http://broker\nprot: 1\n"
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=config, environ={})
    problems = caught.value.problems
    assert any(p.startswith(f"{config}:3: port:") for p in problems), problems
    assert any(p.startswith(f"{config}:4: mqtt_url: broker URL") for p in problems), problems
    assert f"{config}:5: prot: unknown key; did you mean port?" in problems


def test_unreadable_or_broken_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"missing\.yaml: cannot read"):
        load_settings(config_file=tmp_path / "missing.yaml", environ={})
    broken = write(tmp_path / "broken.yaml", "port: 1\nhost: [\n")
    with pytest.raises(SettingsError, match=rf"{broken}:\d+: "):
        load_settings(config_file=broken, environ={})
    listed = write(tmp_path / "list.yaml", "- port\n")
    with pytest.raises(SettingsError, match=rf"{listed}:1: expected a mapping"):
        load_settings(config_file=listed, environ={})


def test_environment_and_flag_errors_name_their_source() -> None:
    with pytest.raises(SettingsError, match=r"^STEWARD_PORT: "):
        load_settings(environ={"STEWARD_PORT": "http"})
    with pytest.raises(SettingsError, match=r"^--db: not a database URL"):
        load_settings(environ={}, flags={"database_url": "not a url"})
    with pytest.raises(SettingsError, match=r"^--mqtt: broker URL"):
        load_settings(environ={}, flags={"mqtt_url": "tcp://broker"})
    with pytest.raises(SettingsError, match=r"share_group"):
        load_settings(environ={"STEWARD_MQTT_SHARE_GROUP": "a/b"})


# --- the app ----------------------------------------------------------------------------------


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


def sqlite_settings(tmp_path: Path, **values: object) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path}/db/steward.db"
    return load_settings(environ={}, flags={"database_url": url, **values})


async def test_health_readiness_and_migrated_database(tmp_path: Path) -> None:
    app = create_app(sqlite_settings(tmp_path))
    async with serving(app) as client:
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"database": "ok"}}
        async with app.state.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"readings", "alarm_events", "dead_letters"} <= tables

        await app.state.engine.dispose()
        shutil.rmtree(tmp_path / "db")
        gone = await client.get("/readyz")
        assert gone.status_code == 503
        body = gone.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"].startswith("failed: ")
        assert (await client.get("/healthz")).status_code == 200  # liveness does not depend on it


async def test_no_migration_when_settings_say_so(tmp_path: Path) -> None:
    app = create_app(sqlite_settings(tmp_path, migrate_on_start=False))
    async with serving(app):
        async with app.state.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "readings" not in tables


async def test_metrics_read_the_counters_at_scrape_time(
    tmp_path: Path, make_envelope: EnvelopeFactory
) -> None:
    app = create_app(sqlite_settings(tmp_path))
    other = create_app(sqlite_settings(tmp_path / "other"))  # a second app: no collision
    async with serving(app) as client, serving(other) as other_client:
        now = datetime.now(UTC)
        payload = make_envelope(readings=3, alarm_events=1)
        await app.state.ingest(
            [
                Incoming("steward/v1/gw-1/up", payload, now),
                Incoming("steward/v1/gw-1/up", payload, now),
                Incoming("steward/v1/gw-1/up", b"{not json", now),
            ]
        )
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        lines = set(response.text.splitlines())
        assert "steward_ingest_messages_total 3.0" in lines
        assert "steward_ingest_readings_total 3.0" in lines
        assert "steward_ingest_alarm_events_total 1.0" in lines
        assert "steward_ingest_duplicates_total 1.0" in lines
        assert 'steward_ingest_rejections_total{reason="bad_json"} 1.0' in lines
        assert "steward_ingest_write_seconds_count 1.0" in lines
        assert "steward_ingest_consumer_unacked" not in response.text  # no consumer configured
        # The critical alarm went to the work-order service and opened an order.
        assert "steward_ingest_alarm_handoff_handed_total 1.0" in lines
        assert "steward_ingest_work_orders_orders_opened_total 1.0" in lines
        assert "steward_ingest_stream_polls_total" in response.text
        assert "steward_ingest_notify_runs_total" in response.text
        other_metrics = (await other_client.get("/metrics")).text
        assert "steward_ingest_readings_total 0.0" in other_metrics.splitlines()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_readiness_fails_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    app = create_app(settings)
    async with serving(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": "ok", "broker": "failed: not connected"}
        metrics = (await client.get("/metrics")).text.splitlines()
        assert "steward_ingest_consumer_connected 0.0" in metrics
        assert "steward_ingest_consumer_unacked 0.0" in metrics
        assert "steward_ingest_consumer_lag_seconds 0.0" in metrics
        assert "steward_ingest_consumer_reconnects_total 0.0" in metrics


async def test_errors_are_problem_documents(tmp_path: Path) -> None:
    app = create_app(sqlite_settings(tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    async with serving(app) as client:
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == PROBLEM_JSON
        assert missing.json() == {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "instance": "/nowhere",
        }
        wrong = await client.post("/healthz")
        assert wrong.status_code == 405
        assert wrong.headers["content-type"] == PROBLEM_JSON
        assert wrong.headers["allow"] == "GET"
        failed = await client.get("/boom")
        assert failed.status_code == 500
        assert failed.headers["content-type"] == PROBLEM_JSON
        assert failed.json()["title"] == "Internal Server Error"
        assert "secret" not in failed.text
        schema = (await client.get("/openapi.json")).json()
        assert {"/healthz", "/readyz", "/metrics"} <= set(schema["paths"])


def test_durations_from_the_environment_may_be_plain_seconds() -> None:
    settings = load_settings(environ={"STEWARD_BATCH_WAIT_S": "0.005", "STEWARD_MAX_PAST_S": "2d"})
    assert (settings.batch_wait_s, settings.max_past_s) == (0.005, 172_800.0)
    for bad in ("inf", "nan", "-1", "soon"):
        with pytest.raises(SettingsError, match="STEWARD_MAX_FUTURE_S"):
            load_settings(environ={"STEWARD_MAX_FUTURE_S": bad})
