"""A serial port read as a stream of frames (pyserial-asyncio-fast), reopened when unplugged.

Configure the stable `/dev/serial/by-id/...` path: after a USB adapter is pulled and put back, the
kernel may give it another ttyUSB number, but the by-id link follows it. While the port is gone the
source reports a fault for its device once, retries with jittered backoff, and clears the fault when
the port opens again. Framing garbage is consumed and counted as decode errors of the codec. A
framer or reply builder that fails unforeseen is logged with its traceback (once per kind) and
counted as `codec_error` (the bytes the framer held are dead-lettered); the port keeps being read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import datetime

import serial
import serial_asyncio_fast

from core.clock import wall_interval
from core.types import RawFrame
from edge_agent.dead_letter import FailureLog
from edge_agent.sources.base import Backoff, Reply, SourceContext
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.framing.base import Framer, StreamBuffer

_LOG = logging.getLogger(__name__)
_READ_CHUNK = 4096


class SerialSource:
    """Reads one serial port, splits frames with the codec's framer, answers bidirectional devices."""

    def __init__(
        self,
        *,
        name: str,
        port: str,
        codec_id: str,
        framer: Framer,
        ctx: SourceContext,
        device_id: str | None = None,
        baudrate: int = 9600,
        reply: Reply | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """Prepare the source; nothing is opened until `run()`."""
        self.name = name
        self.port = port
        self.codec_id = codec_id
        self.device_id = device_id or name
        self.baudrate = baudrate
        self.reply = reply
        self.ctx = ctx
        self.backoff = backoff or Backoff(first=0.2, maximum=30.0)
        self._buffer = StreamBuffer(framer)
        self._counted: Counter[str] = Counter()
        self._failures = FailureLog(_LOG)
        self.opened = asyncio.Event()
        self.open_count = 0
        self.replies_sent = 0

    async def run(self) -> None:
        """Open, read, and reopen forever (until cancelled)."""
        faulty = False
        while True:
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self.port, baudrate=self.baudrate
                )
            except (OSError, serial.SerialException) as err:
                _LOG.debug("serial %s: cannot open %s: %s", self.name, self.port, err)
                if not faulty:
                    faulty = True
                    await self.ctx.fault(self.device_id, True)  # noqa: FBT003 - positional by protocol
                await asyncio.sleep(wall_interval(self.ctx.clock, self.backoff.next_delay()))
                continue
            self.open_count += 1
            self.backoff.reset()
            if faulty:
                faulty = False
                await self.ctx.fault(self.device_id, False)  # noqa: FBT003
            self.opened.set()
            _LOG.info("serial %s: opened %s", self.name, self.port)
            try:
                await self._pump(reader, writer)
            finally:
                self.opened.clear()
                with contextlib.suppress(Exception):
                    writer.close()
            _LOG.warning("serial %s: lost %s", self.name, self.port)
            faulty = True
            await self.ctx.fault(self.device_id, True)  # noqa: FBT003
            await asyncio.sleep(wall_interval(self.ctx.clock, self.backoff.next_delay()))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                data = await reader.read(_READ_CHUNK)
            except (OSError, serial.SerialException):
                return
            if not data:
                return
            received_at = self.ctx.clock.now()
            for frame in self._split(data, received_at):
                hand_on = self.ctx.submit if self.reply is None else self.ctx.submit_acknowledged
                await hand_on(
                    RawFrame(
                        source_id=self.name,
                        codec_id=self.codec_id,
                        payload=frame,
                        received_at=received_at,
                        meta={"device_id": self.device_id, "port": self.port},
                    )
                )
                self._answer(frame, writer)
            self._count_framing_errors()

    def _split(self, data: bytes, received_at: datetime) -> list[bytes]:
        """The frames `data` completes; a framer that fails unforeseen loses only what it held."""
        frames: list[bytes] = []
        try:
            frames.extend(self._buffer.feed(data))
        except Exception as err:  # noqa: BLE001 - a framer bug must not stop the port
            self._failures.report(self.codec_id, f"splitting the stream of {self.port}", err)
            meta = {"device_id": self.device_id, "port": self.port}
            self.ctx.refuse(
                RawFrame(self.name, self.codec_id, data, received_at, meta),
                DecodeReason.CODEC_ERROR.value,
                f"framer: {type(err).__name__}: {err}",
            )
            self._buffer = StreamBuffer(self._buffer.framer)  # start over from the next read
        return frames

    def _answer(self, frame: bytes, writer: asyncio.StreamWriter) -> None:
        if self.reply is None:
            return
        try:
            answer = self.reply(frame)
        except (ValueError, DecodeError):
            _LOG.debug("serial %s: no reply for a frame", self.name)
            return
        except Exception as err:  # noqa: BLE001 - a reply bug must not stop the port
            # The frame itself went to the pipeline, which decodes (or dead-letters) it.
            self._failures.report(self.codec_id, f"building the reply on {self.port}", err)
            self.ctx.stats.count_decode_error(self.codec_id, DecodeReason.CODEC_ERROR.value)
            return
        if answer:
            writer.write(answer)
            self.replies_sent += 1

    def _count_framing_errors(self) -> None:
        errors = self._buffer.framer.errors
        for reason, total in errors.items():
            delta = total - self._counted[reason]
            if delta:
                self.ctx.stats.count_decode_error(self.codec_id, reason, delta)
                self._counted[reason] = total
