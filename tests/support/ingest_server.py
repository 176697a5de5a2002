"""`cloud-ingest serve` as a real process, a paced QoS 1 publisher and PostgreSQL look-ups, for tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud_ingest import migrations
from cloud_ingest.infra.db import create_engine
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity
from simulators.services import Mosquitto, free_port

REPO = Path(__file__).resolve().parents[2]
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `within_s` (a hang guard only)."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s} s")
        time.sleep(0.05)


def cloud_ingest_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a `cloud-ingest` child: no inherited `STEWARD_*`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def cloud_ingest_run(args: Sequence[str], cwd: Path) -> str:
    """Run a `cloud-ingest` command to its end; return its stdout (fail on a non-zero status)."""
    result = subprocess.run(
        [sys.executable, "-m", "cloud_ingest.cli", *args],
        cwd=cwd,
        env=cloud_ingest_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class IngestServer:
    """One `cloud-ingest serve` process on a free port, its log in a file."""

    def __init__(
        self,
        workdir: Path,
        *,
        db_url: str,
        mqtt_url: str,
        client_id: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare (not start) a server consuming `mqtt_url` as `client_id` into `db_url`."""
        self.workdir = workdir
        self.db_url = db_url
        self.mqtt_url = mqtt_url
        self.client_id = client_id
        self.env = dict(env or {})
        self.port = free_port()
        self.log = workdir / f"serve-{client_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_within_s: float = 30) -> IngestServer:
        """Start the process and wait until `/readyz` answers 200 (database and broker ready)."""
        env = cloud_ingest_env(
            {"STEWARD_MQTT_CLIENT_ID": self.client_id, "STEWARD_LOG_LEVEL": "warning", **self.env}
        )
        args = ["serve", "--db", self.db_url, "--mqtt", self.mqtt_url, "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cloud_ingest.cli", *args],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        until(self.ready, ready_within_s, f"serve {self.client_id} ready")
        return self

    def ready(self) -> bool:
        """Whether `/readyz` answers 200 (the process must be running)."""
        assert self.alive(), f"serve {self.client_id} exited: {self.log_text()[-3000:]}"
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """`kill -9`: nothing is flushed, nothing acknowledged."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM, and the exit status (killed if it does not stop within 30 s)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        """What the process logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics(self) -> dict[str, float]:
        """`/metrics` samples: `name` or `name{labels}` to value."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        samples: dict[str, float] = {}
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match is not None:
                labels = match["labels"]
                key = f"{match['name']}{{{labels}}}" if labels else match["name"]
                samples[key] = float(match["value"])
        return samples

    def metric(self, name: str) -> float:
        """One sample of `/metrics` (0 when absent)."""
        return self.metrics().get(name, 0.0)


def upgrade_database(url: str) -> None:
    """Migrate `url` to the newest revision (what `cloud-ingest db upgrade` does)."""

    async def upgrade() -> None:
        engine = create_engine(url)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(upgrade())


def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """Rows of `sql` on the PostgreSQL database of the SQLAlchemy `url`."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
            return rows
        finally:
            await connection.close()

    return asyncio.run(fetch())


def scalar(url: str, sql: str, *args: object) -> Any:
    """The first column of the first row of `sql`."""
    return query(url, sql, *args)[0][0]


def stored_batches(url: str) -> set[UUID]:
    """The batch ids in `ingested_batches`."""
    return {row[0] for row in query(url, "SELECT batch_id FROM ingested_batches")}


def envelope(
    gateway: str, n: int, *, readings: int = 2, shift: timedelta = timedelta()
) -> Envelope:
    """Envelope number `n` of `gateway`: its own readings and one alarm event of its own."""
    now = datetime.now(UTC) + shift
    return Envelope(
        gateway_id=gateway,
        batch_id=uuid4(),
        sent_at=now,
        readings=tuple(
            Reading(f"{gateway}-dev-{k % 3}", Metric.TEMPERATURE_C, n + k / 10, now)
            for k in range(readings)
        ),
        alarm_events=(
            AlarmEvent(
                fingerprint=f"{gateway}/site/{gateway}-dev-0/smoke/{n}",
                seq=1,
                state=AlarmState.FIRING,
                severity=Severity.CRITICAL,
                starts_at=now,
                at=now,
                rule_id="smoke",
                device_id=f"{gateway}-dev-0",
            ),
        ),
    )


def up_message(env: Envelope, topic_gateway: str | None = None) -> tuple[str, bytes]:
    """`(topic, payload)` of `env` on its gateway's (or `topic_gateway`'s) `/up` topic."""
    return f"steward/v1/{topic_gateway or env.gateway_id}/up", dumps(env)


def envelope_doc(env: Envelope) -> dict[str, Any]:
    """`env` as a JSON document, to be spoiled by a test."""
    doc: dict[str, Any] = json.loads(dumps(env))
    return doc


class Publisher(threading.Thread):
    """Publishes messages at QoS 1 from a thread, `per_s` a second, waiting for every PUBACK."""

    def __init__(
        self, broker: Mosquitto, messages: Sequence[tuple[str, bytes]], *, per_s: float = 0
    ) -> None:
        """Prepare; `per_s` 0 publishes as fast as the broker takes them."""
        super().__init__(daemon=True, name="qos1-publisher")
        self.broker = broker
        self.messages = list(messages)
        self.per_s = per_s
        self.published = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        """Publish everything, pacing it; remember a failure for `finish()`."""
        try:
            self._publish()
        except BaseException as err:  # noqa: BLE001 - reported by finish()
            self.error = err

    def _publish(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"publisher-{uuid4()}", protocol=mqtt.MQTTv5
        )
        client.max_inflight_messages_set(100)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            started = time.monotonic()
            infos = []
            for n, (topic, payload) in enumerate(self.messages):
                if self.per_s > 0:
                    ahead = started + n / self.per_s - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                infos.append(client.publish(topic, payload, qos=1))
                self.published = n + 1
            for info in infos:
                info.wait_for_publish(timeout=60)
        finally:
            client.disconnect()
            client.loop_stop()

    def finish(self, within_s: float = 60) -> None:
        """Wait until every message is acknowledged by the broker; raise what went wrong."""
        self.join(within_s)
        assert not self.is_alive(), "the publisher did not finish"
        if self.error is not None:
            raise self.error
