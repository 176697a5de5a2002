"""Virtual serial devices on pseudo-terminals: they write what the real device writes.

- `Gbt26875Transmitter`: a GB/T 26875.3 user information transmission device. Every `send data`
  frame waits for the receiver's confirm (same serial number, command 3); without one it is sent
  again after `timeout_s` (the standard recommends at most 10 s and 3 retries), and at once after a
  deny (command 6).
- `LineDevice`: a device that only talks (a Contact ID panel's receiver line output): writes each
  emission as it comes, including split writes and garbage from faults.

Both work on a `PtyPort`; the agent opens the port's link like a real UART.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field

from firmware_adapters.errors import DecodeError
from firmware_adapters.framing.base import StreamBuffer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from firmware_adapters.gbt26875.frame import Command, parse_frame
from simulators.serial_pty import PtyError, PtyPort

log = logging.getLogger(__name__)

GBT_TIMEOUT_S = 10.0
GBT_RETRIES = 3


@dataclass(slots=True)
class LinkStats:
    """What a virtual device did on its line."""

    frames: int = 0
    bytes: int = 0
    confirmed: int = 0
    retries: int = 0
    unconfirmed: int = 0
    lost_unplugged: int = 0
    replies: Counter[str] = field(default_factory=Counter)


class LineDevice:
    """A serial device that only writes (no handshake)."""

    def __init__(self, port: PtyPort) -> None:
        """Talk on `port` (plugged in by the caller)."""
        self.port = port
        self.stats = LinkStats()

    async def send(self, data: bytes) -> bool:
        """Write `data`; returns False (and counts it) while the port is unplugged."""
        try:
            self.port.write(data)
        except (PtyError, OSError):
            self.stats.lost_unplugged += 1
            return False
        self.stats.frames += 1
        self.stats.bytes += len(data)
        return True


class Gbt26875Transmitter(LineDevice):
    """A GB/T 26875.3 transmitter that waits for confirms and retries (see the module docstring)."""

    def __init__(
        self, port: PtyPort, *, timeout_s: float = GBT_TIMEOUT_S, retries: int = GBT_RETRIES
    ) -> None:
        """Talk on `port`; wait `timeout_s` for each confirm, send at most `retries` more times."""
        super().__init__(port)
        self.timeout_s = timeout_s
        self.retries = retries
        self._replies: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        self._buffer = StreamBuffer(Gbt26875Framer())
        self._reader_fd: int | None = None
        self._reader_plug = -1
        """The `plug_count` of the pty being read: a new pty may reuse the old fd's number."""

    def _on_readable(self) -> None:
        try:
            data = os.read(self.port.master_fd, 4096)
        except (BlockingIOError, PtyError):
            return
        except OSError:
            data = b""
        if not data:
            self._stop_reading()
            return
        for raw in self._buffer.feed(data):
            frame = parse_frame(raw)
            known = frame.command in {c.value for c in Command}
            kind = Command(frame.command).name.lower() if known else "other"
            self.stats.replies[kind] += 1
            if frame.command in {Command.CONFIRM, Command.DENY}:
                self._replies.put_nowait((frame.command, frame.serial))

    def _start_reading(self) -> None:
        if self._reader_fd is None and self.port.plugged:
            self._reader_fd = self.port.master_fd
            self._reader_plug = self.port.plug_count
            asyncio.get_running_loop().add_reader(self._reader_fd, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reader_fd is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._reader_fd)
            self._reader_fd = None

    def close(self) -> None:
        """Stop listening for replies."""
        self._stop_reading()

    async def send(self, data: bytes) -> bool:
        """Send one frame and wait for its confirm, retrying; True once confirmed.

        Frames that are not well-formed (a fault corrupted them) are written once without waiting:
        the receiver discards them, as it would on a real line.
        """
        try:
            serial = parse_frame(data).serial
        except DecodeError:
            return await super().send(data)
        for attempt in range(self.retries + 1):
            if self.port.plugged and self._reader_plug != self.port.plug_count:
                self._stop_reading()  # plugged in again since: listen on the new pty
            self._start_reading()
            if attempt:
                self.stats.retries += 1
            if not await super().send(data):
                return False
            if await self._wait_confirm(serial):
                self.stats.confirmed += 1
                return True
        self.stats.unconfirmed += 1
        log.debug("frame %d unconfirmed after %d attempts", serial, self.retries + 1)
        return False

    async def _wait_confirm(self, serial: int) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    command, got = await self._replies.get()
            except TimeoutError:
                return False
            if got == serial:
                return command == Command.CONFIRM  # a deny is answered by sending again at once
        return False
