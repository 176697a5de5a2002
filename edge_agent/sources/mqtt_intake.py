"""A cheap MQTT intake on the event loop: one socket read per readiness event, packets split here.

aiomqtt reads one MQTT packet per readiness event (three `recv` calls each) and builds an asyncio
object per message; at tens of thousands of messages per second that is most of the gateway's CPU.
`MqttIntake` reads up to `CHUNK_BYTES` with one `recv` and splits the chunk into MQTT packets
itself (`split_packets`: fixed header, remaining length). QoS 0 publishes, what Zigbee2MQTT and
ChirpStack send by default, are taken straight from the chunk. Every other packet (CONNACK, SUBACK,
PINGRESP, QoS 1 publishes) is handed whole to a paho-mqtt client, which owns the session: connect,
subscribe, keepalive pings, and the PUBACKs.

What it guarantees: messages arrive in broker order, appended as `(topic, payload)` to a list the
caller takes with `take()`. QoS 1 messages are acknowledged only when the caller says so
(`acknowledge`, after their results are stored), in the order they arrived: one that is not
acknowledged when the connection ends is sent again by the broker (persistent session), so a QoS 1
publisher loses nothing to a crash of the agent. QoS 0 messages are at most once by definition.
The list is bounded: above `max_pending` messages the intake stops reading the socket, so a backlog
waits in the TCP buffers and the broker, not in Python objects. A connection lost, refused or
silent past the keepalive, or a malformed packet, makes `take()` raise `MqttIntakeError` once every
message received before was taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

_LOG = logging.getLogger(__name__)

CHUNK_BYTES: Final = 256 * 1024
"""Bytes read from the socket at once (one `recv`)."""

PUBLISH: Final = 3
"""MQTT control packet type of PUBLISH (the high nibble of the first byte)."""

Message = tuple[str, bytes]
"""A received message: topic and payload."""


class MqttIntakeError(ConnectionError):
    """The connection to the broker could not be made or was lost."""


class MalformedPacketError(ValueError):
    """The byte stream from the broker is not MQTT (a remaining length of more than 4 bytes)."""


def split_packets(data: bytes, start: int = 0) -> tuple[list[tuple[int, int, int]], int]:
    """Split whole MQTT packets off `data[start:]`; return `(start, body, end)` per packet.

    `start` is the packet's first byte (type and flags), `body` is where its variable header starts
    and `end` where the next packet starts. The second value is the offset of the first byte that
    is not part of a whole packet (keep it for the next read). A remaining length longer than 4
    bytes ends the split there; it raises `MalformedPacketError` when it is the first packet.
    """
    packets: list[tuple[int, int, int]] = []
    size = len(data)
    pos = start
    while pos + 1 < size:
        length = 0
        shift = 0
        index = pos + 1
        while True:
            if index >= size:
                return packets, pos
            byte = data[index]
            length |= (byte & 0x7F) << shift
            index += 1
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:  # noqa: PLR2004 - MQTT: at most 4 bytes of remaining length
                if packets:
                    return packets, pos  # what came before it is good
                raise MalformedPacketError(f"remaining length of more than 4 bytes at {pos}")
        end = index + length
        if end > size:
            return packets, pos
        packets.append((pos, index, end))
        pos = end
    return packets, pos


class _FedClient(paho.Client):
    """A paho client that never reads its socket: it reads the whole packets the intake gives it."""

    def __init__(
        self,
        client_id: str,
        sink: Callable[[str, bytes, int], None],
        on_bad_topic: Callable[[], None] | None,
    ) -> None:
        super().__init__(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        self._feed = b""
        self._feed_pos = 0
        self._sink = sink
        self._on_bad_topic = on_bad_topic

    def bad_topic(self) -> None:
        """Report a message dropped because its topic is not UTF-8."""
        if self._on_bad_topic is not None:
            self._on_bad_topic()

    def _sock_recv(self, bufsize: int) -> bytes:
        pos, feed = self._feed_pos, self._feed
        if pos >= len(feed):
            raise BlockingIOError  # paho: nothing more to read now
        end = min(pos + bufsize, len(feed))
        self._feed_pos = end
        return feed[pos:end]

    def handle_packet(self, packet: bytes) -> MQTTErrorCode:
        """Let paho read and handle one whole packet."""
        self._feed, self._feed_pos = packet, 0
        return self.loop_read()

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        # One sink takes every QoS 1 message: paho's per-topic callback matcher is skipped.
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self.bad_topic()
            self.ack(message.mid, message.qos)  # never delivered: nothing to wait for
            return
        payload = message.payload
        self._sink(topic, payload if type(payload) is bytes else bytes(payload), message.mid)


@dataclass(slots=True)
class Received:
    """Messages taken at once, and the ids of its QoS 1 messages (to acknowledge, in order)."""

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
        on_subscribed: Callable[[], None] | None = None,
        on_bad_topic: Callable[[], None] | None = None,
    ) -> None:
        """Prepare a session; nothing connects until `connect()`.

        Args:
            host: Broker host.
            port: Broker port.
            client_id: MQTT client id (the persistent session is keyed on it).
            topics: Subscriptions, all with QoS 1.
            optional_topics: Subscriptions (QoS 1) the broker may refuse: a refusal is logged and
                the session goes on (`topics` refused end it).
            keepalive_s: MQTT keepalive; also the limit for CONNACK and SUBACK to arrive.
            max_pending: Received messages above which the socket is no longer read.
            on_subscribed: Called once the broker acknowledged the subscriptions.
            on_bad_topic: Called for each message dropped because its topic is not UTF-8.
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
        self._on_subscribed = on_subscribed
        self._pending = Received()
        self._client = _FedClient(client_id, self._received_qos1, on_bad_topic)
        self._ready = asyncio.Event()
        self._lost: asyncio.Future[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._fd = -1
        self._rest = b""
        # One buffer for every read: a fresh 256 KiB object per `recv` costs an mmap and page faults.
        self._buffer = memoryview(bytearray(CHUNK_BYTES))
        self._reading = False
        self._unacked: deque[tuple[asyncio.Future[None], list[int]]] = deque()
        self.pauses = 0
        """Times reading stopped because `max_pending` messages were waiting to be taken."""
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect

    # --- paho callbacks (called from the event loop, inside paho's read/misc calls) -------------

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: object,
        _flags: paho.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._fail(f"connection refused: {reason}")
            return
        client.subscribe([(topic, 1) for topic in (*self.topics, *self.optional_topics)])

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        required = len(self.topics)
        refused = [str(r) for r in reasons[:required] if r.is_failure]
        if refused:
            self._fail(f"subscription refused: {', '.join(refused)}")
            return
        self.refused = tuple(
            topic
            for topic, r in zip(self.optional_topics, reasons[required:], strict=False)
            if r.is_failure
        )
        if self.refused:
            _LOG.warning(
                "%s:%d refused the optional subscription to %s",
                self.host,
                self.port,
                ", ".join(self.refused),
            )
        self.subscribed = True
        if self._on_subscribed is not None:
            self._on_subscribed()

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._fail(f"disconnected: {reason}")

    def _received_qos1(self, topic: str, payload: bytes, mid: int) -> None:
        self._pending.messages.append((topic, payload))
        self._pending.acks.append(mid)

    def _fail(self, why: str) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(why)
        self._ready.set()

    # --- socket readiness --------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            size = sock.recv_into(self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self._pause()
            self._fail(f"read failed: {err}")
            return
        if not size:
            self._pause()
            self._fail("read failed: the broker closed the connection")
            return
        chunk = self._buffer[:size].tobytes()
        try:
            self._consume(self._rest + chunk if self._rest else chunk)
        except MalformedPacketError as err:
            self._pause()
            self._fail(f"malformed packet from the broker: {err}")
        except Exception as err:  # noqa: BLE001 - paho refusing a packet: reconnect, never crash
            self._pause()
            self._fail(f"packet not handled: {type(err).__name__}: {err}")
        # paho's keepalive counts bytes received; the QoS 0 messages taken here count too.
        self._client._last_bytes_received = time.monotonic()  # noqa: SLF001
        if self._pending.messages:
            self._ready.set()
            if len(self._pending.messages) >= self.max_pending:
                self._pause()

    def _consume(self, data: bytes) -> None:
        packets, kept = split_packets(data)
        self._rest = data[kept:]
        messages = self._pending.messages
        client = self._client
        for start, body, end in packets:
            first = data[start]
            if first >> 4 == PUBLISH and not first & 0x06:
                # QoS 0: topic length, topic, payload (no packet id).
                if end - body < 2:  # noqa: PLR2004 - the topic length field
                    raise MalformedPacketError(f"PUBLISH without a topic length at {start}")
                topic_end = body + 2 + (data[body] << 8 | data[body + 1])
                if topic_end > end:
                    raise MalformedPacketError(f"topic runs past its PUBLISH packet at {body}")
                try:
                    topic = data[body + 2 : topic_end].decode()
                except UnicodeDecodeError:
                    client.bad_topic()
                    continue
                messages.append((topic, data[topic_end:end]))
                continue
            rc = client.handle_packet(data[start:end])
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._pause()
                self._fail(f"read failed: {paho.error_string(rc)}")
                return
        if self._rest:
            split_packets(self._rest)  # a malformed header after the good packets raises now

    def _writable(self) -> None:
        try:
            rc = self._client.loop_write()
        except Exception as err:  # noqa: BLE001 - a broken connection: reconnect
            self._fail(f"write failed: {type(err).__name__}: {err}")
            return
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._fail(f"write failed: {paho.error_string(rc)}")

    def _register_write(self, _client: paho.Client, _userdata: object, _sock: object) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.add_writer(self._fd, self._writable)

    def _unregister_write(self, _client: paho.Client, _userdata: object, _sock: object) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_writer(self._fd)

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
        """Open the connection and send CONNECT (the SUBSCRIBE follows the CONNACK)."""
        loop = self._loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        try:
            # Name resolution and the TCP handshake may block: they run off the event loop.
            await loop.run_in_executor(
                None, self._client.connect, self.host, self.port, self.keepalive_s
            )
        except (OSError, ValueError) as err:
            raise MqttIntakeError(f"cannot connect to {self.host}:{self.port}: {err}") from err
        sock = self._client.socket()
        if not isinstance(sock, socket.socket):
            raise MqttIntakeError(f"no socket to {self.host}:{self.port}")
        self._sock = sock
        self._fd = sock.fileno()
        self._client.on_socket_register_write = self._register_write
        self._client.on_socket_unregister_write = self._unregister_write
        self._resume()
        if self._client.want_write():
            self._writable()

    async def take(self) -> Received:
        """Wait for messages and return all received so far, oldest first.

        Raises:
            MqttIntakeError: The connection is lost and every message received was taken.
        """
        while not self._pending.messages:
            if self._lost is not None and self._lost.done():
                raise MqttIntakeError(self._lost.result())
            self._ready.clear()
            await self._ready.wait()
        batch, self._pending = self._pending, Received()
        if self._lost is None or not self._lost.done():
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
        while unacked and unacked[0][0].done():
            stored, acks = unacked.popleft()
            if stored.cancelled() or stored.exception() is not None:
                unacked.clear()
                self._fail("messages could not be stored; they will be sent again")
                return
            if self._lost is not None and self._lost.done():
                unacked.clear()
                return
            for mid in acks:
                self._client.ack(mid, 1)

    async def keepalive(self) -> None:
        """Send pings and notice a silent broker, once a second, until the connection is lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.keepalive_s
        while self._lost is not None and not self._lost.done():
            if not self.subscribed and loop.time() > deadline:
                self._fail("no CONNACK or SUBACK within the keepalive")
                return
            if self._client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._fail("keepalive: no answer from the broker")
                return
            await asyncio.sleep(1.0)

    @property
    def unacknowledged(self) -> int:
        """QoS 1 messages taken whose PUBACK waits for them to be stored."""
        return sum(len(acks) for _, acks in self._unacked)

    def close(self) -> None:
        """Stop reading and close the socket (the persistent session stays on the broker)."""
        self._pause()
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_writer(self._fd)
        self._fd = -1
        self._unacked.clear()
        self._fail("closed")
        self._client.on_disconnect = None
        with contextlib.suppress(OSError):
            self._client.disconnect()
        with contextlib.suppress(OSError):
            sock = self._client.socket()
            if sock is not None:
                sock.close()
        self._sock = None
