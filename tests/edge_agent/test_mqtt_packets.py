"""Splitting the byte stream from a broker into MQTT packets (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.sources.mqtt_intake import MalformedPacketError, split_packets


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, qos: int = 0) -> bytes:
    body = len(topic.encode()).to_bytes(2, "big") + topic.encode()
    body += b"\x00\x01" if qos else b""
    body += payload
    return bytes([0x30 | qos << 1]) + remaining_length(len(body)) + body


def split_all(data: bytes) -> list[bytes]:
    packets, kept = split_packets(data)
    assert kept == len(data)
    return [data[start:end] for start, _, end in packets]


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
def test_every_length_of_remaining_length_is_read(size: int) -> None:
    packet = publish("t", b"x" * max(size - 3, 0))
    packets, kept = split_packets(packet)
    assert kept == len(packet)
    [(start, body, end)] = packets
    assert (start, end) == (0, len(packet))
    assert packet[body : body + 3] == b"\x00\x01t"


def test_an_incomplete_packet_is_kept_for_the_next_read() -> None:
    first, second = publish("a/b", b"one"), publish("a/c", b"two" * 100)
    data = first + second[:5]
    packets, kept = split_packets(data)
    assert [(s, e) for s, _, e in packets] == [(0, len(first))]
    assert kept == len(first)
    assert split_packets(b"\x30")[0] == []
    assert split_packets(b"\x30\x80\x80")[1] == 0  # length not finished yet


def test_control_packets_with_the_high_bit_set_are_split_too() -> None:
    suback, pingresp = b"\x90\x03\x00\x01\x01", b"\xd0\x00"
    assert split_all(suback + pingresp + publish("z", b"1")) == [
        suback,
        pingresp,
        publish("z", b"1"),
    ]


def test_a_remaining_length_of_five_bytes_is_malformed() -> None:
    bad = b"\x30\xff\xff\xff\xff\x01" + b"x" * 10
    with pytest.raises(MalformedPacketError, match="more than 4 bytes"):
        split_packets(bad)
    good = publish("z", b"1")
    packets, kept = split_packets(good + bad)  # the good packet first, the error at the next call
    assert [(s, e) for s, _, e in packets] == [(0, len(good))]
    assert kept == len(good)


_packets = st.lists(
    st.builds(
        publish,
        st.text(min_size=1, max_size=30),
        st.binary(max_size=300),
        st.sampled_from([0, 1]),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(packets=_packets, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_any_split_of_the_stream_gives_the_same_packets(
    packets: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(packets)
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {len(stream)})
    got: list[bytes] = []
    rest = b""
    previous = 0
    for bound in bounds:
        data = rest + stream[previous:bound]
        found, kept = split_packets(data)
        got += [data[start:end] for start, _, end in found]
        rest = data[kept:]
        previous = bound
    assert got == packets
    assert rest == b""
