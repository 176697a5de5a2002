"""`cloud-ingest serve` and `cloud-ingest db upgrade` as processes: real Mosquitto, SQLite, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_ingest.cli import listening_socket
from simulators.services import Mosquitto

REPO = Path(__file__).resolve().parents[2]
EnvelopeFactory = Callable[..., bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cloud_ingest(args: Sequence[str], cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if not k.startswith("STEWARD_")}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "cloud_ingest.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
    proc = cloud_ingest(args, cwd)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@contextmanager
def serving(args: Sequence[str], cwd: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """Start `serve`, wait until `/readyz` answers 200; kill it if the test leaves it running."""
    proc = cloud_ingest(["serve", "--port", str(port), *args], cwd)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve never became ready"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def publish(broker: Mosquitto, topic: str, payloads: Sequence[bytes]) -> None:
    """Publish at QoS 1 and wait for every PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def metric(port: int, name: str) -> float:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.integration
def test_serve_stores_a_published_envelope_once_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: Mosquitto, make_envelope: EnvelopeFactory
) -> None:
    port = free_port()
    db = tmp_path / "ingest.db"
    args = ["--mqtt", mosquitto.url, "--db", f"sqlite+aiosqlite:///{db}"]
    payload = make_envelope(gateway="gw-1", readings=5, alarm_events=1)
    with serving(args, tmp_path, port) as proc:
        publish(mosquitto, "steward/v1/gw-1/up", [payload, payload])  # the second: a redelivery
        deadline = time.monotonic() + 15
        while metric(port, "steward_ingest_messages_total") < 2:
            assert time.monotonic() < deadline, "the envelopes were never settled"
            time.sleep(0.05)
        assert metric(port, "steward_ingest_readings_total") == 5
        assert metric(port, "steward_ingest_alarm_events_total") == 1
        assert metric(port, "steward_ingest_duplicates_total") == 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    with sqlite3.connect(db) as connection:
        stored = connection.execute("SELECT device_id, value, ts FROM readings").fetchall()
        events = connection.execute("SELECT count(*) FROM alarm_events").fetchone()
    assert len(stored) == len(set(stored)) == 5
    assert events == (1,)


def test_serve_on_the_defaults_stops_on_ctrl_c_with_130(tmp_path: Path) -> None:
    port = free_port()
    with serving([], tmp_path, port) as proc:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert (tmp_path / "var" / "steward.db").is_file()  # the embedded default, migrated


def test_serve_refuses_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(["serve", "--port", str(port)], tmp_path)
    assert code == 1
    assert err.strip().splitlines() == [
        f"cloud-ingest serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_serve_refuses_bad_settings_naming_their_source(tmp_path: Path) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("host: 127.0.0.1\nmqtt_url: http://broker\n", encoding="utf-8")
    code, _, err = run(["serve", "--config", str(config)], tmp_path)
    assert code == 2
    assert err.strip().startswith(f"cloud-ingest serve: error: {config}:2: mqtt_url: broker URL")
    code, _, err = run(["serve", "--db", "mysql://x/y"], tmp_path)
    assert (code, err.count("\n")) == (2, 1)
    assert "--db: unsupported database 'mysql'" in err
    code, _, err = run(["serve", "--config", str(tmp_path / "none.yaml")], tmp_path)
    assert code == 2
    assert "none.yaml: cannot read" in err


def test_db_upgrade_creates_the_tables_in_an_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    code, out, err = run(["db", "upgrade", "--db", f"sqlite+aiosqlite:///{db}"], tmp_path)
    assert code == 0, err
    assert "at the newest revision" in out
    with sqlite3.connect(db) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"readings", "alarm_events", "alarm_instances", "alembic_version"} <= tables
    again, _, _ = run(["db", "upgrade", "--db", f"sqlite+aiosqlite:///{db}"], tmp_path)
    assert again == 0


def test_db_upgrade_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://steward@127.0.0.1:{free_port()}/steward"
    code, _, err = run(["db", "upgrade", "--db", url], tmp_path)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"cloud-ingest db upgrade: error: cannot migrate {url}")


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["db"], []])
def test_every_command_has_help(tmp_path: Path, command: list[str]) -> None:
    code, out, _ = run([*command, "--help"], tmp_path)
    assert code == 0
    assert out.startswith("usage: cloud-ingest")


async def test_connections_to_the_serve_socket_send_without_delay() -> None:
    """Each answer goes out at once (TCP_NODELAY), not after the client's delayed ACK (~40 ms)."""
    listening = listening_socket("127.0.0.1", 0)
    accepted: asyncio.Queue[int] = asyncio.Queue()

    async def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        await accepted.put(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listening)
    try:
        _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
        assert await asyncio.wait_for(accepted.get(), 5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
