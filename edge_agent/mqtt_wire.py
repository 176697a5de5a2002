"""MQTT 3.1.1 on the wire, without I/O: packet encoders, a streaming packet reader, a client session.

Three parts, each usable alone:

- Encoders of the packets a subscribing client sends (CONNECT, SUBSCRIBE, PUBACK, PINGREQ,
  DISCONNECT) and of those a broker or a publisher sends (CONNACK, SUBACK, PUBLISH, PINGRESP),
  all built on the one remaining-length encoder (`encode_remaining_length`).
- `PacketReader`: bytes in, whole packets out, in any chunking (pymodbus-framer style). It checks
  each fixed header against a table of the first bytes the reader accepts (packet type and flags)
  and against hard limits: a remaining length of more than 4 bytes, or one above
  `max_packet_bytes`, is a `MqttProtocolError` at once, before its body is buffered.
- `ClientSession`: the state of one connection of a QoS 1 subscriber (CONNECT → CONNACK →
  SUBSCRIBE → SUBACK, then PUBLISH QoS 0 and 1, PUBACK when the caller says so, PINGREQ and
  PINGRESP). It takes received bytes and the time, and gives back the bytes to send; the caller
  owns the socket, the clock and the reconnects.

The protocol level is 4 (MQTT 3.1.1), which every broker version the agent meets accepts. A
broker that breaks the protocol (a packet a broker never sends to a subscriber, reserved flags, a
PUBLISH whose topic runs past its packet, a SUBACK for another packet id) gets a
`MqttProtocolError` naming a `ProtocolErrorReason`: the caller drops the connection and counts it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

PROTOCOL_NAME: Final = b"MQTT"
PROTOCOL_LEVEL: Final = 4
"""MQTT 3.1.1."""

MAX_REMAINING_LENGTH: Final = 268_435_455
"""The largest remaining length 4 bytes can encode (MQTT 3.1.1, 2.2.3)."""

DEFAULT_MAX_PACKET_BYTES: Final = 16 * 1024 * 1024
"""Largest packet a reader accepts by default (a Zigbee2MQTT `bridge/devices` of a large network
is a few MB)."""

SUBSCRIBE_PACKET_ID: Final = 1
"""The packet id of a session's one SUBSCRIBE."""

PINGREQ: Final = b"\xc0\x00"
PINGRESP: Final = b"\xd0\x00"
DISCONNECT: Final = b"\xe0\x00"

Message = tuple[str, bytes]
"""A received message: topic and payload."""

Span = tuple[int, int, int]
"""Where a packet lies in a buffer: its first byte, its variable header, the next packet."""


class PacketType(enum.IntEnum):
    """MQTT 3.1.1 control packet types (the high nibble of a packet's first byte)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ProtocolErrorReason(enum.StrEnum):
    """Why a byte stream is not acceptable MQTT (the label a protocol error is counted under)."""

    MALFORMED_LENGTH = "malformed_remaining_length"
    """A remaining length of more than 4 bytes."""
    TOO_LARGE = "packet_too_large"
    """A remaining length above the reader's limit."""
    UNEXPECTED_PACKET = "unexpected_packet"
    """A packet type the reader does not accept, or reserved flags that are wrong."""
    MALFORMED_PACKET = "malformed_packet"
    """A body that does not match its packet type (lengths, packet id 0, return codes)."""
    OUT_OF_ORDER = "out_of_order"
    """A packet the session did not expect now (no CONNACK first, a SUBACK for another id)."""


class MqttSessionError(Exception):
    """The session cannot go on; the connection has to be closed."""


class MqttProtocolError(MqttSessionError, ValueError):
    """The peer broke MQTT 3.1.1."""

    def __init__(self, reason: ProtocolErrorReason, detail: str) -> None:
        """`reason` is what the error is counted under; `detail` says what was found where."""
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


class MqttRefusedError(MqttSessionError, ConnectionError):
    """The broker refused the connection (CONNACK) or a required subscription (SUBACK)."""


class MqttKeepaliveError(MqttSessionError, TimeoutError):
    """The broker stayed silent: no CONNACK or SUBACK in time, or nothing after a PINGREQ."""


CONNACK_REFUSALS: Final = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
"""CONNACK return codes other than 0 (accepted), MQTT 3.1.1, 3.2.2.3."""

SUBACK_FAILURE: Final = 0x80


# --- encoders ---------------------------------------------------------------------------------


def encode_remaining_length(size: int) -> bytes:
    """The variable-length encoding of a packet's remaining length (1 to 4 bytes).

    Raises:
        ValueError: `size` is negative or above `MAX_REMAINING_LENGTH`.
    """
    if not 0 <= size <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {size} out of 0..{MAX_REMAINING_LENGTH}")
    out = bytearray()
    while True:
        size, byte = divmod(size, 128)
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out)


def encode_string(text: str | bytes) -> bytes:
    """A UTF-8 string field: 2-byte big-endian length, then the bytes."""
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 0xFFFF:  # noqa: PLR2004 - a 16-bit length
        raise ValueError(f"string of {len(data)} bytes does not fit a 16-bit length")
    return len(data).to_bytes(2, "big") + data


def encode_packet(first: int, body: bytes) -> bytes:
    """A packet: first byte (type and flags), remaining length, body."""
    return bytes((first,)) + encode_remaining_length(len(body)) + body


def connect_packet(client_id: str, *, keepalive_s: int, clean_session: bool) -> bytes:
    """CONNECT at protocol level 4 (3.1.1), no will, no user name or password."""
    flags = 0x02 if clean_session else 0x00
    body = (
        encode_string(PROTOCOL_NAME)
        + bytes((PROTOCOL_LEVEL, flags))
        + keepalive_s.to_bytes(2, "big")
        + encode_string(client_id)
    )
    return encode_packet(PacketType.CONNECT << 4, body)


def connack_packet(return_code: int = 0, *, session_present: bool = False) -> bytes:
    """CONNACK (what a broker answers to CONNECT)."""
    return bytes((PacketType.CONNACK << 4, 2, int(session_present), return_code))


def subscribe_packet(packet_id: int, topics: Iterable[tuple[str, int]]) -> bytes:
    """SUBSCRIBE of `(topic filter, requested QoS)` pairs."""
    body = packet_id.to_bytes(2, "big") + b"".join(
        encode_string(topic) + bytes((qos,)) for topic, qos in topics
    )
    return encode_packet(PacketType.SUBSCRIBE << 4 | 0x02, body)


def suback_packet(packet_id: int, return_codes: bytes) -> bytes:
    """SUBACK: one return code per topic filter (0-2 granted QoS, 0x80 failure)."""
    return encode_packet(PacketType.SUBACK << 4, packet_id.to_bytes(2, "big") + return_codes)


def publish_packet(
    topic: str | bytes, payload: bytes, *, qos: int = 0, packet_id: int = 0, retain: bool = False
) -> bytes:
    """PUBLISH at QoS 0 or 1 (`packet_id` only with QoS 1)."""
    body = encode_string(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + payload
    return encode_packet(PacketType.PUBLISH << 4 | qos << 1 | int(retain), body)


def qos0_publish(encoded_topic: bytes, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH of a topic already encoded with `encode_string` (for senders in a loop)."""
    return (
        b"\x30"
        + encode_remaining_length(len(encoded_topic) + len(payload))
        + encoded_topic
        + payload
    )


def puback_packet(packet_id: int) -> bytes:
    """PUBACK of a QoS 1 PUBLISH."""
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


# --- the streaming reader ----------------------------------------------------------------------

_FIXED_FLAGS: Final = {
    PacketType.PUBREL: 0x02,
    PacketType.SUBSCRIBE: 0x02,
    PacketType.UNSUBSCRIBE: 0x02,
}
"""Reserved fixed-header flags that are not 0 (MQTT 3.1.1, 2.2.2); PUBLISH's are its own."""


def first_bytes(types: Iterable[PacketType], *, max_qos: int = 2) -> bytes:
    """A table of the 256 first bytes: 1 for those of `types` with valid flags, else 0.

    PUBLISH is accepted with any DUP and RETAIN flag and a QoS up to `max_qos`.
    """
    table = bytearray(256)
    for kind in types:
        if kind is PacketType.PUBLISH:
            for flags in range(16):
                if (flags >> 1) & 0x03 <= max_qos:
                    table[kind << 4 | flags] = 1
        else:
            table[kind << 4 | _FIXED_FLAGS.get(kind, 0)] = 1
    return bytes(table)


FROM_BROKER: Final = first_bytes(
    (
        PacketType.CONNACK,
        PacketType.PUBLISH,
        PacketType.PUBACK,
        PacketType.PUBREC,
        PacketType.PUBREL,
        PacketType.PUBCOMP,
        PacketType.SUBACK,
        PacketType.UNSUBACK,
        PacketType.PINGRESP,
    )
)
"""Every packet a broker may send to a client."""

FROM_CLIENT: Final = first_bytes(
    (
        PacketType.CONNECT,
        PacketType.PUBLISH,
        PacketType.PUBACK,
        PacketType.PUBREC,
        PacketType.PUBREL,
        PacketType.PUBCOMP,
        PacketType.SUBSCRIBE,
        PacketType.UNSUBSCRIBE,
        PacketType.PINGREQ,
        PacketType.DISCONNECT,
    )
)
"""Every packet a client may send to a broker."""

TO_QOS1_SUBSCRIBER: Final = first_bytes(
    (PacketType.CONNACK, PacketType.PUBLISH, PacketType.SUBACK, PacketType.PINGRESP), max_qos=1
)
"""What a broker sends a client that only subscribes, at QoS 1 at most (`ClientSession`)."""


class Split(NamedTuple):
    """What `split_packets` found."""

    spans: list[Span]
    """Whole packets, in order."""
    kept: int
    """Offset of the first byte that is not part of a whole packet (keep it for the next read)."""
    needed: int
    """Total bytes the incomplete packet at `kept` needs, once its header is complete; else 0."""
    error: MqttProtocolError | None
    """The error at `kept` (after the whole packets before it), if any."""


def decode_remaining_length(data: bytes, index: int) -> tuple[int, int]:
    """Decode the remaining length that starts at `data[index]`.

    Returns the length and the offset of the byte after it, or `(-1, index)` when `data` ends
    before the length does.

    Raises:
        MqttProtocolError: More than 4 bytes of remaining length.
    """
    length = 0
    for shift in (0, 7, 14, 21):
        if index >= len(data):
            return -1, index
        byte = data[index]
        index += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length, index
    raise MqttProtocolError(
        ProtocolErrorReason.MALFORMED_LENGTH,
        f"remaining length of more than 4 bytes at {index - 4}",
    )


def split_packets(
    data: bytes,
    start: int = 0,
    *,
    accept: bytes = FROM_BROKER,
    max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES,
) -> Split:
    """Split whole MQTT packets off `data[start:]` (pure; never raises on bad input).

    A first byte not in `accept` (a `first_bytes` table), a remaining length of more than 4 bytes
    or a packet larger than `max_packet_bytes` ends the split with `error` set; the packets
    before it are good.
    """
    spans: list[Span] = []
    append = spans.append
    size = len(data)
    pos = start
    short_fits = max_packet_bytes >= 0x81  # noqa: PLR2004 - any 1-byte length fits the limit
    try:
        while pos < size:
            first = data[pos]
            if not accept[first]:
                return Split(spans, pos, 0, _unexpected(first, pos))
            index = pos + 1
            if index >= size:
                break
            length = data[index]
            if length < 0x80 and short_fits:  # noqa: PLR2004 - most packets: one length byte
                index += 1
            else:
                length, index = decode_remaining_length(data, index)
                if length < 0:
                    break
                if index + length - pos > max_packet_bytes:
                    return Split(
                        spans, pos, 0, _too_large(index + length - pos, pos, max_packet_bytes)
                    )
            end = index + length
            if end > size:
                return Split(spans, pos, end - pos, None)
            append((pos, index, end))
            pos = end
    except MqttProtocolError as err:
        return Split(spans, pos, 0, err)
    return Split(spans, pos, 0, None)


def _too_large(size: int, pos: int, limit: int) -> MqttProtocolError:
    return MqttProtocolError(
        ProtocolErrorReason.TOO_LARGE,
        f"packet of {size} bytes at {pos}, above the limit of {limit}",
    )


def _unexpected(first: int, pos: int) -> MqttProtocolError:
    kind = first >> 4
    try:
        name = PacketType(kind).name
    except ValueError:
        name = f"reserved type {kind}"
    return MqttProtocolError(
        ProtocolErrorReason.UNEXPECTED_PACKET,
        f"{name} with flags {first & 0x0F:#06b} not accepted at {pos}",
    )


def _malformed_publish(what: str, start: int) -> MqttProtocolError:
    return MqttProtocolError(ProtocolErrorReason.MALFORMED_PACKET, f"{what} at {start}")


def _topic_end(buf: bytes, start: int, body: int, end: int, after: int) -> int:
    """Where a PUBLISH's topic ends; `after` bytes (the packet id) must follow it in the packet."""
    if end - body < 2:  # noqa: PLR2004 - the topic length field
        raise _malformed_publish("PUBLISH without a topic length", start)
    topic_end = body + 2 + (buf[body] << 8 | buf[body + 1])
    if topic_end + after > end:
        raise _malformed_publish("topic runs past its PUBLISH packet", start)
    return topic_end


class PacketReader:
    """Bytes in, whole packets out: keeps an incomplete packet until the rest of it arrives.

    `feed` returns the buffer the spans point into, the spans of the whole packets, and the error
    that ends the stream, if any; after an error the reader takes nothing more.
    """

    def __init__(
        self, *, accept: bytes = FROM_BROKER, max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES
    ) -> None:
        """`accept` is a `first_bytes` table; `max_packet_bytes` the largest packet accepted."""
        self.accept = accept
        self.max_packet_bytes = max_packet_bytes
        self.error: MqttProtocolError | None = None
        self._rest = b""
        self._parts: list[bytes] = []
        self._have = 0
        self._needed = 0

    @property
    def buffered(self) -> int:
        """Bytes kept for an incomplete packet."""
        return self._have if self._needed else len(self._rest)

    def feed(self, chunk: bytes) -> tuple[bytes, list[Span], MqttProtocolError | None]:
        """Add `chunk`; return the buffer, the whole packets in it and the error after them."""
        if self.error is not None:
            return b"", [], self.error
        if self._needed:  # a large packet of known size: join its parts once, when all are here
            self._parts.append(chunk)
            self._have += len(chunk)
            if self._have < self._needed:
                return b"", [], None
            data = b"".join(self._parts)
            self._parts = []
            self._have = self._needed = 0
        else:
            data = self._rest + chunk if self._rest else chunk
        spans, kept, needed, error = split_packets(
            data, accept=self.accept, max_packet_bytes=self.max_packet_bytes
        )
        self.error = error
        rest = data[kept:] if kept < len(data) and error is None else b""
        if needed:
            self._rest = b""
            self._parts = [rest]
            self._have = len(rest)
            self._needed = needed
        else:
            self._rest = rest
        return data, spans, error

    def packets(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """`feed` as `(first byte, body)` pairs; raises the error after handing nothing of it.

        Raises:
            MqttProtocolError: The stream broke MQTT; the packets before the error are lost.
        """
        data, spans, error = self.feed(chunk)
        if error is not None:
            raise error
        return [(data[start], data[body:end]) for start, body, end in spans]


# --- the client session ------------------------------------------------------------------------


class SessionState(enum.Enum):
    """Where a `ClientSession` is."""

    NEW = "new"
    CONNECTING = "connecting"
    """CONNECT sent, waiting for the CONNACK."""
    SUBSCRIBING = "subscribing"
    """SUBSCRIBE sent, waiting for the SUBACK (messages of a persistent session may come first)."""
    SUBSCRIBED = "subscribed"
    CLOSED = "closed"


class ClientSession:
    """One connection of a subscriber: every topic at QoS 1, PUBACKs only when told.

    Feed it what the socket gave (`receive`) and the time (`poll`, about once a second); send what
    `data_to_send` returns. Messages are appended in broker order to the caller's lists: QoS 0 as
    `(topic, payload)`; QoS 1 the same, plus the packet id in the acknowledgement list. A QoS 1
    message whose topic is not UTF-8 is dropped and counted (`bad_topics`), and its packet id is
    still appended, so PUBACKs keep the order the messages arrived in. The session never
    acknowledges on its own: `acknowledge` queues the PUBACKs.

    Keepalive: a PINGREQ goes out when nothing was sent or nothing was received for
    `keepalive_s`; if then nothing at all arrives for `keepalive_s` more, or the CONNACK and
    SUBACK are not in within `keepalive_s` of `start`, `poll` raises `MqttKeepaliveError`.
    """

    def __init__(
        self,
        client_id: str,
        topics: Sequence[str],
        optional_topics: Sequence[str] = (),
        *,
        keepalive_s: int = 30,
        clean_session: bool = False,
        max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES,
    ) -> None:
        """Prepare the session; `start` queues the CONNECT.

        Args:
            client_id: MQTT client id (a persistent session is keyed on it).
            topics: Subscriptions (QoS 1) the session cannot do without: a refusal ends it.
            optional_topics: Subscriptions (QoS 1) the broker may refuse (see `refused`).
            keepalive_s: MQTT keepalive (0: no pings); also the time for CONNACK and SUBACK.
            clean_session: False for a persistent session (the broker keeps unacknowledged
                QoS 1 messages and the subscriptions across connections).
            max_packet_bytes: The largest packet accepted from the broker.
        """
        self.client_id = client_id
        self.topics = tuple(topics)
        self.optional_topics = tuple(optional_topics)
        self.keepalive_s = keepalive_s
        self.clean_session = clean_session
        self.state = SessionState.NEW
        self.session_present = False
        """The broker's CONNACK flag: it had a session for this client id."""
        self.refused: tuple[str, ...] = ()
        """The optional topics the broker refused."""
        self.bad_topics = 0
        """Messages dropped because their topic is not UTF-8."""
        self.pings = 0
        """PINGREQs sent."""
        self._reader = PacketReader(accept=TO_QOS1_SUBSCRIBER, max_packet_bytes=max_packet_bytes)
        self._out: list[bytes] = []
        self._started = 0.0
        self._last_sent = 0.0
        self._last_received = 0.0
        self._ping_sent: float | None = None
        self._accepting = False  # PUBLISH is accepted from the CONNACK on

    @property
    def subscribed(self) -> bool:
        """The broker acknowledged the subscriptions."""
        return self.state is SessionState.SUBSCRIBED

    @property
    def awaiting_pingresp(self) -> bool:
        """A PINGREQ was sent and nothing answered it yet."""
        return self._ping_sent is not None

    def start(self, now: float) -> None:
        """Queue the CONNECT (once)."""
        if self.state is not SessionState.NEW:
            raise RuntimeError(f"session already {self.state.value}")
        self.state = SessionState.CONNECTING
        self._started = self._last_sent = self._last_received = now
        self._send(
            connect_packet(
                self.client_id, keepalive_s=self.keepalive_s, clean_session=self.clean_session
            ),
            now,
        )

    def data_to_send(self) -> bytes:
        """Take the bytes queued for the broker."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def _send(self, packet: bytes, now: float) -> None:
        self._out.append(packet)
        self._last_sent = now

    def acknowledge(self, packet_ids: Sequence[int], now: float) -> None:
        """Queue the PUBACKs of `packet_ids`, in that order."""
        if packet_ids and self.state is not SessionState.CLOSED:
            self._send(b"".join([b"\x40\x02" + i.to_bytes(2, "big") for i in packet_ids]), now)

    def disconnect(self) -> None:
        """Queue a DISCONNECT; the session takes nothing more."""
        if self.state not in (SessionState.NEW, SessionState.CLOSED):
            self._out.append(DISCONNECT)
        self.state = SessionState.CLOSED

    def poll(self, now: float) -> None:
        """Keepalive: queue a PINGREQ when due; raise when the broker stayed silent.

        Raises:
            MqttKeepaliveError: No CONNACK and SUBACK within the keepalive, or nothing received
                for a keepalive after a PINGREQ.
        """
        keepalive = self.keepalive_s
        state = self.state
        if state in (SessionState.NEW, SessionState.CLOSED) or keepalive <= 0:
            return
        if state is not SessionState.SUBSCRIBED and now - self._started >= keepalive:
            what = "CONNACK" if state is SessionState.CONNECTING else "SUBACK"
            raise MqttKeepaliveError(f"no {what} within the keepalive of {keepalive} s")
        if self._ping_sent is not None:
            if now - max(self._ping_sent, self._last_received) >= keepalive:
                raise MqttKeepaliveError(
                    f"keepalive: nothing from the broker for {keepalive} s after a PINGREQ"
                )
        elif now - self._last_sent >= keepalive or now - self._last_received >= keepalive:
            self._ping_sent = now
            self.pings += 1
            self._send(PINGREQ, now)

    def receive(self, data: bytes, now: float, messages: list[Message], acks: list[int]) -> None:
        """Handle bytes from the broker: append its messages, answer its session packets.

        Messages before a protocol error are appended; the error is raised after them.

        Raises:
            MqttProtocolError: The broker broke MQTT 3.1.1 (count it, close the connection).
            MqttRefusedError: The broker refused the connection or a required subscription.
        """
        if self.state is SessionState.CLOSED:
            return
        self._last_received = now
        buf, spans, error = self._reader.feed(data)
        accepting = self._accepting
        for start, body, end in spans:
            first = buf[start]
            if first & 0xF0 != 0x30:  # noqa: PLR2004 - not a PUBLISH
                self._control(first, buf, body, end, now)
                accepting = self._accepting
            elif not accepting:
                raise MqttProtocolError(
                    ProtocolErrorReason.OUT_OF_ORDER, f"PUBLISH before the CONNACK at {start}"
                )
            elif first & 0x06:  # QoS 1 (the reader refuses QoS 2 and 3)
                self._qos1(buf, (start, body, end), messages, acks)
            else:  # QoS 0, most of the traffic: inline
                if end - body < 2:  # noqa: PLR2004 - the topic length field
                    raise _malformed_publish("PUBLISH without a topic length", start)
                topic_end = body + 2 + (buf[body] << 8 | buf[body + 1])
                if topic_end > end:
                    raise _malformed_publish("topic runs past its PUBLISH packet", start)
                try:
                    topic = buf[body + 2 : topic_end].decode()
                except UnicodeDecodeError:
                    self.bad_topics += 1
                    continue
                messages.append((topic, buf[topic_end:end]))
        if error is not None:
            raise error

    def _qos1(self, buf: bytes, span: Span, messages: list[Message], acks: list[int]) -> None:
        start, body, end = span
        topic_end = _topic_end(buf, start, body, end, 2)
        packet_id = buf[topic_end] << 8 | buf[topic_end + 1]
        if not packet_id:
            raise MqttProtocolError(
                ProtocolErrorReason.MALFORMED_PACKET, f"QoS 1 PUBLISH with packet id 0 at {start}"
            )
        try:
            topic = buf[body + 2 : topic_end].decode()
        except UnicodeDecodeError:
            self.bad_topics += 1  # dropped, but acknowledged in its turn
        else:
            messages.append((topic, buf[topic_end + 2 : end]))
        acks.append(packet_id)

    def _control(self, first: int, buf: bytes, body: int, end: int, now: float) -> None:
        kind = first >> 4
        state = self.state
        if kind == PacketType.CONNACK:
            if state is not SessionState.CONNECTING:
                raise MqttProtocolError(ProtocolErrorReason.OUT_OF_ORDER, "a second CONNACK")
            if end - body != 2 or buf[body] & 0xFE:  # noqa: PLR2004
                raise MqttProtocolError(
                    ProtocolErrorReason.MALFORMED_PACKET, f"CONNACK {buf[body:end].hex()}"
                )
            code = buf[body + 1]
            if code:
                why = CONNACK_REFUSALS.get(code, f"return code {code}")
                raise MqttRefusedError(f"connection refused: {why}")
            self.session_present = bool(buf[body] & 0x01)
            self._accepting = True
            self.state = SessionState.SUBSCRIBING
            wanted = [(topic, 1) for topic in (*self.topics, *self.optional_topics)]
            self._send(subscribe_packet(SUBSCRIBE_PACKET_ID, wanted), now)
        elif kind == PacketType.SUBACK:
            self._suback(buf[body:end])
        elif kind == PacketType.PINGRESP:
            if state is SessionState.CONNECTING:
                raise MqttProtocolError(
                    ProtocolErrorReason.OUT_OF_ORDER, "PINGRESP before the CONNACK"
                )
            self._ping_sent = None
        else:  # the reader accepts nothing else
            raise MqttProtocolError(ProtocolErrorReason.UNEXPECTED_PACKET, f"packet type {kind}")

    def _suback(self, suback: bytes) -> None:
        if self.state is not SessionState.SUBSCRIBING:
            raise MqttProtocolError(
                ProtocolErrorReason.OUT_OF_ORDER, f"SUBACK while {self.state.value}"
            )
        wanted = len(self.topics) + len(self.optional_topics)
        if len(suback) != 2 + wanted:
            raise MqttProtocolError(
                ProtocolErrorReason.MALFORMED_PACKET,
                f"SUBACK with {len(suback) - 2} return codes for {wanted} topics",
            )
        packet_id = int.from_bytes(suback[:2], "big")
        if packet_id != SUBSCRIBE_PACKET_ID:
            raise MqttProtocolError(
                ProtocolErrorReason.OUT_OF_ORDER, f"SUBACK for packet id {packet_id}"
            )
        codes = suback[2:]
        if any(code > 2 and code != SUBACK_FAILURE for code in codes):  # noqa: PLR2004
            raise MqttProtocolError(
                ProtocolErrorReason.MALFORMED_PACKET, f"SUBACK return codes {codes.hex()}"
            )
        required = len(self.topics)
        refused = [t for t, c in zip(self.topics, codes, strict=False) if c == SUBACK_FAILURE]
        if refused:
            raise MqttRefusedError(f"subscription refused: {', '.join(refused)}")
        self.refused = tuple(
            topic
            for topic, code in zip(self.optional_topics, codes[required:], strict=True)
            if code == SUBACK_FAILURE
        )
        self.state = SessionState.SUBSCRIBED
