"""Real services on free loopback ports, for tests and demos: Mosquitto, PostgreSQL, VictoriaMetrics.

Each class starts the real program in its own temporary directory, waits until it answers, and stops it
again. Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service could not be started or did not answer."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None, timeout: float, log: Path
) -> None:
    """Wait until something accepts TCP connections on `port`, or fail with the service's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"exited with {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
            return
        time.sleep(0.01)
    raise ServiceError(f"port {port} did not open within {timeout} s: {_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 10
) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Mosquitto:
    """A Mosquitto broker with its own config, persistence and log in a temporary directory.

    The port stays the same across `restart()`, so clients reconnect to the same address; persistence
    is on, so persistent sessions and retained messages survive a restart, as on a real gateway.
    """

    def __init__(self, extra_config: Sequence[str] = (), *, port: int | None = None) -> None:
        """Prepare a broker; `extra_config` lines are appended to the generated mosquitto.conf."""
        if shutil.which("mosquitto") is None:
            raise ServiceError("mosquitto is not installed (make demo and make test install it)")
        self.host = LOOPBACK
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="steward-mosquitto-"))
        self.log = self.workdir / "mosquitto.log"
        self.extra_config = list(extra_config)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`mqtt://127.0.0.1:PORT`."""
        return f"mqtt://{self.host}:{self.port}"

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {LOOPBACK}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            # Run as root, mosquitto drops to user `mosquitto`, which cannot use this 0700 directory.
            lines.append("user root")
        lines += self.extra_config
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> Self:
        """Start the broker and wait until it accepts connections."""
        conf = self._write_config()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed program, our own arguments
                ["mosquitto", "-c", str(conf)],  # noqa: S607 - found on PATH like any service
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        wait_for_port(self.port, self.proc, 10, self.log)
        return self

    def stop(self) -> None:
        """Stop the broker (SIGTERM, saving its persistence file)."""
        _stop(self.proc)
        self.proc = None

    def kill(self) -> None:
        """Kill the broker without letting it save anything."""
        _stop(self.proc, signal.SIGKILL)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the broker with SIGSTOP: TCP stays open, nothing is answered (a silent partition)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused broker."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the broker and remove its directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _pg_bin(name: str) -> str:
    for version in ("17", "16", "15"):
        path = Path(f"/usr/lib/postgresql/{version}/bin/{name}")
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise ServiceError(f"PostgreSQL's {name} is not installed (make test installs it)")
    return found


class Postgres:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl), run as user `postgres` when we are root."""

    def __init__(self) -> None:
        """Prepare a cluster directory and pick a port."""
        self.host = LOOPBACK
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="steward-pg-"))
        self.data = self.workdir / "data"
        self.log = self.workdir / "postgres.log"
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.workdir, user="postgres")

    def _run(self, args: list[str]) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if self._as_postgres else []) + args
        result = subprocess.run(cmd, capture_output=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise ServiceError(f"{args[0]} failed: {result.stderr.decode(errors='replace')}")

    def start(self) -> Self:
        """Create the cluster and start the server."""
        self._run(
            [
                _pg_bin("initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                self.user,
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        options = (
            f"-h {LOOPBACK} -p {self.port} -k {self.workdir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-o",
                options,
                "start",
            ]
        )
        wait_for_port(self.port, None, 20, self.log)
        return self

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the server (fast: clients are disconnected), stay down `down_s`, start it again.

        The cluster, its data and its port are kept, as when a database server is restarted.
        """
        pg_ctl = _pg_bin("pg_ctl")
        self._run([pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])
        time.sleep(down_s)
        options = (
            f"-h {LOOPBACK} -p {self.port} -k {self.workdir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run([pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start"])
        wait_for_port(self.port, None, 20, self.log)

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        """A SQLAlchemy/libpq URL for `database`, e.g. driver `postgresql+asyncpg`."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        """Create an empty database."""
        self._run(
            [_pg_bin("createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user, name]
        )

    def stop(self) -> None:
        """Stop the server (immediate) and remove the cluster."""
        with contextlib.suppress(ServiceError):
            self._run([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class VictoriaMetrics:
    """A VictoriaMetrics server: the InfluxDB v2 write API target (`/api/v2/write`) for tests.

    InfluxDB 2.x itself is the documented production target; VictoriaMetrics accepts the same writes
    from influxdb-client. Call `flush()` before reading back, or reads may be cached empty.
    """

    def __init__(self) -> None:
        """Prepare a storage directory and pick a port."""
        if shutil.which("victoria-metrics") is None:
            raise ServiceError("victoria-metrics is not installed (make test installs it)")
        self.host = LOOPBACK
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="steward-vm-"))
        self.log = self.workdir / "vm.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Start the server and wait for `/health`."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603
                [  # noqa: S607
                    "victoria-metrics",
                    f"-httpListenAddr={self.host}:{self.port}",
                    f"-storageDataPath={self.workdir / 'data'}",
                    "-retentionPeriod=100y",
                    # One sample per series and millisecond, as InfluxDB keeps one point per
                    # series and time: a point written twice (a redelivered batch) counts once.
                    "-dedup.minScrapeInterval=1ms",
                    "-loggerLevel=ERROR",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        wait_for_port(self.port, self.proc, 20, self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if self.get("/health").strip() == "OK":
                    return self
            time.sleep(0.02)
        raise ServiceError(f"victoria-metrics not healthy: {_tail(self.log)}")

    def get(self, path: str) -> str:
        """GET a path on the server and return the body."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:  # noqa: S310 - loopback
            body: bytes = response.read()
            return body.decode()

    def flush(self) -> None:
        """Make recent writes visible to reads at once."""
        self.get("/internal/force_flush")

    def export(self, match: str) -> str:
        """Return `/api/v1/export` JSON lines for a series selector (after a flush)."""
        self.flush()
        return self.get("/api/v1/export?" + urllib.parse.urlencode({"match[]": match}))

    def stop(self) -> None:
        """Stop the server and remove its storage."""
        _stop(self.proc)
        self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
