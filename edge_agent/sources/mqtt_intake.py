"""A cheap MQTT intake on the event loop: one socket read per readiness event, packets split here.

aiomqtt reads one MQTT packet per readiness event (three `recv` calls each) and builds an asyncio
object per message; at tens of thousands of messages per second that is most of the gateway's CPU.
`MqttIntake` reads up to `CHUNK_BYTES` with one `recv` into one reused buffer and hands the chunk to
a `ClientSession` (`edge_agent.mqtt_wire`, MQTT 3.1.1 without I/O), which splits it into packets,
appends every PUBLISH's topic and payload to the batch being collected and answers the session's
own packets (CONNACK → SUBSCRIBE, SUBACK, PINGRESP). This module owns the socket, the clock and the
PUBACKs' timing; the session owns the protocol.

What it guarantees: messages arrive in broker order, appended as `(topic, payload)` to a list the
caller takes with `take()`. QoS 1 messages are acknowledged only when the caller says so
(`acknowledge`, after their results are stored), in the order they arrived: one that is not
acknowledged when the connection ends is sent again by the broker (persistent session), so a QoS 1
publisher loses nothing to a crash of the agent. QoS 0 messages are at most once by definition.
The list is bounded: above `max_pending` messages the intake stops reading the socket, so a backlog
waits in the TCP buffers and the broker, not in Python objects. A connection lost, refused or
silent past the keepalive, or a packet that breaks MQTT (counted through `on_protocol_error`), makes
`take()` raise `MqttIntakeError` once every message received before was taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from edge_agent.mqtt_wire import (
    DEFAULT_MAX_PACKET_BYTES,
    ClientSession,
    Message,
    MqttProtocolError,
    MqttSessionError,
)

_LOG = logging.getLogger(__name__)

CHUNK_BYTES: Final = 256 * 1024
"""Bytes read from the socket at once (one `recv`)."""

__all__ = ["CHUNK_BYTES", "Message", "MqttIntake", "MqttIntakeError", "Received"]


class MqttIntakeError(ConnectionError):
    """The connection to the broker could not be made or was lost."""


@dataclass(slots=True)
class Received:
    """Messages taken at once, and the packet ids of its QoS 1 messages (to acknowledge, in order).

    A QoS 1 message dropped for a topic that is not UTF-8 has its id in `acks` but no message.
    """

    messages: list[Message] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)


class MqttIntake:
    """One connection to a broker: subscribe with QoS 1 and collect messages in batches."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        topics: Sequence[str],
        optional_topics: Sequence[str] = (),
        keepalive_s: int = 30,
        max_pending: int = 2000,
        max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES,
        on_subscribed: Callable[[], None] | None = None,
        on_bad_topic: Callable[[], None] | None = None,
        on_protocol_error: Callable[[str], None] | None = None,
    ) -> None:
        """Prepare a session; nothing connects until `connect()`.

        Args:
            host: Broker host.
            port: Broker port.
            client_id: MQTT client id (the persistent session is keyed on it).
            topics: Subscriptions, all with QoS 1.
            optional_topics: Subscriptions (QoS 1) the broker may refuse: a refusal is logged and
                the session goes on (`topics` refused end it).
            keepalive_s: MQTT keepalive; also the limit for connecting, CONNACK and SUBACK.
            max_pending: Received messages above which the socket is no longer read.
            max_packet_bytes: Largest packet accepted from the broker; a larger one is a protocol
                error.
            on_subscribed: Called once the broker acknowledged the subscriptions.
            on_bad_topic: Called for each message dropped because its topic is not UTF-8.
            on_protocol_error: Called with the reason (a `ProtocolErrorReason` value) when the
                broker breaks MQTT; the connection then ends.
        """
        self.host = host
        self.port = port
        self.topics = tuple(topics)
        self.optional_topics = tuple(optional_topics)
        self.refused: tuple[str, ...] = ()
        """The optional topics the broker refused on this connection."""
        self.keepalive_s = keepalive_s
        self.max_pending = max_pending
        self.subscribed = False
        self.session = ClientSession(
            client_id,
            self.topics,
            self.optional_topics,
            keepalive_s=keepalive_s,
            clean_session=False,
            max_packet_bytes=max_packet_bytes,
        )
        self._on_subscribed = on_subscribed
        self._on_bad_topic = on_bad_topic
        self._on_protocol_error = on_protocol_error
        self._bad_topics = 0
        self._pending = Received()
        self._ready = asyncio.Event()
        self._lost: asyncio.Future[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._fd = -1
        # One buffer for every read: a fresh 256 KiB object per `recv` costs an mmap and page faults.
        self._buffer = memoryview(bytearray(CHUNK_BYTES))
        self._reading = False
        self._writing = False
        self._out = bytearray()
        self._unacked: deque[tuple[asyncio.Future[None], list[int]]] = deque()
        self.pauses = 0
        """Times reading stopped because `max_pending` messages were waiting to be taken."""

    def _fail(self, why: str) -> None:
        self._pause()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(why)
        self._ready.set()

    @property
    def _gone(self) -> bool:
        return self._lost is None or self._lost.done()

    # --- socket readiness --------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self._sock
        loop = self._loop
        if sock is None or loop is None:
            return
        try:
            size = sock.recv_into(self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self._fail(f"read failed: {err}")
            return
        if not size:
            self._fail("read failed: the broker closed the connection")
            return
        self._received(self._buffer[:size].tobytes(), loop.time())

    def _received(self, chunk: bytes, now: float) -> None:
        pending = self._pending
        session = self.session
        try:
            session.receive(chunk, now, pending.messages, pending.acks)
        except MqttProtocolError as err:
            if self._on_protocol_error is not None:
                self._on_protocol_error(err.reason.value)
            self._fail(f"protocol error from the broker: {err}")
        except MqttSessionError as err:
            self._fail(str(err))
        if session.bad_topics != self._bad_topics:
            self._count_bad_topics()
        if not self.subscribed and session.subscribed:
            self._subscribed()
        if not self._gone:
            self._flush()
        if pending.messages or pending.acks:
            self._ready.set()
            if len(pending.messages) >= self.max_pending:
                self._pause()

    def _count_bad_topics(self) -> None:
        count = self.session.bad_topics
        if self._on_bad_topic is not None:
            for _ in range(count - self._bad_topics):
                self._on_bad_topic()
        self._bad_topics = count

    def _subscribed(self) -> None:
        self.subscribed = True
        self.refused = self.session.refused
        if self.refused:
            _LOG.warning(
                "%s:%d refused the optional subscription to %s",
                self.host,
                self.port,
                ", ".join(self.refused),
            )
        if self._on_subscribed is not None:
            self._on_subscribed()

    def _flush(self) -> None:
        """Send what the session queued; what the socket does not take waits for writability."""
        data = self.session.data_to_send()
        if data:
            self._out += data
        if not self._out or self._writing:
            return
        self._write()

    def _write(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as err:
            self._fail(f"write failed: {err}")
            return
        del self._out[:sent]
        if self._out and not self._writing and self._loop is not None:
            self._loop.add_writer(self._fd, self._write)
            self._writing = True
        elif not self._out and self._writing and self._loop is not None:
            self._loop.remove_writer(self._fd)
            self._writing = False

    def _pause(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._reading = False
            self.pauses += 1

    def _resume(self) -> None:
        if not self._reading and self._loop is not None and self._fd >= 0:
            self._loop.add_reader(self._fd, self._readable)
            self._reading = True

    # --- the session -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection and send CONNECT (the SUBSCRIBE follows the CONNACK).

        Raises:
            MqttIntakeError: The broker cannot be reached.
        """
        loop = self._loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        try:
            async with asyncio.timeout(self.keepalive_s or None):
                sock = await self._open(loop)
        except (OSError, TimeoutError) as err:
            raise MqttIntakeError(
                f"cannot connect to {self.host}:{self.port}: {err or 'timed out'}"
            ) from err
        self._sock = sock
        self._fd = sock.fileno()
        self.session.start(loop.time())
        self._resume()
        self._flush()

    async def _open(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        """A connected non-blocking TCP socket to the first address of the broker that answers."""
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {self.host}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)  # noqa: FBT003 - the socket API
                await loop.sock_connect(sock, address)
            except OSError as err:
                sock.close()
                error = err
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise error

    async def take(self) -> Received:
        """Wait for messages and return all received so far, oldest first.

        Raises:
            MqttIntakeError: The connection is lost and every message received was taken.
        """
        while not (self._pending.messages or self._pending.acks):
            if self._lost is not None and self._lost.done():
                raise MqttIntakeError(self._lost.result())
            self._ready.clear()
            await self._ready.wait()
        batch, self._pending = self._pending, Received()
        if not self._gone:
            self._resume()
        return batch

    def acknowledge(self, acks: Sequence[int], stored: asyncio.Future[None]) -> None:
        """Send the PUBACKs of `acks` once `stored` is done, after those of earlier calls.

        A `stored` that fails or is cancelled acknowledges nothing more on this connection: the
        broker sends those messages again after the reconnect.
        """
        if not acks:
            return
        self._unacked.append((stored, list(acks)))
        stored.add_done_callback(self._send_acks)

    def _send_acks(self, _done: asyncio.Future[None]) -> None:
        unacked = self._unacked
        ready: list[int] = []
        while unacked and unacked[0][0].done():
            stored, acks = unacked.popleft()
            if stored.cancelled() or stored.exception() is not None:
                unacked.clear()
                self._fail("messages could not be stored; they will be sent again")
                return
            if self._gone:
                unacked.clear()
                return
            ready += acks
        if ready and self._loop is not None:
            self.session.acknowledge(ready, self._loop.time())
            self._flush()

    async def keepalive(self) -> None:
        """Send pings and notice a silent broker, once a second, until the connection is lost."""
        loop = asyncio.get_running_loop()
        while not self._gone:
            try:
                self.session.poll(loop.time())
            except MqttSessionError as err:
                self._fail(str(err))
                return
            self._flush()
            await asyncio.sleep(1.0)

    @property
    def unacknowledged(self) -> int:
        """QoS 1 messages taken whose PUBACK waits for them to be stored."""
        return sum(len(acks) for _, acks in self._unacked)

    def close(self) -> None:
        """Send DISCONNECT if the socket takes it, close the socket (the session stays on the broker)."""
        self._pause()
        if self._writing and self._loop is not None:
            self._loop.remove_writer(self._fd)
            self._writing = False
        self._unacked.clear()
        self._fail("closed")
        sock, self._sock, self._fd = self._sock, None, -1
        if sock is None:
            return
        self.session.disconnect()
        with contextlib.suppress(OSError):
            sock.send(self._out + self.session.data_to_send())  # best effort, never waits
        self._out.clear()
        sock.close()
