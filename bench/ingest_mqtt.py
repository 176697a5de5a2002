"""The cloud ingest as shipped, through a real broker: `cloud-ingest serve` processes fed by Mosquitto.

Each figure is measured in the same run as its baseline:

- relay: a plain paho subscriber (QoS 1, acknowledging at once) receiving the same envelopes
  through the same broker: the rate the broker and one Python MQTT client can move, the ceiling
  of any consumer;
- readings/s stored by one `cloud-ingest serve` process (envelopes of 100 readings and 2 alarm
  events, published at QoS 1 as fast as the broker takes them; acknowledged only after commit),
  into SQLite and into PostgreSQL, and the total of two processes on the shared subscription
  into PostgreSQL; each as a ratio of the relay rate;
- latency: from the PUBACK of an envelope holding one new alarm event, at the publishing
  gateway, to `GET /api/v1/alarms/{fingerprint}` answering 200, while a background gateway
  publishes 1,000 readings/s; p50, p99, max over the probes;
- the peak RSS (`VmHWM`) of each ingest process;
- with `--influx`, readings/s of one process writing PostgreSQL and, as its telemetry store, the
  InfluxDB v2 write API of a local VictoriaMetrics (`telemetry_store: influx`).

A phase ends when `/metrics` counts every reading. The poll waits half the time the readings left
should take at the rate so far (10 to 200 ms), so the scrapes cost the server little and the end
is still seen within about 10 ms.

Run: `.venv/bin/python bench/ingest_mqtt.py [envelopes] [latency_probes] [alarm_events_per_envelope]
[--influx]` (defaults 600, 100, 2); see bench/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest import READINGS_PER_ENVELOPE, reading_envelope
from cloud_ingest import migrations
from cloud_ingest.auth.service import add_user
from cloud_ingest.infra.db import create_engine
from core.envelope_json import dumps
from core.types import AlarmEvent, AlarmState, Envelope, Severity
from simulators.services import (
    LOOPBACK,
    Mosquitto,
    Postgres,
    VictoriaMetrics,
    free_port,
    wait_for_port,
)

BIN: Final = Path(sys.executable).parent
LATENCY_GATEWAY: Final = "gw-bench-probe"
BACKGROUND_READINGS_PER_S: Final = 1_000
"""The load beside the latency probes: 10 envelopes of 100 readings per second."""
POLL_MIN_S: Final = 0.01
POLL_MAX_S: Final = 0.2
INFLUX_BUCKET: Final = "bench"


@dataclass
class Server:
    """One `cloud-ingest serve` process."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        """GET `path`; (status, body)."""
        request = urllib.request.Request(f"http://{LOOPBACK}:{self.port}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def counter(self, name: str) -> float:
        """A counter of `/metrics` (0 when absent)."""
        _, body = self.get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith(f"steward_ingest_{name}_total "):
                return float(line.split()[1])
        return 0.0

    def peak_rss_mb(self) -> float:
        """The process's peak resident set size, from /proc."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def serving(
    db_url: str,
    mqtt_url: str,
    client_id: str,
    workdir: Path,
    settings: dict[str, str] | None = None,
) -> Iterator[Server]:
    """A `cloud-ingest serve` process on a free port, ready (database and broker).

    `settings` are more `STEWARD_*` variables for the process.
    """
    port = free_port()
    log = workdir / f"{client_id}.log"
    env = {
        **os.environ,
        "STEWARD_MQTT_CLIENT_ID": client_id,
        "STEWARD_LOG_LEVEL": "warning",
        "STEWARD_MIGRATE_ON_START": "false",
        **(settings or {}),
    }
    args = [str(BIN / "cloud-ingest"), "serve", "--db", db_url, "--mqtt", mqtt_url]
    args += ["--host", LOOPBACK, "--port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, env=env)  # noqa: S603
    server = Server(proc, port, log)
    try:
        wait_for_port(port, proc, 30, log)
        deadline = time.monotonic() + 30
        while server.get("/readyz")[0] != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server not ready: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()


def _client(client_id: str, mqtt_url: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1_000)
    client.max_queued_messages_set(0)
    url = urllib.parse.urlsplit(mqtt_url)
    client.connect(url.hostname or LOOPBACK, url.port or 1883)
    client.loop_start()
    return client


def publish_all(mqtt_url: str, payloads: Sequence[tuple[str, bytes]]) -> float:
    """Publish every (topic, payload) at QoS 1; return when the first was handed to paho."""
    client = _client(f"bench-pub-{uuid.uuid4().hex[:8]}", mqtt_url)
    try:
        started = time.perf_counter()
        infos = [client.publish(topic, payload, qos=1) for topic, payload in payloads]
        for info in infos:
            info.wait_for_publish(60)
        return started
    finally:
        client.loop_stop()
        client.disconnect()


def envelopes(count: int, events: int = 2) -> list[tuple[str, bytes]]:
    """`count` envelopes of 100 readings and `events` new alarm events each, timed now."""
    now = datetime.now(UTC)
    out = []
    for n in range(count):
        envelope = reading_envelope(n, now, events)
        out.append((f"steward/v1/{envelope.gateway_id}/up", dumps(envelope)))
    return out


def relay_rate(mqtt_url: str, payloads: Sequence[tuple[str, bytes]]) -> float:
    """Readings/s a plain QoS 1 subscriber receives of `payloads` through the broker."""
    done = threading.Event()
    received: list[float] = [0, 0.0]

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        received[0] += 1
        if received[0] == len(payloads):
            received[1] = time.perf_counter()
            done.set()

    sub = _client(f"bench-relay-{uuid.uuid4().hex[:8]}", mqtt_url)
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.subscribe("steward/v1/+/up", qos=1)
    subscribed.wait(10)
    try:
        started = publish_all(mqtt_url, payloads)
        if not done.wait(120):
            raise RuntimeError(f"relay: {received[0]} of {len(payloads)} received")
        return len(payloads) * READINGS_PER_ENVELOPE / (received[1] - started)
    finally:
        sub.loop_stop()
        sub.disconnect()


def stored_rate(
    mqtt_url: str, servers: Sequence[Server], payloads: Sequence[tuple[str, bytes]]
) -> tuple[float, list[float]]:
    """Readings/s stored by `servers` together, and each one's share of the readings."""
    base = [s.counter("readings") for s in servers]
    want = len(payloads) * READINGS_PER_ENVELOPE
    started = publish_all(mqtt_url, payloads)
    deadline = time.monotonic() + 300
    while True:
        got = [s.counter("readings") - b for s, b in zip(servers, base, strict=True)]
        if sum(got) >= want:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"stored {sum(got)} of {want} readings")
        time.sleep(_poll_wait(sum(got), want, time.perf_counter() - started))
    elapsed = time.perf_counter() - started
    return sum(got) / elapsed, [g / want for g in got]


def _poll_wait(got: float, want: float, elapsed: float) -> float:
    """Half the time the readings left should take at the rate so far, within the poll bounds."""
    if got <= 0:
        return POLL_MAX_S / 4
    left = (want - got) * elapsed / got
    return min(max(left / 2, POLL_MIN_S), POLL_MAX_S)


async def _prepare(db_url: str) -> str:
    """Migrate the database and add an admin user; return the user's token."""
    engine = create_engine(db_url)
    try:
        await migrations.upgrade(engine)
        return await add_user(engine, "bench", role="admin", company=None)
    finally:
        await engine.dispose()


def _probe_envelope(n: int) -> tuple[str, str, bytes]:
    """(fingerprint, topic, payload) of an envelope holding one new alarm event."""
    now = datetime.now(UTC)
    fingerprint = f"bench/probe-{uuid.uuid4().hex[:12]}/smoke"
    event = AlarmEvent(
        fingerprint=fingerprint,
        seq=1,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=now - timedelta(seconds=1),
        at=now,
        rule_id="smoke",
        device_id=f"{LATENCY_GATEWAY}/smoke-{n % 20}",
        location="d1/s1/c1/g1/k1/b1/u1",
        valid_until=now + timedelta(minutes=2),
        value=True,
    )
    envelope = Envelope(LATENCY_GATEWAY, uuid.uuid4(), now, (), (event,))
    return fingerprint, f"steward/v1/{LATENCY_GATEWAY}/up", dumps(envelope)


def latencies(mqtt_url: str, server: Server, token: str, probes: int) -> list[float]:
    """Seconds from each probe's PUBACK to its alarm being readable, under background load."""
    stop = threading.Event()

    def background() -> None:
        client = _client(f"bench-bg-{uuid.uuid4().hex[:8]}", mqtt_url)
        try:
            per_s = BACKGROUND_READINGS_PER_S // READINGS_PER_ENVELOPE
            n = 0
            next_at = time.monotonic()
            while not stop.is_set():
                envelope = reading_envelope(n, datetime.now(UTC), 0)
                client.publish(f"steward/v1/{envelope.gateway_id}/up", dumps(envelope), qos=1)
                n += 1
                next_at += 1 / per_s
                time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            client.loop_stop()
            client.disconnect()

    loader = threading.Thread(target=background, daemon=True)
    loader.start()
    acked: dict[int, float] = {}
    acked_event = threading.Condition()

    def on_publish(_c: mqtt.Client, _u: object, mid: int, _rc: object, _p: object) -> None:
        with acked_event:
            acked[mid] = time.perf_counter()
            acked_event.notify_all()

    client = _client(f"bench-probe-{uuid.uuid4().hex[:8]}", mqtt_url)
    client.on_publish = on_publish
    out: list[float] = []
    try:
        time.sleep(1.0)  # let the background load settle
        for n in range(probes):
            fingerprint, topic, payload = _probe_envelope(n)
            mid = client.publish(topic, payload, qos=1).mid
            with acked_event:
                acked_event.wait_for(lambda m=mid: m in acked, timeout=10)  # type: ignore[misc]
            puback = acked.pop(mid)
            path = f"/api/v1/alarms/{urllib.parse.quote(fingerprint, safe='/')}"
            while server.get(path, token)[0] != 200:
                if time.perf_counter() - puback > 10:
                    raise RuntimeError(f"alarm {fingerprint} not readable after 10 s")
                time.sleep(0.002)
            out.append(time.perf_counter() - puback)
            time.sleep(0.1)
    finally:
        stop.set()
        loader.join(5)
        client.loop_stop()
        client.disconnect()
    return out


def broker() -> Mosquitto:
    """A fresh broker per phase: a stopped ingest process keeps its persistent session, and with
    it its place in the share group, whose messages the broker queues for it until it returns."""
    return Mosquitto(["max_inflight_messages 0", "max_queued_messages 0"])


def _latency_figures(out: dict[str, float], prefix: str, found: Sequence[float]) -> None:
    out[f"{prefix}_latency_p50_ms"] = statistics.median(found) * 1000
    out[f"{prefix}_latency_p99_ms"] = (
        statistics.quantiles(found, n=100, method="inclusive")[98] * 1000
    )
    out[f"{prefix}_latency_max_ms"] = max(found) * 1000


def influx_rate(pg: Postgres, payloads: Sequence[tuple[str, bytes]], workdir: Path) -> float:
    """Readings/s of one process writing PostgreSQL and VictoriaMetrics (InfluxDB write API)."""
    pg.create_database("influx")
    url = pg.url("influx", driver="postgresql+asyncpg")
    asyncio.run(_prepare(url))
    with VictoriaMetrics() as vm, broker() as mq:
        settings = {
            "STEWARD_TELEMETRY_STORE": "influx",
            "STEWARD_INFLUX_URL": vm.url,
            "STEWARD_INFLUX_BUCKET": INFLUX_BUCKET,
            "STEWARD_INFLUX_QUERY": "promql",
        }
        with serving(url, mq.url, "bench-influx", workdir, settings) as server:
            return stored_rate(mq.url, [server], payloads)[0]


def run(
    count: int = 600, probes: int = 100, events: int = 2, *, influx: bool = False
) -> dict[str, float]:
    """Every figure; `count` envelopes of 100 readings and `events` new alarms each per phase.

    `influx` adds the phase writing telemetry to VictoriaMetrics.
    """
    out: dict[str, float] = {}
    payloads = envelopes(count, events)
    with tempfile.TemporaryDirectory(prefix="steward-bench-mqtt-") as tmp:
        work = Path(tmp)
        with broker() as mq:
            out["relay_readings_per_s"] = relay_rate(mq.url, payloads)

        sqlite_url = f"sqlite+aiosqlite:///{work}/ingest.db"
        token = asyncio.run(_prepare(sqlite_url))
        with broker() as mq, serving(sqlite_url, mq.url, "bench-sqlite", work) as server:
            out["sqlite_readings_per_s"] = stored_rate(mq.url, [server], payloads)[0]
            _latency_figures(out, "sqlite", latencies(mq.url, server, token, probes))
            out["sqlite_peak_rss_mb"] = server.peak_rss_mb()

        with Postgres() as pg:
            pg.create_database("one")
            pg.create_database("two")
            one_url = pg.url("one", driver="postgresql+asyncpg")
            token = asyncio.run(_prepare(one_url))
            with broker() as mq, serving(one_url, mq.url, "bench-pg-1", work) as server:
                out["postgres_readings_per_s"] = stored_rate(mq.url, [server], payloads)[0]
                _latency_figures(out, "postgres", latencies(mq.url, server, token, probes))
                out["postgres_peak_rss_mb"] = server.peak_rss_mb()
            two_url = pg.url("two", driver="postgresql+asyncpg")
            asyncio.run(_prepare(two_url))
            with (
                broker() as mq,
                serving(two_url, mq.url, "bench-pg-a", work) as a,
                serving(two_url, mq.url, "bench-pg-b", work) as b,
            ):
                rate, shares = stored_rate(mq.url, [a, b], payloads)
                out["postgres_two_processes_readings_per_s"] = rate
                out["postgres_two_processes_smaller_share"] = min(shares)
                out["postgres_two_processes_peak_rss_mb"] = max(a.peak_rss_mb(), b.peak_rss_mb())
            if influx:
                out["postgres_influx_readings_per_s"] = influx_rate(pg, payloads, work)
    relay = out["relay_readings_per_s"]
    out["sqlite_ratio_relay"] = out["sqlite_readings_per_s"] / relay
    out["postgres_ratio_relay"] = out["postgres_readings_per_s"] / relay
    out["postgres_two_processes_ratio_relay"] = out["postgres_two_processes_readings_per_s"] / relay
    if influx:
        out["postgres_influx_ratio_relay"] = out["postgres_influx_readings_per_s"] / relay
    return out


def main() -> None:
    influx = "--influx" in sys.argv[1:]
    args = [a for a in sys.argv[1:] if a != "--influx"]
    count = int(args[0]) if len(args) > 0 else 600
    probes = int(args[1]) if len(args) > 1 else 100
    events = int(args[2]) if len(args) > 2 else 2
    options = {"envelopes": count, "probes": probes, "alarm_events_per_envelope": events}
    print(json.dumps({**options, "influx": influx}))
    for name, value in run(count, probes, events, influx=influx).items():
        print(f"{name:40} {value:14,.2f}")


if __name__ == "__main__":
    main()
