"""A cheap MQTT intake on the event loop: paho-mqtt reading the socket in large chunks.

aiomqtt reads one MQTT packet per readiness event (three `recv` calls each) and builds an asyncio
object per message; at tens of thousands of messages per second that is most of the gateway's CPU.
`MqttIntake` drives a paho client from the event loop itself: on each readiness event it reads up to
`CHUNK_BYTES` with one `recv` and parses every packet in it, appending `(topic, payload)` pairs to a
list that the caller takes as a batch with `take()`.

What it guarantees: messages arrive in broker order; QoS 1 messages are acknowledged (PUBACK) once
they are in the batch list, as aiomqtt does, so they are as safe as the pipeline queue they go to
next, not more; QoS 0 messages (Zigbee2MQTT, ChirpStack) are at most once by definition. The list is
bounded: above `max_pending` messages the intake stops reading the socket, so a backlog waits in
the TCP buffers and the broker, not in Python objects. Keepalive pings run every second; a
connection lost, refused or silent past the keepalive makes `take()` raise `MqttIntakeError` once
every message received before was taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Final

import paho.mqtt.client as paho
from paho.mqtt._packet import decode_publish
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

_LOG = logging.getLogger(__name__)

CHUNK_BYTES: Final = 256 * 1024
"""Bytes read from the socket at once (one `recv`)."""

Message = tuple[str, bytes]
"""A received message: topic and payload."""


class MqttIntakeError(ConnectionError):
    """The connection to the broker could not be made or was lost."""


class _ChunkedClient(paho.Client):
    """A paho client whose reads come from one large `recv` instead of one per header field."""

    def __init__(self, client_id: str, sink: Callable[[str, bytes], None]) -> None:
        super().__init__(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self._chunk = b""
        self._pos = 0
        self._sink = sink
        self.bad_topics = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        pos, chunk = self._pos, self._chunk
        if pos >= len(chunk):
            chunk = super()._sock_recv(CHUNK_BYTES)  # raises BlockingIOError when nothing is there
            if not chunk:
                return chunk  # the broker closed the connection
            self._chunk, pos = chunk, 0
        end = min(pos + bufsize, len(chunk))
        self._pos = end
        return chunk[pos:end]

    def _handle_publish(self) -> MQTTErrorCode:
        command = self._in_packet["command"]
        if command & 0x06:
            return super()._handle_publish()  # QoS 1 and 2: paho acknowledges them
        # QoS 0 (what Zigbee2MQTT and ChirpStack publish): parsed by paho, with no message object.
        result = decode_publish(command, self._in_packet["packet"], self._protocol)
        try:
            topic = result.topic.decode()
        except UnicodeDecodeError:
            self.bad_topics += 1
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        payload = result.payload
        self._sink(topic, payload if type(payload) is bytes else bytes(payload))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        # One sink takes every message: paho's per-topic callback matcher is skipped.
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self.bad_topics += 1
            return
        payload = message.payload
        self._sink(topic, payload if type(payload) is bytes else bytes(payload))

    def read_available(self) -> MQTTErrorCode:
        """Read and handle every packet the socket has ready (and those already buffered)."""
        while True:
            rc = self.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._pos >= len(self._chunk):
                return rc


class MqttIntake:
    """One connection to a broker: subscribe with QoS 1 and collect messages in batches."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        topics: Sequence[str],
        keepalive_s: int = 30,
        max_pending: int = 2000,
        on_subscribed: Callable[[], None] | None = None,
    ) -> None:
        """Prepare a session; nothing connects until `connect()`.

        Args:
            host: Broker host.
            port: Broker port.
            client_id: MQTT client id (the persistent session is keyed on it).
            topics: Subscriptions, all with QoS 1.
            keepalive_s: MQTT keepalive; also the limit for CONNACK and SUBACK to arrive.
            max_pending: Received messages above which the socket is no longer read.
            on_subscribed: Called once the broker acknowledged the subscriptions.
        """
        self.host = host
        self.port = port
        self.topics = tuple(topics)
        self.keepalive_s = keepalive_s
        self.max_pending = max_pending
        self.subscribed = False
        self._on_subscribed = on_subscribed
        self._pending: list[Message] = []
        self._client = _ChunkedClient(client_id, self._received)
        self._ready = asyncio.Event()
        self._lost: asyncio.Future[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._reading = False
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
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self._fail(f"subscription refused: {', '.join(refused)}")
            return
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

    def _received(self, topic: str, payload: bytes) -> None:
        self._pending.append((topic, payload))

    def _fail(self, why: str) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(why)
        self._ready.set()

    # --- socket readiness --------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            rc = self._client.read_available()
        except Exception as err:  # noqa: BLE001 - a broken connection or packet: reconnect
            self._pause()
            self._fail(f"read failed: {type(err).__name__}: {err}")
            rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._pause()
            self._fail(f"read failed: {paho.error_string(rc)}")
        if self._pending:
            self._ready.set()
            if len(self._pending) >= self.max_pending:
                self._pause()

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
        self._fd = sock.fileno()
        self._client.on_socket_register_write = self._register_write
        self._client.on_socket_unregister_write = self._unregister_write
        self._resume()
        if self._client.want_write():
            self._writable()

    async def take(self) -> list[Message]:
        """Wait for messages and return all received so far, oldest first.

        Raises:
            MqttIntakeError: The connection is lost and every message received was taken.
        """
        while not self._pending:
            if self._lost is not None and self._lost.done():
                raise MqttIntakeError(self._lost.result())
            self._ready.clear()
            await self._ready.wait()
        batch, self._pending = self._pending, []
        if self._lost is None or not self._lost.done():
            self._resume()
        return batch

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
    def bad_topics(self) -> int:
        """Messages dropped because their topic was not valid UTF-8."""
        return self._client.bad_topics

    def close(self) -> None:
        """Stop reading and close the socket (the persistent session stays on the broker)."""
        self._pause()
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_writer(self._fd)
        self._fd = -1
        self._fail("closed")
        self._client.on_disconnect = None
        with contextlib.suppress(OSError):
            self._client.disconnect()
        with contextlib.suppress(OSError):
            sock = self._client.socket()
            if sock is not None:
                sock.close()
