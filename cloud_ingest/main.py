"""The cloud ingest's web application: `create_app(settings)` and the lifespan that owns the workers.

The lifespan creates the database engine, migrates the embedded SQLite database to the newest
revision (`Settings.runs_migrations`: by default on SQLite only; PostgreSQL is migrated by
`cloud-ingest db upgrade` as a deployment step, so several processes never race on it), builds
the `IngestService` and, when an MQTT URL is configured, starts the `MqttConsumer` with it. On
shutdown the consumer stops first (a batch in the handler finishes and is acknowledged), then the
engine is disposed. The live-stream hub (`cloud_ingest.stream.hub`) polls from start to shutdown,
where it ends its clients' streams first. The SLA breach scheduler
(`cloud_ingest.work_orders.breaches`) runs from start to shutdown unless `sla_breach_interval_s`
is 0. The objects live on `app.state` (`settings`, `engine`, `ingest`, `consumer`, `stream_hub`,
`breach_scheduler`).

Endpoints: `GET /healthz` (liveness), `GET /readyz` (database and broker), `GET /metrics`
(Prometheus text), `GET /openapi.json`, the API v1 under `/api/v1` (`cloud_ingest.api`,
bearer-token users) and the console under `/console` (`cloud_ingest.console`, signed-in people).
Errors are RFC 9457 problem documents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException

from cloud_ingest import migrations
from cloud_ingest.alarms.sweep import AlarmSweep, SweepSettings
from cloud_ingest.api import api_router
from cloud_ingest.console.pages import console_router
from cloud_ingest.infra.config import Settings
from cloud_ingest.infra.db import create_engine
from cloud_ingest.ingest.consumer import ConsumerStats, MqttConsumer
from cloud_ingest.ingest.counters import IngestCounters
from cloud_ingest.ingest.service import IngestService
from cloud_ingest.metrics import IngestCollector, registry_for, render
from cloud_ingest.notify.service import start_worker
from cloud_ingest.problems import Implied, document_problems, problem
from cloud_ingest.stream.hub import Hub, HubSettings
from cloud_ingest.telemetry.influx import InfluxCounters
from cloud_ingest.telemetry.store import TelemetryStore, open_store
from cloud_ingest.work_orders.breaches import start_scheduler
from cloud_ingest.work_orders.service import WorkOrders, WorkOrderSettings

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_READINESS: Final = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {
            "type": "object",
            "description": "`ok` or `failed: <why>` per dependency (`database`, `influx`, `broker`)",
            "additionalProperties": {"type": "string"},
        },
    },
}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine(settings.database_url)
    try:
        if settings.runs_migrations:
            await migrations.upgrade(engine)
        store = open_store(settings, engine)
        try:
            work_orders = WorkOrders(engine, settings=WorkOrderSettings.of(settings))
            app.state.work_orders = work_orders
            ingest = IngestService(
                engine,
                work_orders=work_orders,
                require_registration=settings.require_registration,
                max_future=settings.max_future,
                max_past=settings.max_past,
                telemetry=store.sink,
                inhibit_settle=timedelta(seconds=settings.inhibit_settle_s),
            )
            ingest.handoff.start()  # also hands over what an earlier process left marked
            consumer = None
            if settings.mqtt_url is not None:
                consumer = MqttConsumer(settings.consumer_settings(), ingest)
                await consumer.start()
            sweep = _alarm_sweep(settings, engine, ingest)
            app.state.notifier = notifier = start_worker(settings, engine)
            app.state.breach_scheduler = breaches = start_scheduler(settings, engine)
            app.state.engine, app.state.ingest, app.state.consumer = engine, ingest, consumer
            app.state.telemetry_store, app.state.telemetry_reader = store, store.reader
            app.state.stream_hub = hub = Hub(engine, HubSettings.of(settings))
            await hub.start()
            try:
                yield
            finally:
                await hub.stop()
                if consumer is not None:
                    await consumer.stop()
                if sweep is not None:
                    await sweep.stop()
                if notifier is not None:
                    await notifier.stop()
                if breaches is not None:
                    await breaches.stop()
                await ingest.handoff.stop()
        finally:
            await store.close()
    finally:
        await engine.dispose()


def _alarm_sweep(
    settings: Settings, engine: AsyncEngine, ingest: IngestService
) -> AlarmSweep | None:
    """The started alarm sweep (stale alarms, silent gateways), unless its interval is 0."""
    if settings.alarm_sweep_interval_s <= 0:
        return None
    silent = settings.gateway_silent_after_s
    sweep = AlarmSweep(
        engine,
        ingest.work_orders,
        SweepSettings(
            interval=timedelta(seconds=settings.alarm_sweep_interval_s),
            stale_grace=timedelta(seconds=settings.stale_grace_s),
            silent_after=timedelta(seconds=silent) if silent > 0 else None,
            inhibit_settle=timedelta(seconds=settings.inhibit_settle_s),
        ),
    )
    sweep.start()
    return sweep


async def _database_ready(engine: AsyncEngine, timeout_s: float) -> str | None:
    """`None` when the database answers `SELECT 1` in time, else why not."""
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except Exception as err:  # noqa: BLE001 - any driver error means "not ready"
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    return None


async def _influx_ready(store: TelemetryStore, settings: Settings) -> str | None:
    """`None` when the InfluxDB server answers `/ping` in time, else why not."""
    try:
        async with asyncio.timeout(settings.ready_timeout_s):
            answered = await store.ping()
    except TimeoutError:
        return f"no answer within {settings.ready_timeout_s:g} s"
    except Exception as err:  # noqa: BLE001 - any client error means "not ready"
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    return None if answered else f"no answer from {settings.influx_url}"


def _collector(app: FastAPI) -> IngestCollector:
    """The metrics of the objects the lifespan puts on `app.state`, read at each scrape."""

    def counters() -> IngestCounters | None:
        ingest: IngestService | None = app.state.ingest
        return None if ingest is None else ingest.counters

    def consumer_stats() -> ConsumerStats | None:
        consumer: MqttConsumer | None = app.state.consumer
        return None if consumer is None else consumer.stats()

    def influx_counters() -> InfluxCounters | None:
        store: TelemetryStore | None = app.state.telemetry_store
        sink = None if store is None else store.influx
        return None if sink is None else sink.counters

    def state_of(name: str, attribute: str) -> Callable[[], object | None]:
        def read() -> object | None:
            owner = getattr(app.state, name, None)
            return None if owner is None else getattr(owner, attribute)

        return read

    def handoff_counters() -> object | None:
        ingest: IngestService | None = app.state.ingest
        return None if ingest is None else ingest.handoff.counters

    workers = {
        "alarm_handoff": handoff_counters,
        "work_orders": state_of("work_orders", "stats"),
        "notify": state_of("notifier", "counters"),
        "sla_breaches": state_of("breach_scheduler", "stats"),
        "stream": state_of("stream_hub", "stats"),
    }
    return IngestCollector(counters, consumer_stats, influx_counters, workers)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application for `settings` (defaults: embedded SQLite, no MQTT consumer)."""
    settings = settings or Settings()
    app = FastAPI(
        title="Steward cloud ingest",
        version="1",
        lifespan=_lifespan,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = None
    app.state.ingest = None
    app.state.consumer = None
    app.state.telemetry_store = None
    app.state.telemetry_reader = None
    app.state.work_orders = None
    app.state.stream_hub = None
    app.state.notifier = None
    app.state.breach_scheduler = None

    registry = registry_for(_collector(app))
    _add_problem_handlers(app)
    app.include_router(api_router())
    app.include_router(console_router())

    @app.get("/healthz", tags=["health"], summary="Liveness: the process serves requests")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: the database answers and the consumer is subscribed at the broker",
        responses={
            200: {"content": {"application/json": {"schema": _READINESS}}},
            503: {
                "description": "A dependency is not ready; `checks` says which",
                "content": {"application/json": {"schema": _READINESS}},
            },
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        engine: AsyncEngine | None = request.app.state.engine
        checks: dict[str, str] = {}
        failed = False
        reason = (
            "not started"
            if engine is None
            else await _database_ready(engine, settings.ready_timeout_s)
        )
        checks["database"] = "ok" if reason is None else f"failed: {reason}"
        failed |= reason is not None
        if settings.telemetry_store == "influx":
            store: TelemetryStore | None = request.app.state.telemetry_store
            reason = "not started" if store is None else await _influx_ready(store, settings)
            checks["influx"] = "ok" if reason is None else f"failed: {reason}"
            failed |= reason is not None
        if settings.mqtt_url is not None:
            consumer: MqttConsumer | None = request.app.state.consumer
            if consumer is None or not consumer.connected:
                checks["broker"] = "failed: not connected"
            elif not consumer.ready.is_set():
                checks["broker"] = "failed: subscriptions not granted yet"
            else:
                checks["broker"] = "ok"
            failed |= checks["broker"] != "ok"
        status = HTTPStatus.SERVICE_UNAVAILABLE if failed else HTTPStatus.OK
        body = {"status": "unavailable" if failed else "ok", "checks": checks}
        return JSONResponse(body, status_code=status)

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {METRICS_CONTENT_TYPE: {}}}},
    )
    async def metrics() -> Response:
        return Response(render(registry), media_type=METRICS_CONTENT_TYPE)

    return app


_IMPLIED_PROBLEMS: Final = Implied(
    by_security={
        "HTTPBearer": {
            HTTPStatus.UNAUTHORIZED: "No valid user token",
            HTTPStatus.FORBIDDEN: "The user's role may not do this",
        },
        "GatewayToken": {HTTPStatus.UNAUTHORIZED: "No valid gateway HTTP token"},
    },
    by_query={"after": {HTTPStatus.BAD_REQUEST: "`after` is not a cursor from this list"}},
    by_body={HTTPStatus.BAD_REQUEST: "The body is not JSON"},
)
"""The error answers every route has by its token dependency, paging or a JSON body."""


def _add_problem_handlers(app: FastAPI) -> None:
    """Answer every error with a problem document, and document them so in the OpenAPI schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate(), _IMPLIED_PROBLEMS)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this type only
        detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
        response = problem(exc.status_code, detail, instance=request.url.path)
        response.headers.update(exc.headers or {})
        return response

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        return problem(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "the request does not match the schema",
            instance=request.url.path,
            errors=errors,
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(HTTPStatus.INTERNAL_SERVER_ERROR, instance=request.url.path)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, server_error)
