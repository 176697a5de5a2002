"""MQTT 3.1.1 packets: the remaining length, the encoders and the streaming reader (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.mqtt_wire import (
    FROM_BROKER,
    FROM_CLIENT,
    TO_QOS1_SUBSCRIBER,
    MqttProtocolError,
    PacketReader,
    ProtocolErrorReason,
    connect_packet,
    encode_remaining_length,
    encode_string,
    puback_packet,
    publish_packet,
    qos0_publish,
    split_packets,
    subscribe_packet,
)

# MQTT 3.1.1, table 2.4: the boundaries of 1 to 4 bytes of remaining length.
LENGTH_VECTORS = [
    (0, "00"),
    (127, "7f"),
    (128, "8001"),
    (16_383, "ff7f"),
    (16_384, "808001"),
    (2_097_151, "ffff7f"),
    (2_097_152, "80808001"),
    (268_435_455, "ffffff7f"),
]


@pytest.mark.parametrize(("size", "encoded"), LENGTH_VECTORS)
def test_remaining_length_matches_the_specification(size: int, encoded: str) -> None:
    assert encode_remaining_length(size).hex() == encoded


@pytest.mark.parametrize("size", [-1, 268_435_456])
def test_a_remaining_length_out_of_range_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="remaining length"):
        encode_remaining_length(size)


def test_packets_are_encoded_as_the_specification_shows() -> None:
    # CONNECT: "MQTT", level 4, flags (clean session or not), keepalive, client id.
    assert connect_packet("ab", keepalive_s=30, clean_session=False).hex() == (
        "10" + "0e" + "00044d515454" + "04" + "00" + "001e" + "00026162"
    )
    assert connect_packet("ab", keepalive_s=60, clean_session=True)[9] == 0x02
    # SUBSCRIBE has the reserved flags 0b0010; each filter carries its requested QoS.
    assert subscribe_packet(1, [("z/#", 1)]).hex() == "82" + "08" + "0001" + "00037a2f23" + "01"
    assert (
        publish_packet("z", b"1", qos=1, packet_id=7).hex()
        == "32" + "06" + "00017a" + "0007" + "31"
    )
    assert qos0_publish(encode_string("z"), b"1") == publish_packet("z", b"1")
    assert puback_packet(258).hex() == "40020102"


def split_all(data: bytes) -> list[bytes]:
    spans, kept, needed, error = split_packets(data)
    assert (kept, needed, error) == (len(data), 0, None)
    return [data[start:end] for start, _, end in spans]


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
def test_every_length_of_remaining_length_is_read(size: int) -> None:
    packet = publish_packet("t", b"x" * max(size - 3, 0))
    spans, kept, _, error = split_packets(packet)
    assert (kept, error) == (len(packet), None)
    [(start, body, end)] = spans
    assert (start, end) == (0, len(packet))
    assert packet[body : body + 3] == b"\x00\x01t"


def test_an_incomplete_packet_is_kept_for_the_next_read() -> None:
    first, second = publish_packet("a/b", b"one"), publish_packet("a/c", b"two" * 100)
    data = first + second[:5]
    spans, kept, needed, error = split_packets(data)
    assert [(s, e) for s, _, e in spans] == [(0, len(first))]
    assert (kept, needed, error) == (len(first), len(second), None)
    assert split_packets(b"\x30") == ([], 0, 0, None)
    assert split_packets(b"\x30\x80\x80") == ([], 0, 0, None)  # length not finished yet


def test_control_packets_with_the_high_bit_set_are_split_too() -> None:
    suback, pingresp = b"\x90\x03\x00\x01\x01", b"\xd0\x00"
    one = publish_packet("z", b"1")
    assert split_all(suback + pingresp + one) == [suback, pingresp, one]


def test_a_remaining_length_of_five_bytes_is_malformed_after_the_good_packets() -> None:
    bad = b"\x30\xff\xff\xff\xff\x01" + b"x" * 10
    good = publish_packet("z", b"1")
    spans, kept, _, error = split_packets(good + bad)
    assert [(s, e) for s, _, e in spans] == [(0, len(good))]
    assert kept == len(good)
    assert error is not None
    assert error.reason is ProtocolErrorReason.MALFORMED_LENGTH


def test_a_packet_above_the_limit_is_refused_from_its_header_alone() -> None:
    header = b"\x30" + encode_remaining_length(1_000_000)  # no body sent yet
    _, _, _, error = split_packets(header, max_packet_bytes=65_536)
    assert error is not None
    assert error.reason is ProtocolErrorReason.TOO_LARGE
    reader = PacketReader(max_packet_bytes=65_536)
    with pytest.raises(MqttProtocolError, match="packet_too_large"):
        reader.packets(header)
    assert reader.buffered == 0  # nothing of it was kept
    # One byte under the limit is fine.
    fits = publish_packet("t", b"x" * (65_536 - 7))
    assert len(fits) == 65_536
    assert PacketReader(max_packet_bytes=65_536).packets(fits) == [(0x30, fits[4:])]


@pytest.mark.parametrize(
    ("first", "accept"),
    [
        (0x00, FROM_BROKER),  # reserved type 0
        (0xF0, FROM_BROKER),  # reserved type 15
        (0x10, FROM_BROKER),  # CONNECT comes from clients only
        (0x82, FROM_BROKER),  # SUBSCRIBE comes from clients only
        (0x91, FROM_BROKER),  # SUBACK with reserved flags set
        (0x36, FROM_BROKER),  # PUBLISH with QoS 3
        (0x60, FROM_BROKER),  # PUBREL without its 0b0010 flags
        (0x34, TO_QOS1_SUBSCRIBER),  # QoS 2 to a QoS 1 subscriber
        (0x40, TO_QOS1_SUBSCRIBER),  # PUBACK to a client that never publishes
        (0x20, FROM_CLIENT),  # CONNACK comes from brokers only
    ],
)
def test_a_packet_type_or_flags_not_accepted_is_a_protocol_error(first: int, accept: bytes) -> None:
    reader = PacketReader(accept=accept)
    _, spans, error = reader.feed(publish_packet("z", b"ok") + bytes((first, 0)))
    assert len(spans) == 1  # the good packet before it
    assert error is not None
    assert error.reason is ProtocolErrorReason.UNEXPECTED_PACKET
    assert reader.feed(publish_packet("z", b"more")) == (b"", [], error)  # the stream ended there


def test_a_large_packet_in_many_reads_is_joined_once_it_is_whole() -> None:
    big = publish_packet("big", bytes(range(256)) * 4096)  # 1 MiB
    reader = PacketReader()
    got: list[tuple[int, bytes]] = []
    for offset in range(0, len(big), 4096):
        got += reader.packets(big[offset : offset + 4096])
        if offset + 4096 < len(big):
            assert reader.buffered == offset + 4096
    assert got == [(0x30, big[4:])]
    assert reader.buffered == 0


_packets = st.lists(
    st.one_of(
        st.builds(
            lambda topic, payload, qos: publish_packet(topic, payload, qos=qos, packet_id=qos * 9),
            st.text(min_size=1, max_size=30),
            st.binary(max_size=300),
            st.sampled_from([0, 1]),
        ),
        st.sampled_from([b"\xd0\x00", b"\x90\x03\x00\x01\x01", b"\x20\x02\x00\x00"]),
        st.binary(min_size=20_000, max_size=20_000).map(lambda p: publish_packet("l", p)),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(packets=_packets, cuts=st.lists(st.integers(min_value=0, max_value=200_000), max_size=12))
def test_any_chunking_of_the_stream_gives_the_same_packets(
    packets: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(packets)
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {len(stream)})
    reader = PacketReader()
    got: list[bytes] = []
    previous = 0
    for bound in bounds:
        data, spans, error = reader.feed(stream[previous:bound])
        assert error is None
        got += [data[start:end] for start, _, end in spans]
        previous = bound
    assert got == packets
    assert reader.buffered == 0


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=64), cuts=st.lists(st.integers(0, 64), max_size=4))
def test_garbage_never_raises_anything_but_a_protocol_error(
    garbage: bytes, cuts: list[int]
) -> None:
    reader = PacketReader(accept=TO_QOS1_SUBSCRIBER, max_packet_bytes=1024)
    previous = 0
    for bound in sorted({c % (len(garbage) + 1) for c in cuts} | {len(garbage)}):
        _, _, error = reader.feed(garbage[previous:bound])
        previous = bound
        if error is not None:
            assert isinstance(error.reason, ProtocolErrorReason)
            break
    assert reader.buffered <= len(garbage)
