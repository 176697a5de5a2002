"""A SIA DC-09 receiver: alarm panels connect over TCP, each message is acknowledged or refused.

A message runs from `<LF>` to `<CR>`. The receiver writes the ACK only once the pipeline has committed
the message's readings and alarms to the outbox, so an acknowledged event survives `kill -9` (when the
queue is full the panel simply waits for its ACK); a message the builder refuses (bad CRC, bad length,
timestamp) gets its NAK, is counted as a decode error, and the panel repeats it; an intact message
the codec cannot use gets DUH and goes to the dead letters through the pipeline, and so does one
whose answer fails unforeseen (logged with its traceback once per kind).
Panels are bound to devices by account number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Final

from core.types import RawFrame
from edge_agent.dead_letter import FailureLog
from edge_agent.sources.base import SourceContext
from firmware_adapters.codecs.ip.sia_dc09 import CODEC, CODEC_ID, ack_reply, duh_reply, reply_for
from firmware_adapters.errors import DecodeError, DecodeReason

_LOG = logging.getLogger(__name__)
_MAX_MESSAGE: Final = 1024
_CLOSE_WAIT_S: Final = 2.0
"""How long a panel's connection may take to end after its line is closed at shutdown."""
_ACCOUNT = re.compile(rb"#([0-9A-Fa-f]{3,16})\[")

Dc09Answer = Callable[[bytes, datetime], tuple[bytes, str | None]]
"""Given one message (without `<LF>`/`<CR>`) and the time, return the complete reply to send and
`None` when the message is accepted (ACK), or the refusal reason (`DecodeReason` value) with NAK/DUH."""

_RETRIED: Final = frozenset({DecodeReason.CHECKSUM.value, DecodeReason.LENGTH.value})


def sia_dc09_answer(message: bytes, now: datetime) -> tuple[bytes, str | None]:
    """Answer with the `ip.sia.dc09` codec: ACK a decodable message, NAK a damaged one, else DUH."""
    try:
        CODEC.decode(RawFrame("dc09", CODEC_ID, message, now))
    except DecodeError as err:
        return reply_for(message, now), err.reason.value
    return ack_reply(message, now), None


AccountLookup = Callable[[str], str | None]
"""Returns the device id bound to a panel account number, or None."""


def account_of(message: bytes) -> str | None:
    """Return the account number of a DC-09 message (`#1234[`), or None if it carries none."""
    match = _ACCOUNT.search(message)
    return match.group(1).decode("ascii").upper() if match else None


class Dc09Receiver:
    """A TCP server that receives DC-09 messages from alarm panels."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        codec_id: str,
        answer: Dc09Answer,
        lookup: AccountLookup,
        ctx: SourceContext,
        idle_timeout_s: float = 300.0,
    ) -> None:
        """Prepare the receiver; nothing listens until `run()`."""
        self.name = name
        self.host = host
        self.port = port
        self.codec_id = codec_id
        self.answer = answer
        self.lookup = lookup
        self.ctx = ctx
        self.idle_timeout_s = idle_timeout_s
        self.listening = asyncio.Event()
        self.bound_port = 0
        self.acked = 0
        self.refused = 0
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._failures = FailureLog(_LOG)

    async def run(self) -> None:
        """Listen until cancelled."""
        server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=_MAX_MESSAGE * 4
        )
        self.bound_port = server.sockets[0].getsockname()[1]
        self.listening.set()
        _LOG.info("dc09 %s: listening on %s:%s", self.name, self.host, self.bound_port)
        try:
            async with server:
                await server.serve_forever()
        finally:
            self.listening.clear()
            # Closing the server leaves open connections to themselves (Python 3.11): close each
            # panel's line so its handler ends as on a hang-up. A handler is cancelled only if it
            # does not end by itself (3.11 logs a cancelled connection handler as an error).
            for writer in self._connections.values():
                writer.close()
            pending = set(self._connections)
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=_CLOSE_WAIT_S)
                for task in stuck:
                    task.cancel()
                await asyncio.gather(*stuck, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        peer = str(writer.get_extra_info("peername"))
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout_s):
                        chunk = await reader.readuntil(b"\r")
                except (
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    TimeoutError,
                    OSError,
                ):
                    return
                message = chunk.rstrip(b"\r").lstrip(b"\n")
                if not message:
                    continue
                reply = await self._handle(message, peer)
                writer.write(reply)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._connections.pop(task, None)

    async def _handle(self, message: bytes, peer: str) -> bytes:
        now = self.ctx.clock.now()
        try:
            reply, refusal = self.answer(message, now)
        except Exception as err:  # noqa: BLE001 - one message must not end the panel's connection
            # The pipeline decodes it again and dead-letters it; the panel gets DUH, not a repeat.
            self._failures.report(self.codec_id, f"answering {peer}", err)
            reply, refusal = duh_reply(message), DecodeReason.CODEC_ERROR.value
        if refusal in _RETRIED:
            # Damaged in transit: the NAK makes the panel send it again; count it, keep nothing.
            self.refused += 1
            self.ctx.stats.count_decode_error(self.codec_id, refusal)
            return reply
        account = account_of(message)
        device = (self.lookup(account) if account else None) or (
            f"{self.name}/{account}" if account else self.name
        )
        meta = {"device_id": device, "peer": peer}
        if account:
            meta["account"] = account
        # Accepted messages, and intact ones the codec does not understand (DUH, dead-lettered by
        # the pipeline), are queued before the reply goes out.
        await self.ctx.submit_acknowledged(RawFrame(self.name, self.codec_id, message, now, meta))
        if refusal is None:
            self.acked += 1
        else:
            self.refused += 1
        return reply
