"""The MQTT 3.1.1 client session: pure state machine tests, then the same session on real Mosquitto."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiomqtt
import pytest

from edge_agent.mqtt_wire import (
    DEFAULT_MAX_PACKET_BYTES,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    ClientSession,
    Message,
    MqttKeepaliveError,
    MqttProtocolError,
    MqttRefusedError,
    ProtocolErrorReason,
    SessionState,
    connack_packet,
    connect_packet,
    puback_packet,
    publish_packet,
    suback_packet,
    subscribe_packet,
)
from simulators.services import Mosquitto


class Inbox:
    """What a session appended: messages and the packet ids to acknowledge."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.acks: list[int] = []


def feed(session: ClientSession, data: bytes, inbox: Inbox, now: float = 0.0) -> None:
    session.receive(data, now, inbox.messages, inbox.acks)


def subscribed_session(max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES) -> ClientSession:
    session = ClientSession(
        "c1", ["z/#"], ["opt"], keepalive_s=10, max_packet_bytes=max_packet_bytes
    )
    session.start(0.0)
    feed(session, connack_packet(0) + suback_packet(1, b"\x01\x01"), Inbox())
    session.data_to_send()
    assert session.subscribed
    return session


def test_the_handshake_is_connect_then_subscribe_after_the_connack() -> None:
    session = ClientSession("agent-1", ["z/#", "application/+/up"], ["$SYS/x"], keepalive_s=30)
    session.start(0.0)
    # Protocol level 4 (3.1.1), a persistent session (clean session flag 0).
    assert session.data_to_send() == connect_packet("agent-1", keepalive_s=30, clean_session=False)
    assert session.state is SessionState.CONNECTING
    inbox = Inbox()
    feed(session, connack_packet(0, session_present=True), inbox)
    assert session.session_present
    assert session.data_to_send() == subscribe_packet(
        1, [("z/#", 1), ("application/+/up", 1), ("$SYS/x", 1)]
    )
    feed(session, suback_packet(1, b"\x01\x00\x80"), inbox)
    assert session.subscribed
    assert session.refused == ("$SYS/x",)
    assert session.data_to_send() == b""


def test_a_persistent_session_may_deliver_before_the_suback() -> None:
    session = ClientSession("c1", ["z/#"])
    session.start(0.0)
    inbox = Inbox()
    queued = publish_packet("z/a", b"kept", qos=1, packet_id=5)
    feed(session, connack_packet(0, session_present=True) + queued, inbox)
    assert (inbox.messages, inbox.acks) == ([("z/a", b"kept")], [5])


@pytest.mark.parametrize(
    ("code", "why"),
    [(1, "unacceptable protocol version"), (5, "not authorized"), (9, "return code 9")],
)
def test_a_refused_connack_ends_the_session(code: int, why: str) -> None:
    session = ClientSession("c1", ["z/#"])
    session.start(0.0)
    session.data_to_send()
    with pytest.raises(MqttRefusedError, match=f"connection refused: {why}"):
        feed(session, connack_packet(code), Inbox())
    assert session.data_to_send() == b""  # no SUBSCRIBE after a refusal


def test_a_refused_required_subscription_ends_the_session() -> None:
    session = ClientSession("c1", ["z/#", "lora/#"], ["opt"])
    session.start(0.0)
    with pytest.raises(MqttRefusedError, match="subscription refused: lora/#"):
        feed(session, connack_packet(0) + suback_packet(1, b"\x01\x80\x01"), Inbox())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (publish_packet("z", b"early"), ProtocolErrorReason.OUT_OF_ORDER),  # before CONNACK
        (PINGRESP, ProtocolErrorReason.OUT_OF_ORDER),
        (suback_packet(1, b"\x01"), ProtocolErrorReason.OUT_OF_ORDER),
        (b"\x20\x03\x00\x00\x00", ProtocolErrorReason.MALFORMED_PACKET),  # CONNACK of 3 bytes
        (b"\x20\x02\x02\x00", ProtocolErrorReason.MALFORMED_PACKET),  # reserved CONNACK flags
        (b"\x40\x02\x00\x01", ProtocolErrorReason.UNEXPECTED_PACKET),  # PUBACK
        (b"\xff\xff", ProtocolErrorReason.UNEXPECTED_PACKET),
    ],
)
def test_broken_packets_before_the_connack_are_protocol_errors(
    data: bytes, reason: ProtocolErrorReason
) -> None:
    session = ClientSession("c1", ["z/#"])
    session.start(0.0)
    with pytest.raises(MqttProtocolError) as caught:
        feed(session, data, Inbox())
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x30\x01\x00", ProtocolErrorReason.MALFORMED_PACKET),  # no topic length
        (b"\x30\x03\x00\x09z", ProtocolErrorReason.MALFORMED_PACKET),  # topic past the packet
        (b"\x32\x03\x00\x01z", ProtocolErrorReason.MALFORMED_PACKET),  # QoS 1 without an id
        (b"\x32\x05\x00\x01z\x00\x00", ProtocolErrorReason.MALFORMED_PACKET),  # packet id 0
        (b"\x34\x05\x00\x01z\x00\x01", ProtocolErrorReason.UNEXPECTED_PACKET),  # QoS 2
        (b"\x30\xff\xff\xff\xff\x7f", ProtocolErrorReason.MALFORMED_LENGTH),
        (b"\x30\xff\xff\xff\x7f", ProtocolErrorReason.TOO_LARGE),
        (b"\x20\x02\x00\x00", ProtocolErrorReason.OUT_OF_ORDER),  # a second CONNACK
        (suback_packet(1, b"\x01\x01"), ProtocolErrorReason.OUT_OF_ORDER),  # a second SUBACK
        (b"\xe0\x00", ProtocolErrorReason.UNEXPECTED_PACKET),  # DISCONNECT from a broker
    ],
)
def test_messages_before_a_protocol_error_are_kept(
    data: bytes, reason: ProtocolErrorReason
) -> None:
    session = subscribed_session(max_packet_bytes=1024 * 1024)
    inbox = Inbox()
    with pytest.raises(MqttProtocolError) as caught:
        feed(session, publish_packet("z", b"ok") + data, inbox)
    assert caught.value.reason is reason
    assert inbox.messages == [("z", b"ok")]


def test_a_suback_for_another_packet_id_or_topic_count_is_refused() -> None:
    for suback, reason in [
        (suback_packet(2, b"\x01\x01"), ProtocolErrorReason.OUT_OF_ORDER),
        (suback_packet(1, b"\x01"), ProtocolErrorReason.MALFORMED_PACKET),
        (suback_packet(1, b"\x01\x03"), ProtocolErrorReason.MALFORMED_PACKET),
    ]:
        session = ClientSession("c1", ["z/#"], ["opt"])
        session.start(0.0)
        with pytest.raises(MqttProtocolError) as caught:
            feed(session, connack_packet(0) + suback, Inbox())
        assert caught.value.reason is reason


def test_qos1_messages_are_acknowledged_only_when_told_in_arrival_order() -> None:
    session = subscribed_session()
    inbox = Inbox()
    feed(
        session,
        publish_packet("z/a", b"1", qos=1, packet_id=7)
        + publish_packet("z/b", b"2")
        + publish_packet("z/c", b"3", qos=1, packet_id=300),
        inbox,
    )
    assert inbox.messages == [("z/a", b"1"), ("z/b", b"2"), ("z/c", b"3")]
    assert inbox.acks == [7, 300]
    assert session.data_to_send() == b""  # nothing acknowledged on receipt
    session.acknowledge(inbox.acks, 1.0)
    assert session.data_to_send() == puback_packet(7) + puback_packet(300)


def test_a_message_with_a_topic_that_is_not_utf8_is_dropped_but_acknowledged_in_turn() -> None:
    session = subscribed_session()
    inbox = Inbox()
    bad = b"\xff\xfe"
    feed(
        session,
        b"\x30\x05\x00\x02"
        + bad
        + b"0"  # QoS 0
        + b"\x32\x07\x00\x02"
        + bad
        + b"\x00\x08"
        + b"1"  # QoS 1, id 8
        + publish_packet("z", b"2", qos=1, packet_id=9),
        inbox,
    )
    assert inbox.messages == [("z", b"2")]
    assert inbox.acks == [8, 9]
    assert session.bad_topics == 2


def test_keepalive_pings_when_nothing_was_sent_and_notices_a_silent_broker() -> None:
    session = subscribed_session()  # keepalive 10 s, the SUBSCRIBE sent at 0
    inbox = Inbox()
    for second in range(1, 10):
        # Messages keep arriving, but nothing is sent: the broker must hear from the client.
        feed(session, publish_packet("z", b"x"), inbox, now=float(second))
        session.poll(float(second))
    assert session.data_to_send() == b""
    session.poll(10.0)
    assert session.data_to_send() == PINGREQ
    feed(session, PINGRESP, inbox, now=10.5)
    session.poll(19.0)
    assert session.data_to_send() == b""
    session.poll(20.0)
    assert session.data_to_send() == PINGREQ
    session.poll(29.9)  # no answer yet, but not for a whole keepalive
    with pytest.raises(MqttKeepaliveError, match="nothing from the broker for 10 s"):
        session.poll(30.0)
    assert session.pings == 2


def test_any_bytes_after_a_ping_show_the_broker_is_alive() -> None:
    session = subscribed_session()
    session.poll(10.0)
    assert session.data_to_send() == PINGREQ
    inbox = Inbox()
    feed(session, publish_packet("z", b"busy"), inbox, now=18.0)  # the PINGRESP is queued behind
    session.poll(27.0)
    with pytest.raises(MqttKeepaliveError):
        session.poll(28.0)


@pytest.mark.parametrize(("answer", "what"), [(b"", "CONNACK"), (connack_packet(0), "SUBACK")])
def test_no_connack_or_suback_within_the_keepalive_ends_the_session(
    answer: bytes, what: str
) -> None:
    session = ClientSession("c1", ["z/#"], keepalive_s=5)
    session.start(100.0)
    feed(session, answer, Inbox(), now=101.0)
    session.poll(104.9)
    with pytest.raises(MqttKeepaliveError, match=f"no {what} within the keepalive"):
        session.poll(105.0)


def test_disconnect_is_sent_once_and_ends_the_session() -> None:
    session = subscribed_session()
    session.acknowledge([3], 1.0)
    session.disconnect()
    assert session.data_to_send() == puback_packet(3) + DISCONNECT
    session.disconnect()
    session.acknowledge([4], 2.0)
    feed(session, publish_packet("z", b"late"), inbox := Inbox())
    assert session.data_to_send() == b""
    assert inbox.messages == []


# --- the same session against real Mosquitto ---------------------------------------------------


class Wire:
    """A `ClientSession` over an asyncio stream, driven by hand."""

    def __init__(
        self, session: ClientSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.session = session
        self.reader = reader
        self.writer = writer
        self.inbox = Inbox()

    @classmethod
    async def open(cls, broker: Mosquitto, session: ClientSession) -> Wire:
        reader, writer = await asyncio.open_connection(broker.host, broker.port)
        session.start(asyncio.get_running_loop().time())
        wire = cls(session, reader, writer)
        await wire.flush()
        return wire

    async def flush(self) -> None:
        self.writer.write(self.session.data_to_send())
        await self.writer.drain()

    async def until(self, done: Callable[[], bool], limit: float = 5.0) -> None:
        async with asyncio.timeout(limit):
            while not done():
                chunk = await self.reader.read(65536)
                assert chunk, "the broker closed the connection"
                now = asyncio.get_running_loop().time()
                self.session.receive(chunk, now, self.inbox.messages, self.inbox.acks)
                await self.flush()

    async def close(self) -> None:
        self.session.disconnect()
        await self.flush()
        self.writer.close()
        await self.writer.wait_closed()


def on_z(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m[0].startswith("z/")]


async def publish(broker: Mosquitto, messages: list[tuple[str, bytes, int]]) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier="wire-publisher") as client:
        for topic, payload, qos in messages:
            await client.publish(topic, payload, qos=qos)


@pytest.mark.integration
async def test_the_session_on_mosquitto_redelivers_until_acknowledged(mosquitto: Mosquitto) -> None:
    wire = await Wire.open(mosquitto, ClientSession("wire-1", ["z/#"], ["other/+"]))
    await wire.until(lambda: wire.session.subscribed)
    await publish(mosquitto, [("z/a", b"one", 1), ("z/b", b"two", 0), ("z/c", b"three", 1)])
    await wire.until(lambda: len(on_z(wire.inbox.messages)) >= 3)
    assert on_z(wire.inbox.messages) == [("z/a", b"one"), ("z/b", b"two"), ("z/c", b"three")]
    assert len(wire.inbox.acks) == 2
    await wire.close()  # nothing acknowledged

    again = await Wire.open(mosquitto, ClientSession("wire-1", ["z/#"]))
    await again.until(lambda: len(again.inbox.acks) >= 2 and again.session.subscribed)
    assert again.session.session_present
    assert on_z(again.inbox.messages) == [("z/a", b"one"), ("z/c", b"three")]
    again.session.acknowledge(again.inbox.acks, 0.0)
    # A ping round trip after the PUBACKs: the broker has handled them when the PINGRESP comes.
    again.session.poll(asyncio.get_running_loop().time() + again.session.keepalive_s)
    assert again.session.pings == 1
    await again.flush()
    await again.until(lambda: again.session.pings == 1 and not again.session.awaiting_pingresp)
    await again.close()

    last = await Wire.open(mosquitto, ClientSession("wire-1", ["z/#"]))
    await last.until(lambda: last.session.subscribed)
    with pytest.raises(TimeoutError):
        await last.until(lambda: bool(last.inbox.acks), limit=0.5)
    await last.close()


@pytest.mark.integration
async def test_mosquitto_accepts_every_packet_the_session_sends(mosquitto: Mosquitto) -> None:
    # Mosquitto closes the connection on a packet it finds malformed; a clean session keeps none.
    wire = await Wire.open(
        mosquitto, ClientSession("wire-2", ["a", "b/+", "c/#"], clean_session=True)
    )
    await wire.until(lambda: wire.session.subscribed)
    assert not wire.session.session_present
    await publish(mosquitto, [("b/x", bytes(range(256)) * 400, 1)])
    await wire.until(lambda: bool(wire.inbox.messages))
    assert wire.inbox.messages == [("b/x", bytes(range(256)) * 400)]
    wire.session.acknowledge(wire.inbox.acks, 0.0)
    wire.session.poll(asyncio.get_running_loop().time() + wire.session.keepalive_s)
    await wire.flush()
    await wire.until(lambda: not wire.session.awaiting_pingresp)
    await wire.close()
