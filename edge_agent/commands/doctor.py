"""`edge-agent doctor --config FILE`: is this gateway fit to run? One line per check.

Checks: config (and rule files) valid; every configured serial port present; the local and the
uplink broker accept TCP connections; the clock is synchronised (timedatectl, else adjtimex, else
"unknown"); the state directory is writable and its disk has room. Exit 1 if any check FAILs;
WARN and UNKNOWN do not fail.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from edge_agent.commands import Subparsers
from edge_agent.commands.check import validate
from edge_agent.config import DEFAULT_CONFIG_PATH, EdgeConfig

MIN_FREE_BYTES: Final = 100 * 1024 * 1024
_TIME_ERROR: Final = 5
"""adjtimex() return value when the kernel clock is not synchronised."""


class Status(StrEnum):
    """Outcome of one check."""

    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str

    def __str__(self) -> str:
        return f"{self.status.value:<7} {self.name}: {self.detail}"


def register(subparsers: Subparsers) -> None:
    """Add the `doctor` subcommand."""
    parser = subparsers.add_parser("doctor", help="check ports, brokers, clock, disk and config")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="config file")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per network check")
    parser.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    """Run every check, print one line each, return 1 if any failed."""
    failed = False
    for check in diagnose(args.config, args.timeout):
        sys.stdout.write(f"{check}\n")
        failed |= check.status is Status.FAIL
    return 1 if failed else 0


def diagnose(path: Path, timeout: float) -> Iterator[Check]:
    """Yield the result of every check, in report order."""
    config, errors = validate(path)
    if errors:
        yield Check("config", Status.FAIL, f"{len(errors)} error(s); first: {errors[0]}")
    else:
        yield Check("config", Status.OK, f"{path} valid")
    if config is not None:
        yield from _serial_ports(config)
        yield from _brokers(config, timeout)
        yield _disk(Path(config.state_dir))
    yield clock_check()


def _serial_ports(config: EdgeConfig) -> Iterator[Check]:
    ports = [(s.id, s.port) for s in config.sources.serial]
    ports += [(b.id, b.port) for b in config.sources.modbus]
    for name, port in ports:
        if os.path.exists(port):  # noqa: PTH110 - a device path, stat follows the by-id link
            yield Check(f"serial {name}", Status.OK, f"{port} -> {os.path.realpath(port)}")
        else:
            yield Check(f"serial {name}", Status.FAIL, f"{port} not present")
    by_id = Path("/dev/serial/by-id")
    if ports and by_id.is_dir():
        seen = ", ".join(sorted(p.name for p in by_id.iterdir())) or "none"
        yield Check("serial by-id", Status.OK, seen)


def _brokers(config: EdgeConfig, timeout: float) -> Iterator[Check]:
    targets = []
    if config.sources.mqtt is not None:
        targets.append(("local broker", config.sources.mqtt.host, config.sources.mqtt.port))
    targets.append(("uplink broker", config.uplink.host, config.uplink.port))
    for name, host, port in targets:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as err:
            yield Check(name, Status.FAIL, f"{host}:{port} unreachable: {err}")
        else:
            yield Check(name, Status.OK, f"{host}:{port} accepts connections")


def _disk(state_dir: Path) -> Check:
    probe = state_dir if state_dir.exists() else state_dir.parent
    if not probe.exists():
        return Check("state dir", Status.FAIL, f"{state_dir} and its parent do not exist")
    if not os.access(probe, os.W_OK):
        return Check("state dir", Status.FAIL, f"{probe} is not writable")
    usage = shutil.disk_usage(probe)
    detail = f"{probe}: {usage.free / 2**20:.0f} MiB free of {usage.total / 2**20:.0f} MiB"
    if usage.free < MIN_FREE_BYTES:
        return Check("disk", Status.FAIL, detail)
    if usage.free < usage.total * 0.1:
        return Check("disk", Status.WARN, detail + " (under 10 %)")
    return Check("disk", Status.OK, detail)


def clock_check() -> Check:
    """Whether the system clock is synchronised: timedatectl, else adjtimex, else unknown."""
    timedatectl = shutil.which("timedatectl")
    if timedatectl is not None:
        try:
            out = subprocess.run(  # noqa: S603 - fixed program and arguments
                [timedatectl, "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip() in {"yes", "no"}:
            synced = out.stdout.strip() == "yes"
            return Check(
                "clock",
                Status.OK if synced else Status.WARN,
                f"timedatectl: NTPSynchronized={out.stdout.strip()}",
            )
    state = _adjtimex_state()
    if state is None:
        return Check("clock", Status.UNKNOWN, "neither timedatectl nor adjtimex answered")
    if state == _TIME_ERROR:
        return Check("clock", Status.WARN, "adjtimex: kernel clock not synchronised")
    return Check("clock", Status.OK, f"adjtimex: clock state {state}")


def _adjtimex_state() -> int | None:
    """Call adjtimex(2) read-only (modes = 0); return the clock state or None if unavailable."""
    name = ctypes.util.find_library("c")
    if name is None or not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        buffer = ctypes.create_string_buffer(512)  # larger than struct timex on every ABI
        state = int(libc.adjtimex(buffer))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state
