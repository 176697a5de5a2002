"""The cloud server as a real process, a paced QoS 1 publisher and the headless browser's flags.

Shared by the tests (`tests/support/ingest_server.py`, `tests/support/console_browser.py`) and the
benchmarks (`bench/console.py`): `IngestServer` starts `cloud-ingest serve` from this checkout on a
free port with its log in a file and waits for `/readyz`; `Publisher` sends messages at QoS 1 as a
gateway's uplink does and waits for every PUBACK; `CHROMIUM` and `CHROMIUM_FLAGS` start Debian's
Chromium headless with nothing fetched from the network. Only the standard library and paho are
needed here; the server itself runs in its own interpreter.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Final
from uuid import uuid4

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.services import Mosquitto, free_port

REPO: Final = Path(__file__).resolve().parents[1]
CHROMIUM: Final = "/usr/bin/chromium"
"""Debian's Chromium; no browser is downloaded."""
CHROMIUM_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
)
_SAMPLE: Final = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


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


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    """Status and body of `GET url` (an error status is returned, not raised)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


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
            self.proc = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
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
        if not self.alive():
            raise AssertionError(f"serve {self.client_id} exited: {self.log_text()[-3000:]}")
        try:
            return http_get(f"{self.url}/readyz", timeout=2)[0] == HTTPStatus.OK
        except OSError:
            return False

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """`kill -9`: nothing is flushed, nothing acknowledged."""
        if self.proc is None:
            raise RuntimeError("the server was not started")
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
        text = http_get(f"{self.url}/metrics")[1]
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

    def get_json(self, path: str, token: str) -> object:
        """`GET path` with a bearer token, its JSON body (an error status raises)."""
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read())


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
        if self.is_alive():
            raise AssertionError("the publisher did not finish")
        if self.error is not None:
            raise self.error
