"""Pseudo-terminals that look like UARTs: a stable symlink the agent opens, and unplug/replug.

Two kinds:
- `PtyPort`: `os.openpty()`; the simulator writes to and reads from the master fd, the agent opens the
  symlink (which points at the slave, `/dev/pts/N`). No extra process.
- `SocatPair`: two linked ptys made by `socat`, for libraries that want a path on both sides (the
  pymodbus server). Started with `stdout=DEVNULL` so a dying parent never hangs a pipe.

Baud rates are ignored by ptys; devices that care add their own delays.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import tty
from pathlib import Path
from types import TracebackType
from typing import Self


class PtyError(RuntimeError):
    """A pseudo-terminal could not be created or is not plugged in."""


def _replace_link(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(link.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    tmp.replace(link)  # atomic: the agent never sees a missing link while we replug


class PtyPort:
    """One virtual UART: the simulator owns the master end, the agent opens `link`.

    The slave end is held open by the simulator too, so bytes written before the agent opens the port
    wait in the line buffer (as in a UART FIFO) instead of failing with EIO.
    """

    def __init__(self, link: Path | str) -> None:
        """Prepare a port whose slave will be reachable at `link` once plugged in."""
        self.link = Path(link)
        self._master: int | None = None
        self._slave: int | None = None
        self.plug_count = 0

    @property
    def plugged(self) -> bool:
        """Whether the port exists (the link resolves to a live pty)."""
        return self._master is not None

    @property
    def master_fd(self) -> int:
        """The simulator's end; raises `PtyError` while unplugged."""
        if self._master is None:
            raise PtyError(f"{self.link} is unplugged")
        return self._master

    @property
    def slave_name(self) -> str:
        """The `/dev/pts/N` path the link points at."""
        return os.ttyname(self._slave_fd())

    def _slave_fd(self) -> int:
        if self._slave is None:
            raise PtyError(f"{self.link} is unplugged")
        return self._slave

    def plug(self) -> Self:
        """Create the pty (raw mode, no echo) and point the link at it."""
        if self._master is not None:
            return self
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        _replace_link(self.link, os.ttyname(slave))
        self.plug_count += 1
        return self

    def unplug(self) -> None:
        """Pull the cable: close both ends and remove the link; an open agent fd sees EIO/hang-up."""
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def replug(self) -> Self:
        """Unplug (if plugged) and plug in again: a new pty behind the same link."""
        self.unplug()
        return self.plug()

    def write(self, data: bytes) -> int:
        """Write all of `data` to the line (blocking briefly if the line buffer is full)."""
        view = memoryview(data)
        written = 0
        while written < len(view):
            try:
                written += os.write(self.master_fd, view[written:])
            except BlockingIOError:
                time.sleep(0.001)
        return written

    def read_available(self, limit: int = 65_536) -> bytes:
        """Return whatever the agent has written to the line so far (possibly nothing)."""
        try:
            return os.read(self.master_fd, limit)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        """Unplug for good."""
        self.unplug()

    def __enter__(self) -> Self:
        return self.plug()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SocatPair:
    """Two linked ptys with stable links: `device_link` (the simulator side) and `agent_link`."""

    def __init__(self, device_link: Path | str, agent_link: Path | str) -> None:
        """Prepare a pair; `start()` runs socat."""
        if shutil.which("socat") is None:
            raise PtyError("socat is not installed")
        self.device_link = Path(device_link)
        self.agent_link = Path(agent_link)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> Self:
        """Start socat and wait until both links exist."""
        for link in (self.device_link, self.agent_link):
            link.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
        self.proc = subprocess.Popen(  # noqa: S603 - fixed program, our own arguments
            [  # noqa: S607 - socat is found on PATH like any tool
                "socat",
                f"pty,raw,echo=0,link={self.device_link}",
                f"pty,raw,echo=0,link={self.agent_link}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not (self.device_link.exists() and self.agent_link.exists()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PtyError(f"socat did not create {self.device_link} and {self.agent_link}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop socat (the links disappear with it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for link in (self.device_link, self.agent_link):
            with contextlib.suppress(FileNotFoundError):
                link.unlink()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
