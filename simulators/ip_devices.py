"""A SIA DC-09 transmitter: an alarm panel's IP communicator sending to a receiver's TCP port.

Each message waits for the receiver's reply with the same sequence number: `ACK` ends it, `NAK` or
`DUH` or silence for `timeout_s` sends it again (at most `retries` more times). The connection is
opened on demand and re-opened after the receiver drops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

from firmware_adapters.errors import DecodeError
from firmware_adapters.framing.base import StreamBuffer
from firmware_adapters.framing.sia_dc09 import SiaDc09Framer, parse_message

log = logging.getLogger(__name__)

CODEC_ID = "ip.sia.dc09"


@dataclass(slots=True)
class TransmitterStats:
    """What the transmitter did."""

    sent: int = 0
    acked: int = 0
    retries: int = 0
    failed: int = 0
    replies: Counter[str] = field(default_factory=Counter)


class SiaDc09Transmitter:
    """Sends DC-09 messages to `host:port` and waits for each ACK (see the module docstring)."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 5.0, retries: int = 3) -> None:
        """Send to a receiver at `host:port`."""
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self.retries = retries
        self.stats = TransmitterStats()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buffer = StreamBuffer(SiaDc09Framer())

    async def _connect(self) -> None:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._buffer = StreamBuffer(SiaDc09Framer())

    async def close(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError as err:
                log.debug("closing the receiver connection: %s", err)
        self._reader = self._writer = None

    async def send(self, message: bytes) -> bool:
        """Send one message, retrying until ACKed; True when the receiver acknowledged it."""
        try:
            sequence = parse_message(CODEC_ID, message).sequence
        except DecodeError:
            sequence = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            try:
                await self._connect()
                assert self._writer is not None  # noqa: S101 - set by _connect
                self._writer.write(message)
                await self._writer.drain()
                self.stats.sent += 1
                if await self._await_ack(sequence):
                    self.stats.acked += 1
                    return True
            except OSError as err:
                log.debug("receiver %s:%d: %s", self.host, self.port, err)
                await self.close()
                await asyncio.sleep(min(self.timeout_s, 0.5))
        self.stats.failed += 1
        return False

    async def _await_ack(self, sequence: str | None) -> bool:
        assert self._reader is not None  # noqa: S101 - set by _connect
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    data = await self._reader.read(1024)
            except TimeoutError:
                return False
            if not data:
                await self.close()
                return False
            for raw in self._buffer.feed(data):
                reply = parse_message(CODEC_ID, raw)
                self.stats.replies[reply.id] += 1
                if reply.id == "ACK" and (sequence is None or reply.sequence == sequence):
                    return True
                if reply.id in {"NAK", "DUH"}:
                    return False
        return False
