"""Stream framers resynchronise without losing intact frames, whatever the reads look like.

Streams are built from good frames and, between them, garbage: random bytes, truncated copies of
frames, frames with a damaged header or length, tails of frames, long runs without a line end
(Contact ID), and "spanning" headers whose length field ends exactly where a later good frame ends,
with a sum or CRC that matches (the worst case of a damaged length).

Properties:
- the frames a stream gives do not depend on how it is cut into reads (any stream);
- every planted frame is recovered, in order, and nothing else is yielded, provided the stream
  holds no *bogus frame*: a byte run that is itself a well-formed frame (checked as the framer
  checks it) other than a planted frame, and that does not hold a planted frame inside it. A bogus
  frame cannot be told from a real one, so no framer could do better. Spanning headers are not
  bogus: they hold a planted frame, and the framer must refuse them.

Modbus RTU has no stream framer (its poller frames request/response pairs), so it is not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from firmware_adapters.codecs.ip import sia_dc09
from firmware_adapters.codecs.serial import ademco_contact_id, gbt26875_3
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.framing.base import Framer, StreamBuffer
from firmware_adapters.framing.contact_id import ContactIdFramer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from firmware_adapters.framing.sia_dc09 import (
    HEAD_LEN,
    SiaDc09Framer,
    build_message,
    crc16_arc,
    message_problem,
)
from firmware_adapters.gbt26875.frame import HEADER_LEN, START, checksum, frame_problem
from firmware_adapters.panel_events import DIGITS, MESSAGE_LEN, PanelEvent, parse_contact_id
from firmware_adapters.registry import CODECS

PROPERTY = settings(max_examples=200, deadline=None)
AT = datetime(2025, 6, 1, 12, 30, 15, tzinfo=UTC)
GBT_LENGTH_AT = 24
"""Offset of the little-endian application-unit length in a GB/T 26875.3 frame."""


@dataclass(frozen=True)
class Format:
    """How to frame, build, damage and check one wire format in these tests."""

    framer: Callable[[], Framer]
    frames: Sequence[bytes]
    """Good frames, as sent."""
    garbage: Callable[[st.DrawFn, bytes], bytes]
    shown: Callable[[bytes], bytes]
    """The frame as the framer yields it."""
    bogus: Callable[[bytes, Sequence[tuple[int, int]]], bool]
    """Whether the stream holds a bogus frame, given the planted frames' (start, end)."""
    span: Callable[[bytes, int], bytes | None] | None
    """A header that, put before `after`, makes a well-formed frame ending at offset `end`."""


# --- frames -------------------------------------------------------------------------------------
# Fixed, varied frames from the encoders: drawing one is a single choice, which keeps the
# properties fast; their contents do not matter to a framer, their sizes and bytes do.

GBT_FRAMES = tuple(
    gbt26875_3.CODEC.encode(
        {
            "serial": n * 4099 % 0x10000,
            "system_type": 1,
            "system_address": n,
            "component_address": n * 977,
            "fire_alarm": n % 2 == 0,
            "description": "AB区层走廊12@#"[: n % 12] * (n % 3),
            "at": AT,
        }
        | ({"objects": [{"system_type": 1, "fault": True}] * (n % 4 + 1)} if n % 5 == 0 else {})
    )
    for n in range(24)
)
DC09_FRAMES = tuple(
    sia_dc09.CODEC.encode(
        {
            "id": kind,
            "sequence": n * 397 % 10000,
            **({"event_code": "131", "zone": n * 37 % 1000} if kind == "ADM-CID" else {}),
            **({"sia_code": "FA", "zone": str(n * 53 % 10000)} if kind == "SIA-DCS" else {}),
            **({"at": AT} if n % 2 else {}),
        }
    )
    for n, kind in enumerate(["ADM-CID", "SIA-DCS", "NULL"] * 8)
)
CID_FRAMES = tuple(
    PanelEvent(account, qualifier, code, "01", f"{n * 41 % 1000:03d}").message().encode() + eol
    for n, (account, qualifier, code, eol) in enumerate(
        (account, qualifier, code, eol)
        for account in ("1234", "0B7F")
        for qualifier, code in (("1", "110"), ("3", "131"), ("6", "301"), ("1", "401"))
        for eol in (b"\r\n", b"\r", b"\n")
    )
)


# --- garbage ------------------------------------------------------------------------------------


def _cut(draw: st.DrawFn, frame: bytes, upto: int) -> bytes:
    """A truncated copy (a proper prefix no longer than `upto`) or a tail of `frame`."""
    if draw(st.booleans()):
        return frame[: draw(st.integers(1, min(upto, len(frame) - 1)))]
    return frame[draw(st.integers(1, len(frame) - 1)) :]


def _replace(frame: bytes, at: int, new: bytes) -> bytes:
    return frame[:at] + new + frame[at + len(new) :]


def gbt_garbage(draw: st.DrawFn, frame: bytes) -> bytes:
    """Random bytes, a cut frame, a frame with a damaged length or a flipped header bit."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return _cut(draw, frame, len(frame) - 1)
    if kind == 2:
        length = draw(st.integers(0, 1100)).to_bytes(2, "little")
        return _replace(frame, GBT_LENGTH_AT, length)
    at = draw(st.integers(2, HEADER_LEN - 1))
    return _replace(frame, at, bytes([frame[at] ^ (1 << draw(st.integers(0, 7)))]))


def dc09_garbage(draw: st.DrawFn, frame: bytes) -> bytes:
    """Random bytes, a cut message, a message with a wrong length or a wrong CRC digit."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return _cut(draw, frame, len(frame) - 1)
    if kind == 2:
        return _replace(frame, 5, b"0%03X" % draw(st.integers(0, 0xFFF)))
    at = draw(st.integers(1, 4))
    digit = (int(frame[at : at + 1], 16) + draw(st.integers(1, 15))) % 16
    return _replace(frame, at, b"%X" % digit)


RUN_CHARS = b"0123456789BCDEFxyz \t"


def cid_garbage(draw: st.DrawFn, frame: bytes) -> bytes:
    """Random bytes, a cut message, a message with one wrong digit, a long run without line end."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return _cut(draw, frame, MESSAGE_LEN - 1)
    if kind == 2:
        at = draw(st.integers(0, MESSAGE_LEN - 1))
        others = DIGITS.replace(chr(frame[at]), "")
        return _replace(frame, at, draw(st.sampled_from(others)).encode())
    raw = draw(st.binary(min_size=200, max_size=600))
    return bytes(RUN_CHARS[b % len(RUN_CHARS)] for b in raw)


# --- bogus frames and spanning headers ----------------------------------------------------------


def _holds_planted(start: int, end: int, planted: Sequence[tuple[int, int]]) -> bool:
    return any(start < s and e <= end for s, e in planted)


def _bogus(
    stream: bytes,
    planted: Sequence[tuple[int, int]],
    marker: bytes,
    problem: Callable[[bytes], tuple[int, DecodeReason | None, str]],
) -> bool:
    """A well-formed frame at a start `marker` that is not planted and holds no planted frame."""
    starts = {s for s, _ in planted}
    at = stream.find(marker)
    while at >= 0:
        total, reason, _ = problem(stream[at:])
        if (
            at not in starts
            and total
            and reason is None
            and not _holds_planted(at, at + total, planted)
        ):
            return True
        at = stream.find(marker, at + 1)
    return False


def gbt_bogus(stream: bytes, planted: Sequence[tuple[int, int]]) -> bool:
    return _bogus(stream, planted, START, frame_problem)


def dc09_bogus(stream: bytes, planted: Sequence[tuple[int, int]]) -> bool:
    return _bogus(stream, planted, b"\n", message_problem)


def cid_bogus(stream: bytes, planted: Sequence[tuple[int, int]]) -> bool:
    """A line that does not end with a planted message but whose last 16 characters are valid."""
    message_ends = {s + MESSAGE_LEN for s, _ in planted}
    line_start = 0
    for at, byte in enumerate(stream):
        if byte not in b"\r\n":
            continue
        digits = "".join(stream[line_start:at].decode("latin-1").split())
        line_start = at + 1
        if at in message_ends or len(digits) < MESSAGE_LEN:
            continue
        try:
            parse_contact_id("test", digits[-MESSAGE_LEN:], b"")
        except DecodeError:
            continue
        return True
    return False


def gbt_span(after: bytes, end: int) -> bytes | None:
    """A header whose length ends at `end` in `after`, its sum made to match the frame there."""
    app_len = end - 3
    if not 0 <= app_len <= 1024:
        return None
    header = bytearray(gbt26875_3.CODEC.encode({"serial": 7, "system_type": 1})[:HEADER_LEN])
    header[GBT_LENGTH_AT : GBT_LENGTH_AT + 2] = app_len.to_bytes(2, "little")
    rest = checksum(bytes(header[3:]) + after[: end - 3])
    header[2] = (after[end - 3] - rest) % 256
    return bytes(header)


def dc09_span(after: bytes, end: int) -> bytes | None:
    """An LF and header whose length ends at the CR at `end` in `after`, with a matching CRC."""
    body = after[: end - 1]
    return b"\n%04X%04X" % (crc16_arc(body), len(body)) if len(body) <= 0xFFF else None


FORMATS: dict[str, Format] = {
    "gbt26875": Format(Gbt26875Framer, GBT_FRAMES, gbt_garbage, lambda f: f, gbt_bogus, gbt_span),
    "sia_dc09": Format(
        SiaDc09Framer, DC09_FRAMES, dc09_garbage, lambda f: f, dc09_bogus, dc09_span
    ),
    "contact_id": Format(ContactIdFramer, CID_FRAMES, cid_garbage, bytes.strip, cid_bogus, None),
}


# --- streams ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """A stream and where its planted frames are."""

    data: bytes
    planted: tuple[tuple[int, int], ...]

    def frames(self) -> list[bytes]:
        """The planted frames in order."""
        return [self.data[s:e] for s, e in self.planted]


@st.composite
def streams(draw: st.DrawFn, fmt: Format) -> Stream:
    """Good frames with garbage and spanning headers between them."""
    pieces: list[tuple[str, bytes]] = []
    for _ in range(draw(st.integers(1, 5))):
        for _ in range(draw(st.integers(0, 2))):
            if fmt.span is not None and draw(st.integers(0, 5)) == 0:
                pieces.append(("span", b""))
            else:
                base = draw(st.sampled_from(fmt.frames))
                pieces.append(("garbage", fmt.garbage(draw, base)))
        pieces.append(("frame", draw(st.sampled_from(fmt.frames))))
    data, planted = bytearray(), []
    for kind, piece in pieces:
        if kind == "frame":
            planted.append((len(data), len(data) + len(piece)))
        data += piece
    # Spanning headers go in from the right, so that each one sees the bytes that follow it.
    for index in reversed([i for i, (kind, _) in enumerate(pieces) if kind == "span"]):
        at = sum(len(p) for k, p in pieces[:index] if k != "span")
        ahead = [e - at for s, e in planted if s >= at]
        assert fmt.span is not None
        header = fmt.span(bytes(data[at:]), draw(st.sampled_from(ahead))) if ahead else None
        if header is None:
            continue
        data[at:at] = header
        planted = [(s + len(header), e + len(header)) if s >= at else (s, e) for s, e in planted]
    return Stream(bytes(data), tuple(planted))


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """`data` in reads of the given sizes (cycled), the last read holding the rest."""
    chunks, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        chunks.append(data[pos : pos + size])
        pos, i = pos + size, i + 1
    return chunks


def run(framer: Framer, chunks: list[bytes]) -> list[bytes]:
    buffer = StreamBuffer(framer)
    return [frame for chunk in chunks for frame in buffer.feed(chunk)]


sizes = st.binary(min_size=1, max_size=16).map(lambda raw: [b % 80 + 1 for b in raw])
"""Read sizes of 1 to 80 bytes (one draw: a list of integers costs a draw per size)."""
any_pieces = st.lists(
    st.binary(max_size=48) | st.sampled_from([b"@@", b"##", b"\r\n", b"\n", b"\n0000", b" " * 300]),
    max_size=6,
)


# --- (1) framing does not depend on chunking -----------------------------------------------------


def same_frames_however_cut(fmt: Format, data: bytes, read_sizes: list[int]) -> None:
    whole = run(fmt.framer(), [data])
    assert run(fmt.framer(), cut(data, read_sizes)) == whole


@PROPERTY
@given(st.data(), sizes, any_pieces)
def test_gbt_frames_do_not_depend_on_reads(
    data: st.DataObject, read_sizes: list[int], noise: list[bytes]
) -> None:
    fmt = FORMATS["gbt26875"]
    stream = data.draw(streams(fmt))
    same_frames_however_cut(fmt, stream.data + b"".join(noise), read_sizes)


@PROPERTY
@given(st.data(), sizes, any_pieces)
def test_dc09_frames_do_not_depend_on_reads(
    data: st.DataObject, read_sizes: list[int], noise: list[bytes]
) -> None:
    fmt = FORMATS["sia_dc09"]
    stream = data.draw(streams(fmt))
    same_frames_however_cut(fmt, b"".join(noise) + stream.data, read_sizes)


@PROPERTY
@given(st.data(), sizes, any_pieces)
def test_contact_id_frames_do_not_depend_on_reads(
    data: st.DataObject, read_sizes: list[int], noise: list[bytes]
) -> None:
    fmt = FORMATS["contact_id"]
    stream = data.draw(streams(fmt))
    same_frames_however_cut(fmt, b"".join(noise) + stream.data, read_sizes)


# --- (2) every intact frame is recovered ----------------------------------------------------------


def every_planted_frame(fmt: Format, stream: Stream, read_sizes: list[int]) -> None:
    assume(not fmt.bogus(stream.data, stream.planted))
    expected = [fmt.shown(f) for f in stream.frames()]
    assert run(fmt.framer(), [stream.data]) == expected
    assert run(fmt.framer(), cut(stream.data, read_sizes)) == expected


@PROPERTY
@given(st.data(), sizes)
def test_gbt_recovers_every_intact_frame(data: st.DataObject, read_sizes: list[int]) -> None:
    fmt = FORMATS["gbt26875"]
    every_planted_frame(fmt, data.draw(streams(fmt)), read_sizes)


@PROPERTY
@given(st.data(), sizes)
def test_dc09_recovers_every_intact_frame(data: st.DataObject, read_sizes: list[int]) -> None:
    fmt = FORMATS["sia_dc09"]
    every_planted_frame(fmt, data.draw(streams(fmt)), read_sizes)


@PROPERTY
@given(st.data(), sizes)
def test_contact_id_recovers_every_intact_frame(data: st.DataObject, read_sizes: list[int]) -> None:
    fmt = FORMATS["contact_id"]
    every_planted_frame(fmt, data.draw(streams(fmt)), read_sizes)


def test_every_stream_framer_is_covered() -> None:
    with_framer = {codec.id for codec in CODECS.values() if codec.framer is not None}
    assert with_framer == {sia_dc09.CODEC.id, gbt26875_3.CODEC.id, ademco_contact_id.CODEC.id}


# --- (3) regressions, one per finding ----------------------------------------------------------


def test_dc09_cut_message_whose_length_spans_the_next_does_not_take_it_along() -> None:
    good = build_message('"NULL"0001L0[]')
    cut_off = build_message('"NULL"0002L0[]_12:30:15,06-01-2025')[: HEAD_LEN + 4]
    # The cut message's length runs past the good message's CR: the CR ends the candidate early.
    framer = SiaDc09Framer()
    assert run(framer, [cut_off + good]) == [good]
    assert framer.errors["length"] == 1


def test_dc09_header_spanning_a_message_with_a_matching_crc_is_refused() -> None:
    good = build_message('"NULL"0001L0[]')
    spanning = dc09_span(good, len(good))
    assert spanning is not None
    framer = SiaDc09Framer()
    assert run(framer, [spanning + good]) == [good]
    assert framer.errors["length"] == 1


def test_contact_id_message_split_after_long_garbage_is_kept() -> None:
    line = PanelEvent("1234", "1", "131", "01", "015").message().encode() + b"\r\n"
    data = b"x" * 250 + line
    assert run(ContactIdFramer(), [data]) == [line.strip()]
    framer = ContactIdFramer()
    assert run(framer, [data[:258], data[258:]]) == [line.strip()]
    assert framer.errors["length"] == 1


def test_gbt_damaged_length_ending_on_a_later_frame_with_a_matching_sum_is_refused() -> None:
    first = gbt26875_3.CODEC.encode({"serial": 1, "system_type": 1, "fire_alarm": True})
    second = gbt26875_3.CODEC.encode({"serial": 2, "system_type": 1, "fault": True})
    inner = first + second
    spanning = gbt_span(inner, len(inner))
    assert spanning is not None
    assert frame_problem(spanning + inner)[1] is None  # well formed, sum included
    framer = Gbt26875Framer()
    assert run(framer, [spanning + inner]) == [first, second]
    assert framer.errors["length"] == 1


def test_overflow_keeps_the_start_of_the_next_frame() -> None:
    first, second = (gbt26875_3.CODEC.encode({"serial": n, "system_type": 1}) for n in (1, 2))
    waiting = first[:GBT_LENGTH_AT] + (1000).to_bytes(2, "little") + first[GBT_LENGTH_AT + 2 :]
    buffer = StreamBuffer(Gbt26875Framer(), max_buffer=len(waiting) + 20)
    # The damaged frame waits for 1,030 bytes; the buffer overflows mid-way through `second`.
    assert list(buffer.feed(waiting + second[:30])) == []
    assert list(buffer.feed(second[30:])) == [second]
    assert buffer.framer.errors["overflow"] >= 1


@pytest.mark.timeout(60)  # a guard against a hang, not a measurement
def test_frames_around_long_garbage_are_all_found() -> None:
    blob = bytes(range(256)) * 256  # 64 KiB holding every byte value, line ends and markers too
    cases = {
        "gbt26875": gbt26875_3.CODEC.encode({"serial": 3, "system_type": 1}),
        "sia_dc09": build_message('"NULL"0003L0[]'),
        "contact_id": PanelEvent("1234", "1", "131", "01", "015").message().encode() + b"\r\n",
    }
    for name, frame in cases.items():
        fmt = FORMATS[name]
        data = frame + blob + b"@" * 4096 + b"\n" * 4096 + frame
        frames = run(fmt.framer(), [data]) + run(fmt.framer(), cut(data, [1024]))
        assert frames.count(fmt.shown(frame)) == 4
