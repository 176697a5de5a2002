"""Settings of the cloud ingest: database, HTTP listener, MQTT consumer and ingest bounds.

Each value comes from the first of these that sets it:

1. a command-line flag (`--db`, `--mqtt`, `--host`, `--port`), passed to `load_settings` as `flags`;
2. an environment variable `STEWARD_<FIELD>` (`STEWARD_DATABASE_URL`, `STEWARD_MQTT_URL`, ...);
3. the YAML file named by `--config FILE` (keys are the field names);
4. the default, which needs no configuration: SQLite at `./var/steward.db`, HTTP on
   127.0.0.1:8000, no MQTT consumer.

`load_settings` raises `SettingsError`, whose lines each name where a bad value came from:
`FILE:LINE: key: reason`, `STEWARD_X: reason` or `--flag: reason`. `Settings()` alone reads the
environment and the defaults (pydantic-settings), for code that needs no file or flags.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cloud_ingest.infra.db import DEFAULT_URL
from cloud_ingest.ingest.consumer import ConsumerSettings
from core.durations import seconds_if_duration
from core.issues import Issue
from core.schema_issues import schema_issues
from core.yaml_located import YamlError, load_file

ENV_PREFIX: Final = "STEWARD_"
FLAGS: Final = {"database_url": "--db", "mqtt_url": "--mqtt", "host": "--host", "port": "--port"}
"""The command-line flag of each field that has one."""
_ASYNC_DRIVERS: Final = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


def _seconds(value: object) -> object:
    """Seconds as a number or as text (`0.5`, as an environment variable gives it), or `90s`."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
            if math.isfinite(number):
                return number
    return seconds_if_duration(value)


Seconds = Annotated[float, BeforeValidator(_seconds)]
"""A duration: a number of seconds (also as text, as environment variables give it) or text such
as `90s`, `1h`, `30d`."""


class SettingsError(ValueError):
    """Settings could not be loaded; each line of the message names a source and a reason."""

    def __init__(self, problems: list[str]) -> None:
        """Keep every problem; the message lists them one per line."""
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def _database_url(value: str) -> str:
    """Check a SQLAlchemy URL; `sqlite://` and `postgresql://` get their async driver."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(
            f"not a database URL: {value!r} (expected sqlite+aiosqlite:///PATH or "
            "postgresql+asyncpg://USER@HOST/DB)"
        ) from None
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    driver = _ASYNC_DRIVERS[backend]
    if "+" not in url.drivername:
        url = url.set(drivername=f"{backend}+{driver}")
    elif url.get_driver_name() != driver:
        raise ValueError(f"{backend} needs the async driver {backend}+{driver}://")
    return url.render_as_string(hide_password=False)


class Settings(BaseSettings):
    """Everything `cloud-ingest serve` and `cloud-ingest db` need; see the module docstring."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", case_sensitive=False, frozen=True
    )

    database_url: str = DEFAULT_URL
    """SQLAlchemy async URL: `sqlite+aiosqlite:///PATH` or `postgresql+asyncpg://...`."""
    migrate_on_start: bool | None = None
    """Migrate the database to the newest revision at start. Unset: yes on SQLite (the embedded
    default), no on PostgreSQL, where `cloud-ingest db upgrade` is run as a deployment step."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65_535)
    mqtt_url: str | None = None
    """`mqtt://[user[:password]@]host[:port]` or `mqtts://`; unset: no MQTT consumer."""
    mqtt_client_id: str = "steward-ingest-1"
    """Fixed per process: the broker keeps this id's unacknowledged messages across restarts."""
    mqtt_share_group: str = "ingest"
    batch_max: int = Field(default=500, ge=1, le=10_000)
    """At most this many messages per database transaction."""
    batch_wait_s: Seconds = Field(default=0.005, ge=0, le=10)
    """A batch is written this long after its first message at the latest."""
    require_registration: bool = False
    """Refuse gateways not added by the administrator (else: registered on first sight)."""
    max_future_s: Seconds = Field(default=3600.0, ge=0)
    """How far after its reception a reading's or event's time may lie."""
    max_past_s: Seconds = Field(default=30 * 86_400.0, ge=0)
    """How far before its reception a time may lie (a gateway's outbox holds data through outages)."""
    alarm_sweep_interval_s: Seconds = Field(default=30.0, ge=0, le=3600)
    """Time between two runs of the alarm sweep (stale alarms, silent gateways); 0: no sweep."""
    stale_grace_s: Seconds = Field(default=60.0, ge=0)
    """How long after its `valid_until` an active alarm without a re-send is marked stale."""
    gateway_silent_after_s: Seconds = Field(default=300.0, ge=0)
    """A gateway that never sent a status (HTTP intake, no last will) and was heard nothing from
    for this long is offline; 0: never."""
    inhibit_settle_s: Seconds = Field(default=120.0, ge=0)
    """How long after a gateway's outage ended its devices' NO_DATA alarms are still inhibited."""
    ready_timeout_s: Seconds = Field(default=2.0, gt=0, le=60)
    """How long `/readyz` waits for the database to answer."""
    log_level: str = "info"
    telemetry_store: Literal["sql", "influx"] = "sql"
    """Where readings go: the database's `readings` table, or an InfluxDB v2 bucket."""
    influx_url: str | None = None
    """The InfluxDB v2 API (`http://host:8086`; VictoriaMetrics: `http://host:8428`)."""
    influx_org: str = ""
    """The InfluxDB organisation (VictoriaMetrics ignores it)."""
    influx_bucket: str | None = None
    influx_token: str | None = Field(default=None, repr=False)
    """The API token; or `influx_token_file`, a file holding it."""
    influx_token_file: Path | None = None
    influx_query: Literal["flux", "promql"] = "flux"
    """How `GET /api/v1/telemetry` reads the bucket: Flux (InfluxDB 2) or PromQL (VictoriaMetrics)."""
    notify_worker: bool = True
    """Run the notification delivery worker in this process (several processes may run one)."""
    notify_interval_s: Seconds = Field(default=5.0, gt=0, le=3600)
    """Time between two passes of the notification worker when nothing is due."""
    notify_max_attempts: int = Field(default=8, ge=1, le=100)
    """A notification is given up (`dead`) after this many failed tries."""
    notify_backoff_s: Seconds = Field(default=30.0, gt=0)
    """The wait after a notification's first failed try; doubled after each further one."""
    notify_backoff_max_s: Seconds = Field(default=3600.0, gt=0)
    """The longest wait between two tries of a notification."""
    notify_send_timeout_s: Seconds = Field(default=30.0, gt=0, le=600)
    """The longest one try of a notification may take."""
    notify_smtp_host: str = "127.0.0.1"
    """The SMTP server of e-mail channels (a channel's `smtp_host` option overrides it)."""
    notify_smtp_port: int = Field(default=25, ge=1, le=65_535)
    notify_smtp_sender: str = "steward@localhost"
    notify_smtp_username: str | None = None
    notify_smtp_password: str | None = Field(default=None, repr=False)
    notify_smtp_starttls: bool = False
    """Upgrade SMTP connections with STARTTLS."""

    stream_poll_interval_s: Seconds = Field(default=0.15, gt=0, le=10)
    """How often each process reads new live-stream events from the database."""
    stream_gap_grace_s: Seconds = Field(default=5.0, ge=0, le=600)
    """How long a missing event id (a transaction not yet committed) holds back the ones after it."""
    stream_queue_size: int = Field(default=1_000, ge=1, le=100_000)
    """Events queued for one stream client at most; a client further behind is cut off."""
    stream_send_timeout_s: Seconds = Field(default=30.0, gt=0)
    """A stream client that accepts no data for this long is cut off."""
    stream_ping_s: Seconds = Field(default=15.0, gt=0, le=3600)
    """Time between two keep-alive comments on an idle stream."""
    stream_retention_s: Seconds = Field(default=86_400.0, gt=0)
    """Live-stream events older than this are pruned (a client can resume within it)."""
    console_session_ttl_s: Seconds = Field(default=43_200.0, ge=60, le=30 * 86_400)
    """How long a console sign-in lasts (a shift and a half by default)."""
    console_secure_cookies: bool = False
    """Send the console's cookies with `Secure` (set it when the console is served over HTTPS)."""
    work_order_group_window_s: Seconds = Field(default=1800.0, ge=0)
    """An alarm joins an open work order of its location and category whose last alarm is this
    recent (flapping, re-sends and neighbouring detectors make one order)."""
    work_order_auto_verify: str = "sanitation"
    """Comma-separated categories whose orders the sensor's RESOLVED closes (low risk only)."""
    work_order_timezone: str = "Asia/Shanghai"
    """The local day in work-order numbers (`WO-20261207-0001`)."""
    sla_breach_interval_s: Seconds = Field(default=30.0, ge=0, le=3600)
    """Time between two runs of the SLA breach scheduler (overdue work orders escalate one level
    and that level is notified); 0: no scheduler in this process."""
    sla_breach_batch: int = Field(default=500, ge=1, le=100_000)
    """At most this many overdue work orders per run of the breach scheduler."""
    photo_dir: Path | None = None
    """Where uploaded photos are stored, by content hash (`ab/cd/<sha256>`). Unset: `photos`
    beside the SQLite database file (`var/photos` with the default database), else `var/photos`."""
    photo_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    """The largest photo accepted, in bytes (a larger upload is refused while it streams)."""
    photo_max_files: int = Field(default=20, ge=1, le=100)
    """The most photos in one upload."""

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return _database_url(value)

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value in {None, ""}:
            return None
        ConsumerSettings.from_url(str(value))  # raises ValueError with the reason
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug")
        if value.lower() not in levels:
            raise ValueError(f"one of {', '.join(levels)}")
        return value.lower()

    @field_validator("influx_url")
    @classmethod
    def _check_influx_url(cls, value: str | None) -> str | None:
        if value in {None, ""}:
            return None
        scheme, _, rest = str(value).partition("://")
        if scheme not in {"http", "https"} or not rest.strip("/"):
            raise ValueError(f"not an http:// or https:// URL: {value!r}")
        return str(value).rstrip("/")

    @field_validator("influx_token_file")
    @classmethod
    def _check_influx_token_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _check_influx(self) -> Settings:
        if self.telemetry_store != "influx":
            return self
        missing = [name for name in ("influx_url", "influx_bucket") if not getattr(self, name)]
        if missing:
            raise ValueError(f"telemetry_store 'influx' needs {' and '.join(missing)}")
        if self.influx_token and self.influx_token_file is not None:
            raise ValueError("set influx_token or influx_token_file, not both")
        return self

    def influx_token_value(self) -> str:
        """The InfluxDB token: `influx_token`, or the stripped text of `influx_token_file`."""
        if self.influx_token_file is not None:
            return self.influx_token_file.read_text().strip()
        return self.influx_token or ""

    @model_validator(mode="after")
    def _check_consumer(self) -> Settings:
        self.consumer_settings("mqtt://127.0.0.1")  # client id, share group, batch bounds
        return self

    @property
    def photo_root(self) -> Path:
        """The photo directory: `photo_dir`, else beside the SQLite file, else `var/photos`."""
        if self.photo_dir is not None:
            return self.photo_dir
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return Path(url.database).parent / "photos"
        return Path("var/photos")

    @property
    def runs_migrations(self) -> bool:
        """Whether the server migrates the database at start (see `migrate_on_start`)."""
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return make_url(self.database_url).get_backend_name() == "sqlite"

    def consumer_settings(self, url: str | None = None) -> ConsumerSettings:
        """The MQTT consumer's settings for `url` (default: `mqtt_url`, which must be set)."""
        url = url or self.mqtt_url
        if url is None:
            raise ValueError("no MQTT URL configured")
        return ConsumerSettings.from_url(
            url,
            client_id=self.mqtt_client_id,
            share_group=self.mqtt_share_group,
            batch_max=self.batch_max,
            receive_maximum=max(self.batch_max * 2, 1_000),
            batch_wait_s=self.batch_wait_s,
        )

    @property
    def max_future(self) -> timedelta:
        """`max_future_s` as a `timedelta`."""
        return timedelta(seconds=self.max_future_s)

    @property
    def max_past(self) -> timedelta:
        """`max_past_s` as a `timedelta`."""
        return timedelta(seconds=self.max_past_s)


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from flags, then `STEWARD_*` variables, then the YAML file, then the defaults.

    `flags` maps field names to values given on the command line (`None` values are ignored);
    `environ` defaults to `os.environ`.

    Raises:
        SettingsError: the file cannot be read, or a value is invalid (each problem names its
            source: `FILE:LINE`, the variable or the flag).
    """
    file_values: dict[str, Any] = {}
    doc = None
    filename = ""
    if config_file is not None:
        filename = os.fspath(config_file)
        try:
            doc = load_file(Path(config_file))
        except YamlError as err:
            raise SettingsError([str(issue) for issue in err.issues]) from None
        if doc.data is None:
            file_values = {}
        elif isinstance(doc.data, dict):
            file_values = {str(key): value for key, value in doc.data.items()}
        else:
            raise SettingsError([str(Issue(filename, 1, "expected a mapping of settings"))])
    env_values = _env_values(os.environ if environ is None else environ)
    flag_values = {k: v for k, v in (flags or {}).items() if v is not None}
    merged = {**file_values, **env_values, **flag_values}
    try:
        return Settings.model_validate(merged)
    except ValidationError as err:
        problems: list[str] = []
        for error in err.errors(include_url=False):
            key = str(error["loc"][0]) if error["loc"] else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            if key in flag_values:
                problems.append(f"{FLAGS.get(key, key)}: {message}")
            elif key in env_values:
                problems.append(f"{ENV_PREFIX}{key.upper()}: {message}")
            elif doc is not None and (key in file_values or not key):
                problems += [str(i) for i in schema_issues([error], doc, filename, Settings)]
            else:
                problems.append(f"{key or 'settings'}: {message}")
        raise SettingsError(problems) from None


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The `STEWARD_*` variables that name a field, by field name (empty values ignored)."""
    names = {f"{ENV_PREFIX}{name}".lower(): name for name in Settings.model_fields}
    values: dict[str, Any] = {}
    for key, value in environ.items():
        name = names.get(key.lower())
        if name is not None and value != "":
            values[name] = value
    return values
